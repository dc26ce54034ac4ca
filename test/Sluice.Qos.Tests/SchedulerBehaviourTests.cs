using Microsoft.Extensions.Time.Testing;

namespace Sluice.Qos.Tests;

public class SchedulerBehaviourTests
{
    private static QosScheduler Create(int maxOutstanding, QosMode mode = QosMode.MClock, TimeProvider? time = null) =>
        new(new QosSchedulerOptions
        {
            MaxOutstanding = maxOutstanding,
            Mode = mode,
            TimeProvider = time ?? new FakeTimeProvider(),
            RunContinuationsAsynchronously = false,
        });

    [Fact]
    public void Fifo_Mode_DispatchesInArrivalOrderRegardlessOfWeights()
    {
        using var s = Create(1, QosMode.Fifo);
        var heavy = s.RegisterFunction("heavy", new ServiceLevel { Weight = 100, ReservationIops = 1000 });
        var light = s.RegisterFunction("light", new ServiceLevel { Weight = 1 });
        var first = s.AcquireAsync(light, 4096);
        Assert.True(first.IsCompleted);

        var order = new List<string>();
        var pending = new List<ValueTask<Grant>>();
        var who = new[] { light, heavy, light, heavy, heavy, light };
        foreach (var f in who)
            pending.Add(s.AcquireAsync(f, 4096));
        Assert.All(pending, p => Assert.False(p.IsCompleted));

        var held = first.Done();
        for (int i = 0; i < pending.Count; i++)
        {
            held.Dispose();
            Assert.True(pending[i].IsCompleted);
            for (int j = i + 1; j < pending.Count; j++)
                Assert.False(pending[j].IsCompleted);
            held = pending[i].Done();
            Assert.Equal(DispatchPhase.Fifo, held.Phase);
        }
        held.Dispose();
        Assert.Equal(0, s.GetSnapshot().Outstanding);
    }

    [Fact]
    public void MClock_SlotsFull_RequestWaitsUntilGrantDisposed()
    {
        using var s = Create(2);
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        var g1 = s.AcquireAsync(f, 512);
        var g2 = s.AcquireAsync(f, 512);
        var g3 = s.AcquireAsync(f, 512);
        Assert.True(g1.IsCompleted && g2.IsCompleted);
        Assert.False(g3.IsCompleted);
        Assert.Equal(1, s.GetSnapshot().Queued);

        g1.Done().Dispose();

        Assert.True(g3.IsCompleted);
        g2.Done().Dispose();
        g3.Done().Dispose();
        Assert.Equal(0, s.GetSnapshot().Outstanding);
    }

    [Fact]
    public void Grant_DisposedTwice_ReleasesOneSlot()
    {
        using var s = Create(1);
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        var g1 = s.AcquireAsync(f, 512).Done();
        var w2 = s.AcquireAsync(f, 512);
        var w3 = s.AcquireAsync(f, 512);

        g1.Dispose();
        g1.Dispose(); // stale: must not free w2's slot for w3

        Assert.True(w2.IsCompleted);
        Assert.False(w3.IsCompleted);
        Assert.Equal(1, s.GetSnapshot().Outstanding);
        w2.Done().Dispose();
        w3.Done().Dispose();
    }

    [Fact]
    public async Task AcquireAsync_CanceledWhileQueued_ThrowsAndLeavesQueue()
    {
        using var s = Create(1);
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        var held = s.AcquireAsync(f, 512).Done();
        using var cts = new CancellationTokenSource();
        var waiting = s.AcquireAsync(f, 512, cts.Token);
        var next = s.AcquireAsync(f, 512);

        cts.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await waiting);
        Assert.Equal(1, s.GetSnapshot().Queued);
        held.Dispose();
        Assert.True(next.IsCompleted);
        next.Done().Dispose();
        Assert.Equal(0, s.GetSnapshot().Functions.Single().QueueDepth);
    }

    [Fact]
    public async Task AcquireAsync_AlreadyCanceled_ThrowsWithoutQueueing()
    {
        using var s = Create(1);
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await s.AcquireAsync(f, 1, new CancellationToken(true)));
        Assert.Equal(0, s.GetSnapshot().Queued);
    }

    [Fact]
    public async Task Dispose_WithWaitingRequests_FailsThem()
    {
        var s = Create(1);
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        var held = s.AcquireAsync(f, 512).Done();
        var waiting = s.AcquireAsync(f, 512);

        s.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await waiting);
        held.Dispose(); // still allowed
        Assert.Throws<ObjectDisposedException>(() => s.AcquireAsync(f, 1));
    }

    [Fact]
    public void AcquireAsync_FunctionOfAnotherScheduler_Throws()
    {
        using var s1 = Create(1);
        using var s2 = Create(1);
        var f = s1.RegisterFunction("f", ServiceLevel.BestEffort);
        Assert.Throws<ArgumentException>(() => s2.AcquireAsync(f, 1));
    }

    [Fact]
    public void TryRemoveFunction_Busy_FalseThenTrueWhenIdle()
    {
        using var s = Create(1);
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        var g = s.AcquireAsync(f, 1).Done();
        Assert.False(s.TryRemoveFunction("f"));
        g.Dispose();
        Assert.True(s.TryRemoveFunction("f"));
        Assert.False(s.TryGetFunction("f", out _));
        Assert.Throws<InvalidOperationException>(() => s.AcquireAsync(f, 1));
    }

    [Fact]
    public void Grant_Complete_RecordsCallerLatency()
    {
        using var s = Create(1);
        var f = s.RegisterFunction("f", new ServiceLevel { LatencyTargetMs = 5 });
        s.AcquireAsync(f, 1).Done().Complete(TimeSpan.FromMilliseconds(40));
        var stats = s.GetSnapshot().Functions.Single();
        Assert.InRange(stats.Latency.Max.TotalMilliseconds, 39.9, 40.1);
        Assert.Equal(1, stats.LatencyTargetMisses);
    }

    [Fact]
    public void MaxOutstanding_Raised_DispatchesWaiting()
    {
        using var s = Create(1);
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        var g1 = s.AcquireAsync(f, 1);
        var g2 = s.AcquireAsync(f, 1);
        Assert.False(g2.IsCompleted);
        s.MaxOutstanding = 2;
        Assert.True(g2.IsCompleted);
        g1.Done().Dispose();
        g2.Done().Dispose();
    }

    [Theory]
    [InlineData(QosMode.MClock)]
    [InlineData(QosMode.Fifo)]
    public void AcquireAndRelease_SteadyState_AllocatesNothing(QosMode mode)
    {
        using var s = Create(16, mode, TimeProvider.System);
        var functions = Enumerable.Range(0, 64)
            .Select(i => s.RegisterFunction($"f{i}", new ServiceLevel { Weight = 1 + i % 4, ReservationIops = i % 8 == 0 ? 100 : 0 }))
            .ToArray();
        var outstanding = new Queue<Grant>();
        var waiting = new Queue<ValueTask<Grant>>();

        void Cycle(int n)
        {
            for (int i = 0; i < n; i++)
            {
                // Keep the device full and a backlog of 64 behind it; collect whatever the scheduler sent.
                while (waiting.Count < 64)
                {
                    var vt = s.AcquireAsync(functions[i % functions.Length], 4096);
                    if (vt.IsCompleted)
                        outstanding.Enqueue(vt.Done());
                    else
                        waiting.Enqueue(vt);
                }
                outstanding.Dequeue().Dispose();
                int pending = waiting.Count;
                for (int j = 0; j < pending; j++)
                {
                    var vt = waiting.Dequeue();
                    if (vt.IsCompleted)
                        outstanding.Enqueue(vt.Done());
                    else
                        waiting.Enqueue(vt);
                }
            }
        }

        Cycle(20_000);
        // Best of three: a per-request allocation shows in every round, while a one-off runtime
        // allocation (tier-up under a loaded machine) does not.
        long allocated = long.MaxValue;
        for (int round = 0; round < 3 && allocated > 0; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            Cycle(20_000);
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.Equal(0, allocated);
    }
}
