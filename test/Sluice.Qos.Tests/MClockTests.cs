namespace Sluice.Qos.Tests;

/// <summary>
/// Behaviour of the mClock scheduler on a simulated device of 8 parallel 1 ms slots (8000 IOPS),
/// measured on the fake clock after a warm-up.
/// </summary>
public class MClockTests
{
    private const double Capacity = 8000;
    private static readonly TimeSpan s_warm = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan s_end = TimeSpan.FromMilliseconds(2500);

    [Fact]
    public void Reservation_UnderContention_IsMet()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { ReservationIops = 5000 });
        var b = sim.AddClient("b", ServiceLevel.BestEffort);
        var c = sim.AddClient("c", ServiceLevel.BestEffort);
        a.Start(); b.Start(); c.Start();

        sim.Run(s_end);

        Assert.InRange(a.Iops(s_warm, s_end), 5000 * 0.98, 5000 * 1.05);
        // The remaining 3000 IOPS are split evenly.
        Assert.InRange(b.Iops(s_warm, s_end), 1500 * 0.9, 1500 * 1.1);
        Assert.InRange(c.Iops(s_warm, s_end), 1500 * 0.9, 1500 * 1.1);
    }

    [Fact]
    public void Reservation_InMbpsWithLargeRequests_IsMet()
    {
        using var sim = new Simulation();
        // 64 KiB requests: 100 MB/s is 1526 IOPS, far above a 1/11 weight share (727 IOPS).
        var a = sim.AddClient("a", new ServiceLevel { ReservationMbps = 100 }, bytes: 65536);
        var b = sim.AddClient("b", new ServiceLevel { Weight = 10 }, bytes: 65536);
        a.Start(); b.Start();

        sim.Run(s_end);

        double mbps = a.Iops(s_warm, s_end) * 65536 / 1e6;
        Assert.InRange(mbps, 100 * 0.98, 100 * 1.08);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Limit_Backlogged_NeverExceededByMoreThan5PercentPerWindow(bool contended)
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { LimitIops = 1000 }, depth: 32);
        var b = sim.AddClient("b", ServiceLevel.BestEffort, depth: 32);
        a.Start();
        if (contended)
            b.Start();

        sim.Run(s_end);

        var window = TimeSpan.FromMilliseconds(100);
        for (var t = TimeSpan.Zero; t < s_end; t += window)
            Assert.InRange(a.CompletedBetween(t, t + window), 0, 105);
        Assert.InRange(a.Iops(s_warm, s_end), 1000 * 0.98, 1000 * 1.02);
        if (contended)
            Assert.InRange(b.Iops(s_warm, s_end), (Capacity - 1000) * 0.98, Capacity - 1000 + 50);
        var stats = sim.Scheduler.GetSnapshot().Functions.Single(f => f.Name == "a");
        Assert.True(stats.ThrottledTime > TimeSpan.Zero);
    }

    [Fact]
    public void LimitMbps_LargeRequests_CapsBandwidthPerWindow()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { LimitMbps = 8, LimitIops = 5000 }, bytes: 65536, depth: 32);
        var b = sim.AddClient("b", ServiceLevel.BestEffort, depth: 32);
        a.Start(); b.Start();

        sim.Run(s_end);

        // 500 ms windows: at 64 KiB a request is 8% of 100 ms' worth, too coarse for 5%.
        var window = TimeSpan.FromMilliseconds(500);
        for (var t = TimeSpan.Zero; t < s_end; t += window)
            Assert.InRange(a.CompletedBetween(t, t + window) * 65536.0, 0, 8e6 / 2 * 1.05);
        Assert.InRange(a.Iops(s_warm, s_end) * 65536 / 1e6, 8 * 0.95, 8 * 1.05);
    }

    [Fact]
    public void Weights_AfterReservation_SplitRemainderWithin10Percent()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { ReservationIops = 4000 });
        var b = sim.AddClient("b", new ServiceLevel { Weight = 1 });
        var c = sim.AddClient("c", new ServiceLevel { Weight = 3 });
        a.Start(); b.Start(); c.Start();

        sim.Run(s_end);

        Assert.InRange(a.Iops(s_warm, s_end), 4000 * 0.98, 4000 * 1.05);
        double rest = Capacity - a.Iops(s_warm, s_end);
        Assert.InRange(b.Iops(s_warm, s_end), rest / 4 * 0.9, rest / 4 * 1.1);
        Assert.InRange(c.Iops(s_warm, s_end), rest * 3 / 4 * 0.9, rest * 3 / 4 * 1.1);
    }

    [Fact]
    public void Weights_NoReservations_SplitCapacityInProportion()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { Weight = 1 });
        var b = sim.AddClient("b", new ServiceLevel { Weight = 2 });
        var c = sim.AddClient("c", new ServiceLevel { Weight = 5 });
        a.Start(); b.Start(); c.Start();

        sim.Run(s_end);

        Assert.InRange(a.Iops(s_warm, s_end), 1000 * 0.9, 1000 * 1.1);
        Assert.InRange(b.Iops(s_warm, s_end), 2000 * 0.9, 2000 * 1.1);
        Assert.InRange(c.Iops(s_warm, s_end), 5000 * 0.9, 5000 * 1.1);
    }

    [Fact]
    public void Weights_IdleFunctionReactivated_GetsNoBurstOfSavedShare()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", ServiceLevel.BestEffort, depth: 32);
        var b = sim.AddClient("b", ServiceLevel.BestEffort, depth: 32);
        a.Start(); b.Start();
        sim.Run(TimeSpan.FromMilliseconds(300));
        b.Stop();
        sim.Run(TimeSpan.FromMilliseconds(1000)); // a alone: its P tags run far ahead of b's
        var back = sim.Elapsed;
        b.Start();
        sim.Run(TimeSpan.FromMilliseconds(200));

        var first = TimeSpan.FromMilliseconds(50);
        int bFirst = b.CompletedBetween(back, back + first);
        int aFirst = a.CompletedBetween(back, back + first);
        Assert.InRange(bFirst / (double)(aFirst + bFirst), 0.40, 0.60);
    }

    [Fact]
    public void Reservation_IdleFunctionReactivated_GetsNoBurstOfSavedCredit()
    {
        using var sim = new Simulation();
        // a's weight is tiny, so nearly all it gets is its reservation.
        var a = sim.AddClient("a", new ServiceLevel { ReservationIops = 1000, Weight = 0.001 }, depth: 64);
        var c = sim.AddClient("c", ServiceLevel.BestEffort, depth: 32);
        c.Start();
        a.Start();
        sim.Run(TimeSpan.FromMilliseconds(300));
        a.Stop();
        sim.Run(TimeSpan.FromMilliseconds(1000));
        var back = sim.Elapsed;
        a.Start();
        sim.Run(TimeSpan.FromMilliseconds(300));

        var window = TimeSpan.FromMilliseconds(100);
        // The second's worth of reservation it didn't use is gone: ~100 per 100 ms (paced 2% above),
        // from the first window, plus at most ReservationBurst (10 ms, 10 requests) carried over.
        Assert.InRange(a.CompletedBetween(back, back + window), 90, 102 + 10 + 1);
        Assert.InRange(a.CompletedBetween(back + window, back + 2 * window), 95, 110);
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(10, true)]
    public void Reservation_ClosedLoopClient_NotPacedBelowItsReservation(int burstMs, bool met)
    {
        // a: reservation 1000 IOPS at depth 4 on a device that takes 3 ms: at most 4 / 3 ms = 1333
        // IOPS, and only if each resubmitted request goes at once. c keeps the device busy by weight.
        using var sim = new Simulation(service: TimeSpan.FromMilliseconds(3), maxOutstanding: 16,
            configure: o => o with { ReservationBurst = TimeSpan.FromMilliseconds(burstMs) });
        var a = sim.AddClient("a", new ServiceLevel { ReservationIops = 1000, Weight = 0.001 }, depth: 4);
        var c = sim.AddClient("c", ServiceLevel.BestEffort, depth: 64);
        a.Start(); c.Start();
        sim.Run(TimeSpan.FromSeconds(2));

        double iops = a.Iops(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));
        if (met)
            Assert.InRange(iops, 1000, 1333);
        else
            Assert.True(iops < 1000, $"strict pacing gave {iops} IOPS"); // the spacing adds to its latency
    }

    [Fact]
    public void WorkConservation_AllBacklogged_DeviceNeverIdle()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { ReservationIops = 1000, Weight = 0.5 });
        var b = sim.AddClient("b", new ServiceLevel { Weight = 1 });
        var c = sim.AddClient("c", new ServiceLevel { ReservationIops = 200, Weight = 5 });
        a.Start(); b.Start(); c.Start();

        sim.Run(s_end);

        double total = a.Iops(s_warm, s_end) + b.Iops(s_warm, s_end) + c.Iops(s_warm, s_end);
        Assert.InRange(total, Capacity * 0.99, Capacity * 1.01);
    }

    [Fact]
    public void WorkConservation_SingleReservedFunction_GetsWholeDevice()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { ReservationIops = 100, Weight = 0.01 });
        a.Start();

        sim.Run(s_end);

        Assert.InRange(a.Iops(s_warm, s_end), Capacity * 0.99, Capacity * 1.01);
        var stats = sim.Scheduler.GetSnapshot().Functions.Single();
        Assert.InRange(stats.ReservationDispatches, 200, 300); // 100 IOPS x 2.5 s
        Assert.True(stats.WeightDispatches > 15000);
    }

    [Fact]
    public void Cost_LargerRequests_CostMoreInWeightPhase()
    {
        using var sim = new Simulation();
        var small = sim.AddClient("small", ServiceLevel.BestEffort, bytes: 4096);
        var large = sim.AddClient("large", ServiceLevel.BestEffort, bytes: 256 * 1024);
        small.Start(); large.Start();

        sim.Run(s_end);

        // cost = 1 + bytes/64 KiB: 1.0625 vs 5, so equal weights give IOPS in the inverse ratio.
        double expected = 5 / 1.0625;
        double ratio = small.Iops(s_warm, s_end) / large.Iops(s_warm, s_end);
        Assert.InRange(ratio, expected * 0.9, expected * 1.1);
    }

    [Fact]
    public void UpdateServiceLevel_RaisedLimit_TakesEffectWithoutDrops()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { LimitIops = 500 }, depth: 32);
        var b = sim.AddClient("b", ServiceLevel.BestEffort, depth: 32);
        a.Start(); b.Start();
        sim.Run(TimeSpan.FromSeconds(1));

        sim.Scheduler.UpdateServiceLevel("a", new ServiceLevel { LimitIops = 2000 });
        sim.Run(TimeSpan.FromSeconds(1));
        a.Stop(); b.Stop();
        sim.Run(TimeSpan.FromSeconds(1));

        Assert.InRange(a.Iops(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), 500 * 0.97, 500 * 1.05);
        Assert.InRange(a.Iops(TimeSpan.FromMilliseconds(1050), TimeSpan.FromSeconds(2)), 2000 * 0.97, 2000 * 1.05);
        Assert.Equal(a.Issued, a.Completed);
        Assert.Equal(b.Issued, b.Completed);
        Assert.Equal(2000, sim.Scheduler.GetSnapshot().Functions.Single(f => f.Name == "a").ServiceLevel.LimitIops);
    }

    [Fact]
    public void UpdateServiceLevel_HeadWaitingOnTinyLimit_IsRetaggedAtOnce()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", new ServiceLevel { LimitIops = 0.5 }, depth: 4);
        a.Start();
        sim.Run(TimeSpan.FromMilliseconds(100)); // one request went; the next is due in 2 s
        Assert.Equal(1, a.Completed);

        sim.Scheduler.UpdateServiceLevel("a", new ServiceLevel { LimitIops = 1000 });
        sim.Run(TimeSpan.FromMilliseconds(100));

        Assert.InRange(a.Completed, 90, 110);
    }

    [Fact]
    public void UnknownFunction_Update_Throws()
    {
        using var sim = new Simulation();
        Assert.Throws<KeyNotFoundException>(() => sim.Scheduler.UpdateServiceLevel("nope", ServiceLevel.BestEffort));
    }

    [Fact]
    public void RegisterFunction_DuplicateName_Throws()
    {
        using var sim = new Simulation();
        sim.Scheduler.RegisterFunction("a", ServiceLevel.BestEffort);
        Assert.Throws<ArgumentException>(() => sim.Scheduler.RegisterFunction("a", ServiceLevel.BestEffort));
    }

    [Fact]
    public void Snapshot_AfterRun_CountsIosBytesAndLatency()
    {
        using var sim = new Simulation();
        var a = sim.AddClient("a", ServiceLevel.BestEffort, bytes: 8192, depth: 8);
        a.Start();
        sim.Run(TimeSpan.FromSeconds(1));
        a.Stop();
        sim.Run(TimeSpan.FromMilliseconds(10));

        var s = sim.Scheduler.GetSnapshot();
        var f = Assert.Single(s.Functions);
        Assert.Equal(a.Completed, f.CompletedIos);
        Assert.Equal(a.Completed * 8192, f.CompletedBytes);
        Assert.Equal(0, f.QueueDepth);
        Assert.Equal(0, f.Outstanding);
        Assert.Equal(f.CompletedIos, f.ReservationDispatches + f.WeightDispatches);
        // Depth 8 on 8 slots of 1 ms: every request takes 1 ms (+ one clock step).
        Assert.InRange(f.Latency.P50.TotalMilliseconds, 0.9, 1.2);
        Assert.InRange(f.Latency.P99.TotalMilliseconds, 0.9, 1.2);
        Assert.True(f.WindowLatency.Count > 0);
    }
}
