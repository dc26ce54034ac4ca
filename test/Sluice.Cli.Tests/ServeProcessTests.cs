using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;

namespace Sluice.Cli.Tests;

/// <summary>Runs the real <c>sluice serve</c> process: banner on stdout, clean exit on a signal.</summary>
public sealed class ServeProcessTests : IDisposable
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);
    private readonly string _dataDir = Directory.CreateTempSubdirectory("sluice-cli-proc-").FullName;

    public void Dispose() => Directory.Delete(_dataDir, recursive: true);

    [Theory]
    [InlineData("TERM")]
    [InlineData("INT")]
    public async Task Serve_Signal_StopsCleanlyWithExitZero(string signal)
    {
        if (OperatingSystem.IsWindows())
            return;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "sluice.dll"), "serve", "--listen", "127.0.0.1:0",
            "--lun", "memory:1MiB", "--data-dir", _dataDir, "--log-level", "none",
        })
        {
            psi.ArgumentList.Add(arg);
        }

        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        using var deadline = new CancellationTokenSource(s_wait);
        try
        {
            while (await process.StandardOutput.ReadLineAsync(deadline.Token) is { } line)
            {
                lines.Add(line);
                if (line == "ready")
                    break;
            }

            if (!lines.Contains("ready"))
            {
                // The server did not come up (TargetServer not serving yet): the failure must
                // still be one line on stderr with exit code 1.
                await process.WaitForExitAsync(deadline.Token);
                string error = await stderr;
                Assert.Equal(1, process.ExitCode);
                Assert.StartsWith("sluice serve: ", error, StringComparison.Ordinal);
                Assert.Single(error.TrimEnd('\n').Split('\n'));
                return;
            }

            string url = Assert.Single(lines, l => l.StartsWith("url ", StringComparison.Ordinal));
            Assert.Matches(@"^url iscsi://127\.0\.0\.1:\d+/iqn\.2026-11\.dev\.sluice:default/0$", url);
            int port = int.Parse(url.Split('/')[2].Split(':')[1], CultureInfo.InvariantCulture);
            Assert.NotEqual(0, port);
            using (var client = new TcpClient())
                await client.ConnectAsync("127.0.0.1", port, deadline.Token);

            using (var kill = Process.Start("kill", ["-" + signal, process.Id.ToString(CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync(deadline.Token);
            await process.WaitForExitAsync(deadline.Token);

            Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {await stderr}");
        }
        finally
        {
            if (!process.HasExited)
                process.Kill();
        }
    }
}
