using Microsoft.Extensions.Time.Testing;
using Sluice.Storage;

namespace Sluice.Qos.Tests;

public class ScheduledBlockDeviceTests
{
    [Fact]
    public async Task ReadWrite_ThroughScheduler_CountedPerFunction()
    {
        using var scheduler = new QosScheduler(new QosSchedulerOptions { TimeProvider = new FakeTimeProvider() });
        await using var shared = new MemoryBlockDevice(1 << 20);
        var a = new ScheduledBlockDevice(shared, scheduler, scheduler.RegisterFunction("a", ServiceLevel.BestEffort));
        var b = new ScheduledBlockDevice(shared, scheduler, scheduler.RegisterFunction("b", ServiceLevel.BestEffort));

        await a.WriteAsync(0, new byte[] { 1, 2, 3 }, forceUnitAccess: false);
        var back = new byte[3];
        await b.ReadAsync(0, back);
        await b.UnmapAsync(0, 4096);

        Assert.Equal(new byte[] { 1, 2, 3 }, back);
        var stats = scheduler.GetSnapshot().Functions.ToDictionary(f => f.Name);
        Assert.Equal((1, 3), (stats["a"].CompletedIos, stats["a"].CompletedBytes));
        Assert.Equal((2, 3), (stats["b"].CompletedIos, stats["b"].CompletedBytes));
        Assert.Equal(0, scheduler.GetSnapshot().Outstanding);
    }

    [Fact]
    public async Task Read_LimitedFunction_WaitsForItsTag()
    {
        var time = new FakeTimeProvider();
        using var scheduler = new QosScheduler(new QosSchedulerOptions { TimeProvider = time });
        await using var shared = new MemoryBlockDevice(1 << 20);
        var a = new ScheduledBlockDevice(shared, scheduler, scheduler.RegisterFunction("a", new ServiceLevel { LimitIops = 10 }));
        await a.ReadAsync(0, new byte[512]);

        var second = a.ReadAsync(0, new byte[512]).AsTask();
        Assert.False(second.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(100)); // 10 IOPS: the next tag is 100 ms later
        await second.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
