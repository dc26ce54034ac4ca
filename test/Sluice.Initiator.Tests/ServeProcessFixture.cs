using System.Diagnostics;

namespace Sluice.Initiator.Tests;

/// <summary>
/// A <c>sluice serve</c> child process with one memory LUN. Tests that count the initiator's
/// allocations need the target in another process: allocation counters are per process.
/// </summary>
public sealed class ServeProcessFixture : IAsyncLifetime
{
    private Process? _process;
    private string? _dataDir;

    public IscsiUrl Url { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _dataDir = Directory.CreateTempSubdirectory("sluice-init-serve-").FullName;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "sluice.dll"), "serve", "--listen", "127.0.0.1:0", "--lun", "memory:256MiB", "--data-dir", _dataDir, "--log-level", "none" })
        {
            psi.ArgumentList.Add(arg);
        }

        _process = Process.Start(psi)!;
        var stderr = _process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string? url = null;
        while (await _process.StandardOutput.ReadLineAsync(deadline.Token) is { } line)
        {
            if (line.StartsWith("url ", StringComparison.Ordinal))
            {
                url = line[4..];
            }

            if (line == "ready")
            {
                break;
            }
        }

        if (url is null)
        {
            throw new InvalidOperationException("sluice serve did not come up: " + (_process.HasExited ? await stderr : "no url line"));
        }

        Url = IscsiUrl.Parse(url);
    }

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        if (_dataDir is not null)
        {
            Directory.Delete(_dataDir, recursive: true);
        }
    }
}
