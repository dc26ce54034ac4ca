namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>
/// Runs `dotnet sluice.dll serve` (from this test's output directory) three times: the plain
/// target, a CHAP target and a mutual-CHAP target, each on its own free loopback port.
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
        int port = Ports.FreeTcpPort();
        string[] args =
        [
            SluiceDll, "serve", "--listen", $"127.0.0.1:{port}", "--target", iqn, "--lun", lun,
            "--data-dir", Path.Combine(_dataDir, port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            .. extra,
        ];
        var server = ChildProcess.Start("dotnet", args);
        _servers.Add(server);
        if (!await Ports.WaitAcceptingAsync(port, TimeSpan.FromSeconds(30), () => !server.HasExited))
        {
            server.DrainOutput();
            throw new InvalidOperationException(
                $"{server.Command} did not accept connections on 127.0.0.1:{port} ({(server.HasExited ? "exited" : "no listener after 30s")}):\n{server.Tail()}");
        }
        return new TargetEndpoint("127.0.0.1", port, iqn, 0);
    }

    public override async Task DisposeAsync()
    {
        foreach (var server in _servers)
            await server.DisposeAsync();
        _servers.Clear();
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
