using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>A long-running server process (sluice serve, tgtd) whose output is kept for failure messages.</summary>
internal sealed partial class ChildProcess : IAsyncDisposable
{
    private const int SIGTERM = 15;
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ChildProcess(Process process) => _process = process;

    public string Command { get; private init; } = "";

    public bool HasExited => _process.HasExited;

    /// <summary>After an exit, waits until the redirected output has been read to its end.</summary>
    public void DrainOutput()
    {
        if (_process.HasExited)
            _process.WaitForExit();
    }

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>The last lines of output, for a skip reason or an assertion message.</summary>
    public string Tail(int lines = 15) =>
        string.Join('\n', Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(lines));

    public static ChildProcess Start(string fileName, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        var child = new ChildProcess(new Process { StartInfo = psi }) { Command = fileName + " " + string.Join(' ', psi.ArgumentList) };
        child._process.OutputDataReceived += (_, e) => child.Append(e.Data);
        child._process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        child._process.Start();
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        return child;
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
        {
            // Bounded: a chatty server must not grow the test host without limit.
            if (_output.Length > 1 << 20)
                _output.Remove(0, _output.Length / 2);
            _output.AppendLine(line);
        }
    }

    /// <summary>SIGTERM, then SIGKILL when it hasn't exited within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
            return;
        _ = Kill(_process.Id, SIGTERM);
        using var cts = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync(TimeSpan.FromSeconds(5));
        }
        finally
        {
            _process.Dispose();
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
