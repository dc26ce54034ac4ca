using Microsoft.Extensions.Time.Testing;

namespace Sluice.Qos.Tests;

/// <summary>The adaptive bound on outstanding cost (<see cref="QosSchedulerOptions.AdaptiveOutstanding"/>).</summary>
public class AdaptiveOutstandingTests
{
    private static readonly TimeSpan s_ms = TimeSpan.FromMilliseconds(1);

    private static Simulation Device(bool adaptive, int lanes = 2, int maxOutstanding = 32) =>
        new(maxOutstanding, s_ms, configure: o => o with { AdaptiveOutstanding = adaptive }) { Lanes = lanes };

    [Fact]
    public void DeepClosedLoop_WindowSettlesNearLanesAndDeviceStaysBusy()
    {
        // 2 lanes x 1 ms = 2000 IOPS; one client keeps 32 in flight.
        using var sim = Device(adaptive: true);
        var c = sim.AddClient("c", ServiceLevel.BestEffort, depth: 32);
        c.Start();
        sim.Run(TimeSpan.FromSeconds(3));
        long ticks = c.DeviceTicks, done = c.Completed;
        sim.Run(TimeSpan.FromSeconds(2));

        double iops = c.Iops(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(5));
        double deviceMs = (c.DeviceTicks - ticks) * 1e3 / sim.Time.TimestampFrequency / (c.Completed - done);
        var snap = sim.Scheduler.GetSnapshot();
        Assert.InRange(iops, 0.95 * 2000, 2000 * 1.001);                    // work conserving
        Assert.InRange(deviceMs, 1, 1 + 0.5 + 0.5);                           // queueing in the device stays near the tolerance
        Assert.InRange(snap.OutstandingCostWindow, 2, 6);                     // ~ lanes x (1 + tolerance) small requests
        Assert.InRange(snap.BaseLatency.TotalMilliseconds, 0.99, 1.2);
    }

    [Fact]
    public void DeepClosedLoop_FixedBound_QueuesInTheDevice()
    {
        // The same run with the fixed bound of 32: the device queue holds 30 and each request waits ~16 ms there.
        using var sim = Device(adaptive: false);
        var c = sim.AddClient("c", ServiceLevel.BestEffort, depth: 32);
        c.Start();
        sim.Run(TimeSpan.FromSeconds(2));
        double deviceMs = c.DeviceTicks * 1e3 / sim.Time.TimestampFrequency / c.Completed;
        Assert.InRange(deviceMs, 12, 17);
        Assert.True(double.IsPositiveInfinity(sim.Scheduler.GetSnapshot().OutstandingCostWindow));
    }

    [Theory]
    [InlineData(false, 0, 300)]     // fixed bound 32: gold waits in the device behind the neighbour's 30
    [InlineData(true, 500, 2000)]   // adaptive: the scheduler sends gold's requests first, and they are served
    public void ShallowReservedClient_BehindDeepNeighbour_GetsItsReservationOnlyWhenAdaptive(bool adaptive, double minGold, double maxGold)
    {
        using var sim = Device(adaptive);
        var gold = sim.AddClient("gold", new ServiceLevel { ReservationIops = 500 }, depth: 2);
        var bulk = sim.AddClient("bulk", ServiceLevel.BestEffort, depth: 32);
        bulk.Start();
        gold.Start();
        sim.Run(TimeSpan.FromSeconds(4));

        double goldIops = gold.Iops(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4));
        double total = goldIops + bulk.Iops(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4));
        Assert.InRange(goldIops, minGold, maxGold);
        Assert.InRange(total, 0.95 * 2000, 2000 * 1.001);
    }

    [Fact]
    public void LargeRequest_GoesWhileCostIsBelowWindow_ThenHoldsTheRestUntilItCompletes()
    {
        var time = new FakeTimeProvider();
        using var s = new QosScheduler(new QosSchedulerOptions
        {
            MaxOutstanding = 4,
            AdaptiveOutstanding = true,
            TimeProvider = time,
            RunContinuationsAsynchronously = false,
        });
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        Assert.Equal(2, s.GetSnapshot().OutstandingCostWindow); // starts at AdaptiveMinCost
        var small1 = s.AcquireAsync(f, 4096);
        var large = s.AcquireAsync(f, 1 << 20);                    // 1.06 outstanding < 2: goes, 18.1 after
        var small2 = s.AcquireAsync(f, 4096);
        Assert.True(small1.IsCompleted && large.IsCompleted);
        Assert.False(small2.IsCompleted);
        Assert.Equal(1 + 4096 / 65536.0 + 17, s.GetSnapshot().OutstandingCost, 6);

        small1.Done().Dispose();
        Assert.False(small2.IsCompleted);                          // 17 still outstanding
        large.Done().Dispose();
        Assert.True(small2.IsCompleted);
        small2.Done().Dispose();
        Assert.Equal(0, s.GetSnapshot().OutstandingCost);
    }

    [Fact]
    public void FullWindow_HoldsTheWeightPhase_NotARequestDueByItsReservation()
    {
        var time = new FakeTimeProvider();
        using var s = new QosScheduler(new QosSchedulerOptions
        {
            MaxOutstanding = 8,
            AdaptiveOutstanding = true,
            ReservationBurst = TimeSpan.Zero, // strict pacing: g2 is due 10 ms after g1
            TimeProvider = time,
            RunContinuationsAsynchronously = false,
        });
        var bulk = s.RegisterFunction("bulk", ServiceLevel.BestEffort);
        var gold = s.RegisterFunction("gold", new ServiceLevel { ReservationIops = 100 });
        var b1 = s.AcquireAsync(bulk, 0);
        var b2 = s.AcquireAsync(bulk, 0);                           // cost 2 outstanding: the window (2) is full
        var b3 = s.AcquireAsync(bulk, 0);
        var g1 = s.AcquireAsync(gold, 4096);
        var g2 = s.AcquireAsync(gold, 4096);                        // its reservation is not due for 10 ms

        Assert.True(b1.IsCompleted && b2.IsCompleted);
        Assert.False(b3.IsCompleted);
        Assert.True(g1.IsCompleted);
        Assert.Equal(DispatchPhase.Reservation, g1.Done().Phase);
        Assert.False(g2.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(10));                // due now; the next completion sends it
        b1.Done().Dispose();                                        // b2 + g1 still fill the window
        Assert.True(g2.IsCompleted);
        Assert.False(b3.IsCompleted);

        b2.Done().Dispose();
        g1.Done().Dispose();
        g2.Done().Dispose();
        Assert.True(b3.IsCompleted);
        b3.Done().Dispose();
    }

    [Fact]
    public void Window_ShrinksWhenSmallLatencyRisesAndGrowsBackWhenItFalls()
    {
        using var sim = Device(adaptive: true, lanes: 2);
        var c = sim.AddClient("c", ServiceLevel.BestEffort, depth: 32);
        c.Start();
        sim.Run(TimeSpan.FromSeconds(2));
        double settled = sim.Scheduler.GetSnapshot().OutstandingCostWindow;

        sim.Lanes = 8;                           // the device gets faster (4x the lanes): the window must open up
        sim.Run(TimeSpan.FromSeconds(3));
        double opened = sim.Scheduler.GetSnapshot().OutstandingCostWindow;
        Assert.True(opened > 3 * settled, $"window {settled:0.0} -> {opened:0.0}");
        Assert.InRange(c.Iops(TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(5)), 0.9 * 8000, 8000 * 1.001);

        sim.Lanes = 2;                           // and slower again: back down, latency back near the base
        sim.Run(TimeSpan.FromSeconds(2));
        Assert.InRange(sim.Scheduler.GetSnapshot().OutstandingCostWindow, 2, 1.5 * settled);
    }

    [Fact]
    public void ConstantLoad_BaseStaysUnloadedAndThroughputHolds()
    {
        // 25 s of constant load, longer than the base's 10-s memory: the base must stay the
        // unloaded latency (not the loaded one the window settles at) and the probes cheap.
        // Tolerance 1: the window settles where every request waits for a lane.
        using var sim = new Simulation(32, s_ms, configure: o => o with { AdaptiveOutstanding = true, AdaptiveLatencyTolerance = 1 }) { Lanes = 2 };
        var c = sim.AddClient("c", ServiceLevel.BestEffort, depth: 32);
        c.Start();
        sim.Run(TimeSpan.FromSeconds(25));
        var snap = sim.Scheduler.GetSnapshot();
        Assert.InRange(snap.BaseLatency.TotalMilliseconds, 0.99, 1.2);
        Assert.InRange(snap.OutstandingCostWindow, 2, 8);
        Assert.InRange(c.Iops(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(25)), 0.95 * 2000, 2000 * 1.001);
    }

    [Fact]
    public void Probe_OneSliceAtTheMinimumPerTenWindows()
    {
        // 8 lanes: the window opens well above the minimum; every 100 slices (10 s) one slice
        // runs at the minimum to re-measure the base, and the window comes back after it.
        using var sim = Device(adaptive: true, lanes: 8);
        var c = sim.AddClient("c", ServiceLevel.BestEffort, depth: 32);
        c.Start();
        var windows = new List<double>();
        for (int i = 0; i < 230; i++)
        {
            sim.Run(TimeSpan.FromMilliseconds(100));
            windows.Add(sim.Scheduler.GetSnapshot().OutstandingCostWindow);
        }
        var probes = Enumerable.Range(20, windows.Count - 21).Where(i => windows[i] == 2).ToList();
        Assert.InRange(probes.Count, 2, 3);                              // ~ t = 10 s and 20 s
        Assert.All(probes, i => Assert.True(windows[i - 1] > 4 && windows[i + 1] > 4, $"slice {i}: {windows[i - 1]} {windows[i]} {windows[i + 1]}"));
        Assert.InRange(probes[1] - probes[0], 95, 105);
    }

    [Fact]
    public void BaseLatency_IgnoresTheOddInstantCommand()
    {
        // Commands that never reach the device (TEST UNIT READY, READ CAPACITY) complete in
        // microseconds; one per three device requests must not become the "unloaded" latency.
        var time = new FakeTimeProvider();
        using var s = new QosScheduler(new QosSchedulerOptions
        {
            MaxOutstanding = 8,
            AdaptiveOutstanding = true,
            TimeProvider = time,
            RunContinuationsAsynchronously = false,
        });
        var f = s.RegisterFunction("f", ServiceLevel.BestEffort);
        for (int i = 0; i < 400; i++)
        {
            if (i % 3 == 0)
                s.AcquireAsync(f, 4096).Done().Dispose(); // INQUIRY with a 4 KiB allocation length
            var grant = s.AcquireAsync(f, 4096).Done();
            time.Advance(s_ms);
            grant.Dispose();
        }
        Assert.InRange(s.GetSnapshot().BaseLatency.TotalMilliseconds, 0.9, 1.15);
    }

    [Fact]
    public void Options_OutOfRange_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new QosScheduler(new QosSchedulerOptions { AdaptiveLatencyTolerance = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new QosScheduler(new QosSchedulerOptions { AdaptiveMinCost = 0.5 }));
    }
}
