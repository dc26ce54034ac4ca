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

    [Fact]
    public async Task Split_LongReadAndWrite_MoveEveryByteAndCountOneIoEach()
    {
        using var scheduler = new QosScheduler(new QosSchedulerOptions { TimeProvider = new FakeTimeProvider() });
        await using var shared = new MemoryBlockDevice(1 << 20);
        var a = new ScheduledBlockDevice(shared, scheduler, scheduler.RegisterFunction("a", ServiceLevel.BestEffort), splitBytes: 4096);
        var data = new byte[10_000]; // two whole parts and a short one
        new Random(3).NextBytes(data);

        await a.WriteAsync(512, data, forceUnitAccess: true);
        var direct = new byte[data.Length];
        await shared.ReadAsync(512, direct);
        var back = new byte[data.Length];
        await a.ReadAsync(512, back);

        Assert.Equal(data, direct);
        Assert.Equal(data, back);
        var stats = scheduler.GetSnapshot().Functions.Single();
        Assert.Equal(2, stats.CompletedIos); // one write and one read, not six parts
        Assert.Equal(20_000, stats.CompletedBytes);
        Assert.Equal(2, stats.Latency.Count);
        Assert.Equal(6, stats.ReservationDispatches + stats.WeightDispatches); // but six trips to the device
        Assert.Equal(0, scheduler.GetSnapshot().Outstanding);
    }

    [Fact]
    public async Task Untimed_CountsIos_LatencyOnlyWhatTheCallerRecords()
    {
        using var scheduler = new QosScheduler(new QosSchedulerOptions { TimeProvider = new FakeTimeProvider() });
        await using var shared = new MemoryBlockDevice(1 << 20);
        var handle = scheduler.RegisterFunction("a", new ServiceLevel { LatencyTargetMs = 5 });
        var a = new ScheduledBlockDevice(shared, scheduler, handle, splitBytes: 4096, timed: false);

        await a.ReadAsync(0, new byte[512]);
        await a.WriteAsync(0, new byte[10_000], forceUnitAccess: false); // three parts
        await a.FlushAsync();
        var stats = scheduler.GetSnapshot().Functions.Single();
        Assert.Equal(3, stats.CompletedIos);
        Assert.Equal(0, stats.Latency.Count);

        scheduler.RecordLatency(handle, TimeSpan.FromMilliseconds(2));
        scheduler.RecordLatency(handle, TimeSpan.FromMilliseconds(8)); // over the 5 ms target
        stats = scheduler.GetSnapshot().Functions.Single();
        Assert.Equal(3, stats.CompletedIos);
        Assert.Equal(2, stats.Latency.Count);
        Assert.Equal(1, stats.LatencyTargetMisses);
    }

    [Fact]
    public async Task Split_AnotherFunctionsSmallRead_GoesBetweenTheParts()
    {
        using var scheduler = new QosScheduler(new QosSchedulerOptions { TimeProvider = new FakeTimeProvider(), MaxOutstanding = 1, RunContinuationsAsynchronously = false });
        var device = new GatedDevice(1 << 20);
        var bulk = new ScheduledBlockDevice(device, scheduler, scheduler.RegisterFunction("bulk", ServiceLevel.BestEffort), splitBytes: 4096);
        var gold = new ScheduledBlockDevice(device, scheduler, scheduler.RegisterFunction("gold", ServiceLevel.BestEffort), splitBytes: 4096);

        var write = bulk.WriteAsync(0, new byte[16384], forceUnitAccess: false).AsTask();
        Assert.Equal([(0L, 4096)], device.Started); // the first part is at the device
        var read = gold.ReadAsync(65536, new byte[512]).AsTask();
        Assert.Single(device.Started); // the one slot is taken: the read waits in the scheduler
        while (!write.IsCompleted || !read.IsCompleted)
        {
            // The next operation reaches the device once the previous one's continuation has run.
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!device.ReleaseOne())
            {
                Assert.True(DateTime.UtcNow < deadline, "nothing at the device while work is queued");
                await Task.Delay(1);
            }
            await Task.Delay(1);
        }
        await write;
        await read;

        // Unsplit, the read would wait for all 16 KiB; split, it waits for one part.
        Assert.Equal([(0L, 4096), (65536L, 512), (4096L, 4096), (8192L, 4096), (12288L, 4096)], device.Started);
    }

    [Fact]
    public async Task Split_CanceledWhileAPartWaits_WithdrawsIt_NothingLeftQueuedOrOutstanding()
    {
        var time = new FakeTimeProvider();
        using var scheduler = new QosScheduler(new QosSchedulerOptions { TimeProvider = time });
        await using var shared = new MemoryBlockDevice(1 << 20);
        // 10 kB/s: after the first 4 KiB part, the next is due 0.4 s later, on a clock that stands still.
        var a = new ScheduledBlockDevice(shared, scheduler, scheduler.RegisterFunction("a", new ServiceLevel { LimitMbps = 0.01 }), splitBytes: 4096);
        using var cts = new CancellationTokenSource();
        var write = a.WriteAsync(0, new byte[16384], forceUnitAccess: false, cts.Token).AsTask();
        Assert.False(write.IsCompleted);
        Assert.Equal(1, scheduler.GetSnapshot().Queued);

        await cts.CancelAsync(); // the initiator's ABORT TASK, or its connection gone
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => write.WaitAsync(TimeSpan.FromSeconds(10)));
        var snapshot = scheduler.GetSnapshot();
        Assert.Equal((0, 0), (snapshot.Queued, snapshot.Outstanding));
        Assert.Equal(4096, snapshot.Functions.Single().CompletedBytes); // the part that ran
        Assert.Equal(0, snapshot.Functions.Single().CompletedIos);      // an I/O that did not finish
    }

    [Fact]
    public async Task Split_LimitInIops_ChargesEachIoOnce()
    {
        var time = new FakeTimeProvider();
        using var scheduler = new QosScheduler(new QosSchedulerOptions { TimeProvider = time });
        await using var shared = new MemoryBlockDevice(1 << 20);
        var a = new ScheduledBlockDevice(shared, scheduler, scheduler.RegisterFunction("a", new ServiceLevel { LimitIops = 10 }), splitBytes: 4096);

        await a.ReadAsync(0, new byte[65536]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)); // 16 parts, no time passes
        var second = a.ReadAsync(0, new byte[65536]).AsTask();
        Assert.False(second.IsCompleted); // 10 IOPS: the next I/O (not the next part) is 100 ms later
        time.Advance(TimeSpan.FromMilliseconds(100));
        await second.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(2, scheduler.GetSnapshot().Functions.Single().CompletedIos);
    }

    /// <summary>A memory device whose reads and writes wait until the test releases them, one at a time, in order.</summary>
    private sealed class GatedDevice(long length) : IBlockDevice
    {
        private readonly MemoryBlockDevice _data = new(length);
        private readonly Lock _lock = new();
        private readonly Queue<TaskCompletionSource> _gates = new();
        private readonly List<(long Offset, int Length)> _started = [];

        public List<(long Offset, int Length)> Started
        {
            get
            {
                lock (_lock)
                    return [.. _started];
            }
        }

        public long Length => _data.Length;

        public bool IsReadOnly => false;

        public bool SupportsUnmap => true;

        public bool ReleaseOne()
        {
            TaskCompletionSource? gate;
            lock (_lock)
            {
                if (!_gates.TryDequeue(out gate))
                    return false;
            }
            gate.SetResult();
            return true;
        }

        public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
        {
            await Gate(offset, destination.Length).ConfigureAwait(false);
            await _data.ReadAsync(offset, destination, cancellationToken).ConfigureAwait(false);
        }

        public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default)
        {
            await Gate(offset, source.Length).ConfigureAwait(false);
            await _data.WriteAsync(offset, source, forceUnitAccess, cancellationToken).ConfigureAwait(false);
        }

        public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default) => _data.UnmapAsync(offset, length, cancellationToken);

        public ValueTask DisposeAsync() => _data.DisposeAsync();

        private Task Gate(long offset, int length)
        {
            var gate = new TaskCompletionSource();
            lock (_lock)
            {
                _started.Add((offset, length));
                _gates.Enqueue(gate);
            }
            return gate.Task;
        }
    }
}
