using System.Diagnostics;

namespace Sluice.Benchmarks;

/// <summary>
/// A <c>sluice serve</c> child process with a memory LUN, so that a benchmark measures only the
/// initiator: allocation counters are per process, and an in-process target allocates too.
/// </summary>
internal sealed class ServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly string _dataDir;

    private ServeProcess(Process process, string dataDir, string url)
    {
        _process = process;
        _dataDir = dataDir;
        Url = url;
    }

    /// <summary>iscsi:// URL of the LUN, as the server printed it.</summary>
    public string Url { get; }

    public static ServeProcess Start(string lun = "memory:256MiB")
    {
        var dataDir = Directory.CreateTempSubdirectory("sluice-bench-").FullName;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "sluice.dll"), "serve", "--listen", "127.0.0.1:0", "--lun", lun, "--data-dir", dataDir, "--log-level", "none" })
        {
            psi.ArgumentList.Add(arg);
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start sluice serve");
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        string? url = null;
        while (process.StandardOutput.ReadLine() is { } line)
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
            process.Kill();
            process.Dispose();
            throw new InvalidOperationException("sluice serve did not print its url");
        }

        return new ServeProcess(process, dataDir, url);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit(5000);
        }

        _process.Dispose();
        Directory.Delete(_dataDir, recursive: true);
    }
}
