using Sluice.Cli.Commands;

namespace Sluice.Cli.Tests;

/// <summary>The live line of <c>sluice bench</c>: rates over the last interval per job, redrawn in place, cleared at the end.</summary>
public sealed class BenchProgressTests
{
    [Fact]
    public void Draw_ShowsEachJobsRateOverTheLastInterval_InPlace()
    {
        var tty = new StringWriter();
        var progress = new BenchProgress(tty, TimeSpan.FromSeconds(11));
        progress.Draw(TimeSpan.FromSeconds(1), [("gold", 1000, 4_096_000), ("bulk", 10, 10_485_760)]);
        progress.Draw(TimeSpan.FromSeconds(2), [("gold", 3000, 12_288_000), ("bulk", 15, 15_728_640)]);
        progress.Finish();
        string text = tty.ToString();
        var frames = text.Split('\r', StringSplitOptions.RemoveEmptyEntries);
        Assert.DoesNotContain('\n', text);
        Assert.StartsWith("[   1s/11s]  gold:     1000 IOPS      4.1 MB/s  bulk:       10 IOPS     10.5 MB/s", frames[0]);
        // The second second: 2000 gold I/Os and 5 bulk I/Os, not the totals.
        Assert.StartsWith("[   2s/11s]  gold:     2000 IOPS      8.2 MB/s  bulk:        5 IOPS      5.2 MB/s", frames[1]);
        Assert.True(string.IsNullOrWhiteSpace(frames[^1]), "the line is not cleared at the end");
    }
}
