using System.Globalization;
using System.Text;

namespace Sluice.Cli.Commands;

/// <summary>
/// The live line of <c>sluice bench</c> on a terminal: elapsed of total time, then per job the
/// IOPS and MB/s of the last interval, redrawn in place once a second (cleared before the summary).
/// </summary>
internal sealed class BenchProgress(TextWriter error, TimeSpan total)
{
    private readonly Dictionary<string, (long Ios, long Bytes)> _last = new(StringComparer.Ordinal);
    private TimeSpan _lastAt;
    private int _width;

    /// <summary>Redraws the line for the counters at <paramref name="elapsed"/> (I/Os and bytes completed so far, per job).</summary>
    public void Draw(TimeSpan elapsed, IEnumerable<(string Job, long Ios, long Bytes)> jobs)
    {
        double seconds = Math.Max((elapsed - _lastAt).TotalSeconds, 1e-3);
        var line = new StringBuilder();
        line.Append(CultureInfo.InvariantCulture, $"[{elapsed.TotalSeconds,4:0}s/{total.TotalSeconds:0}s]");
        foreach (var (job, ios, bytes) in jobs)
        {
            var (lastIos, lastBytes) = _last.GetValueOrDefault(job);
            _last[job] = (ios, bytes);
            line.Append(CultureInfo.InvariantCulture,
                $"  {job}: {(ios - lastIos) / seconds,8:0} IOPS {(bytes - lastBytes) / seconds / 1e6,8:0.0} MB/s");
        }

        _lastAt = elapsed;
        string text = line.ToString();
        int pad = Math.Max(0, _width - text.Length);
        _width = text.Length;
        error.Write("\r" + text + new string(' ', pad));
        error.Flush();
    }

    /// <summary>Clears the line, so the summary starts on a clean one.</summary>
    public void Finish()
    {
        error.Write("\r" + new string(' ', _width) + "\r");
        error.Flush();
    }
}
