using System.Net;
using System.Text.Json;
using Sluice.Interop.Tests.Infrastructure;
using Sluice.Target.Tests;

namespace Sluice.Interop.Tests;

/// <summary>
/// Issue 5: the `sluice bench --verify` process writes through a PDU-aware proxy to sluice serve
/// and to tgtd; the proxy cuts the connection three times in the write phase (an R2T left
/// outstanding, a write's status lost, a Data-Out half sent). bench must reconnect (session
/// reinstatement, replay of the commands without status), report the reconnects, end with no
/// I/O error, and its verify pass must find every acknowledged write.
/// </summary>
public abstract class BenchConnectionCutTests<TFixture>(TFixture target) where TFixture : TargetFixture
{
    private const byte DataOut = 0x05;
    private const byte ScsiResponse = 0x21;
    private const byte ReadyToTransfer = 0x31;
    private const long Region = 16L << 20;

    [SkippableFact]
    public async Task BenchVerify_ThreeCutsDuringRandomWrites_ReconnectsAndNothingLost()
    {
        Skip.If(target.SkipReason is not null, target.SkipReason);
        var main = target.Main;
        await using var proxy = new CorruptingProxy(new IPEndPoint(IPAddress.Loopback, main.Port), framed: true);
        var url = new TargetEndpoint("127.0.0.1", proxy.Endpoint.Port, main.Iqn, main.Lun).Url();
        var bench = ProcessRunner.RunAsync("dotnet",
            [SluiceTargetFixture.SluiceDll, "bench", url, "--rw", "randwrite", "--bs", "128k", "--qd", "8", "--size", "16MiB",
             "--time", "5s", "--ramp", "100ms", "--verify", "--json", "--initiator-name", TargetFixture.InitiatorName],
            TimeSpan.FromSeconds(40));

        // The fill stamps the region first; the write phase has begun once more than that went up.
        await WaitUntilAsync(() => proxy.UpstreamBytes > Region + (1 << 20), bench, "the write phase");
        await CutAsync(proxy, 1, upstream: false, ReadyToTransfer, CutPoint.AfterPdu, bench);
        await CutAsync(proxy, 2, upstream: false, ScsiResponse, CutPoint.BeforePdu, bench);
        await CutAsync(proxy, 3, upstream: true, DataOut, CutPoint.MidData, bench);

        var result = await bench;
        string context = $"{result}\n--- {target.Kind} server\n{target.ServerLog}";
        Assert.True(result.Succeeded, context);
        using var doc = JsonDocument.Parse(result.StdOut);
        var job = doc.RootElement.GetProperty("jobs")[0];
        Assert.True(job.GetProperty("reconnects").GetInt64() >= 3, context);
        Assert.Equal(0, job.GetProperty("errors").GetInt64());
        Assert.Equal(0, job.GetProperty("verify_failures").GetInt64());
        Assert.Equal(Region / 512, job.GetProperty("verified_blocks").GetInt64());
        Assert.True(job.GetProperty("write").GetProperty("ios").GetInt64() > 0, context);
    }

    private static async Task CutAsync(CorruptingProxy proxy, int n, bool upstream, byte opcode, CutPoint point, Task<ToolResult> bench)
    {
        proxy.CutAtNext(upstream, opcode, point);
        await WaitUntilAsync(() => proxy.CutsDone >= n, bench, $"cut {n} (opcode 0x{opcode:x2})");
        long before = proxy.UpstreamBytes;
        await WaitUntilAsync(() => proxy.Connections > n && proxy.UpstreamBytes > before + (512 << 10), bench, $"writes after cut {n}");
    }

    private static async Task WaitUntilAsync(Func<bool> condition, Task<ToolResult> bench, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            if (bench.IsCompleted)
                Assert.Fail($"bench ended before {what}:\n{bench.Result}");
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(5);
        }
    }
}

[Collection(TgtCollection.Name)]
public sealed class TgtBenchConnectionCutTests(TgtTargetFixture target) : BenchConnectionCutTests<TgtTargetFixture>(target);

[Collection(SluiceCollection.Name)]
public sealed class SluiceBenchConnectionCutTests(SluiceTargetFixture target) : BenchConnectionCutTests<SluiceTargetFixture>(target);
