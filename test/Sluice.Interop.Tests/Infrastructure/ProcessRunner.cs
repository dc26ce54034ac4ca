using System.Diagnostics;
using System.Text;

namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>What a finished (or killed) tool run printed.</summary>
internal sealed record ToolResult(string Command, int ExitCode, string StdOut, string StdErr, bool TimedOut)
{
    public bool Succeeded => ExitCode == 0 && !TimedOut;

    public override string ToString() =>
        $"$ {Command}\nexit {(TimedOut ? "TIMEOUT" : ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture))}\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";
}

/// <summary>Runs a command line tool to completion under a timeout; a hang kills it.</summary>
internal static class ProcessRunner
{
    public static async Task<ToolResult> RunAsync(
        string fileName, IEnumerable<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
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
        if (environment is not null)
        {
            foreach (var (k, v) in environment)
                psi.Environment[k] = v;
        }
        string command = fileName + " " + string.Join(' ', psi.ArgumentList);

        using var process = new Process { StartInfo = psi };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        bool timedOut = false;
        using (var cts = new CancellationTokenSource(timeout))
        {
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }
        }
        // WaitForExitAsync also waits for the redirected streams to reach EOF.
        lock (stdout)
        lock (stderr)
            return new ToolResult(command, timedOut ? -1 : process.ExitCode, stdout.ToString(), stderr.ToString(), timedOut);
    }

    public static Task<ToolResult> RunAsync(string fileName, params string[] args) =>
        RunAsync(fileName, args, TimeSpan.FromSeconds(60));
}
