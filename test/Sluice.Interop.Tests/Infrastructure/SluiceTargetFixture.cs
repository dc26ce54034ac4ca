namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>
/// Runs `dotnet sluice.dll serve` (from this test's output directory) four times: the plain
/// target, a CHAP target, a mutual-CHAP target and a 1 GiB thin `file:` LUN in /dev/shm, each on
/// its own free loopback port.
/// Until the target works, a server that does not start skips the tests, unless
/// SLUICE_TARGET_REQUIRED=1, when it fails them.
/// </summary>
public sealed class SluiceTargetFixture : TargetFixture
{
    private readonly List<ChildProcess> _servers = [];
    private string _dataDir = "";

    public override string Kind => "sluice";

    public override string ServerLog => string.Join("\n---\n", _servers.Select(s => $"$ {s.Command}\n{s.Tail(40)}"));

    public override bool IsRunning => _servers.Count > 0 && _servers.All(s => !s.HasExited);

    public static string SluiceDll => Path.Combine(AppContext.BaseDirectory, "sluice.dll");

    public override async Task InitializeAsync()
    {
        _dataDir = Directory.CreateTempSubdirectory("sluice-interop-").FullName;
        try
        {
            Main = await StartAsync("iqn.2026-11.dev.sluice:interop", "memory:128MiB", []);
            Chap = await StartAsync("iqn.2026-11.dev.sluice:interop-chap", "memory:8MiB", ["--chap", $"{ChapUser}:{ChapSecret}"]);
            MutualChap = await StartAsync("iqn.2026-11.dev.sluice:interop-mutual", "memory:8MiB",
                ["--chap", $"{ChapUser}:{ChapSecret}", "--mutual-chap", $"{MutualUser}:{MutualSecret}"]);
            ThinBackingFile = $"/dev/shm/sluice-interop-thin-{Environment.ProcessId}-{Guid.NewGuid():N}.img";
            Thin = await StartAsync("iqn.2026-11.dev.sluice:interop-thin", $"file:{ThinBackingFile}:1GiB", []);
        }
        catch (InvalidOperationException e) when (!Required("SLUICE_TARGET_REQUIRED"))
        {
            SkipReason = $"sluice serve is not serving yet (SLUICE_TARGET_REQUIRED=1 makes this a failure): {e.Message}";
        }
    }

    private async Task<TargetEndpoint> StartAsync(string iqn, string lun, string[] extra)
    {
        if (!File.Exists(SluiceDll))
            throw new FileNotFoundException("sluice.dll is not in the test output (ProjectReference to Sluice.Cli)", SluiceDll);
        // Port 0: the server binds a free port itself and prints it on its `url` line, so no
        // other socket on this busy machine can take the port between our pick and its bind.
        string dataDir = Path.Combine(_dataDir, Guid.NewGuid().ToString("N"));
        string[] args =
        [
            SluiceDll, "serve", "--listen", "127.0.0.1:0", "--target", iqn, "--lun", lun,
            "--data-dir", dataDir,
            .. extra,
        ];
        var server = ChildProcess.Start("dotnet", args);
        _servers.Add(server);
        int port = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline && !server.HasExited)
        {
            var match = System.Text.RegularExpressions.Regex.Match(server.Output, @"^url iscsi://127\.0\.0\.1:(\d+)/", System.Text.RegularExpressions.RegexOptions.Multiline);
            if (match.Success && server.Output.Contains("\nready", StringComparison.Ordinal))
            {
                port = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                break;
            }

            await Task.Delay(50);
        }

        if (port == 0 || !await Ports.WaitAcceptingAsync(port, TimeSpan.FromSeconds(10), () => !server.HasExited))
        {
            server.DrainOutput();
            throw new InvalidOperationException(
                $"{server.Command} did not report a listening port ({(server.HasExited ? "exited" : "no url/ready line after 30s")}):\n{server.Tail()}");
        }

        return new TargetEndpoint("127.0.0.1", port, iqn, 0);
    }

    public override async Task DisposeAsync()
    {
        foreach (var server in _servers)
            await server.DisposeAsync();
        _servers.Clear();
        if (ThinBackingFile.Length > 0)
            File.Delete(ThinBackingFile);
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
