namespace Sluice.Qos.Tests;

/// <summary><see cref="QosSchedulerOptions.ReservationHeadroom"/>: the reservation phase paces a little above the reservation.</summary>
public class ReservationHeadroomTests
{
    // 8 slots x 1 ms = 8000 IOPS; gold's weight share (1 of 101) is far below its reservation, so
    // the reservation phase alone decides its rate.
    private static double GoldIops(double headroom, double reservation, double limit = 0)
    {
        using var sim = new Simulation(8, TimeSpan.FromMilliseconds(1), configure: o => o with { ReservationHeadroom = headroom });
        var gold = sim.AddClient("gold", new ServiceLevel { ReservationIops = reservation, LimitIops = limit }, depth: 16);
        var other = sim.AddClient("other", new ServiceLevel { Weight = 100 }, depth: 32);
        other.Start();
        gold.Start();
        sim.Run(TimeSpan.FromSeconds(3));
        return gold.Iops(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void NoHeadroom_ReservationExactly() => Assert.InRange(GoldIops(0, 1000), 995, 1005);

    [Fact]
    public void DefaultHeadroom_TwoPercentAbove() => Assert.InRange(GoldIops(QosSchedulerOptions.DefaultReservationHeadroom, 1000), 1015, 1025);

    [Fact]
    public void Headroom_NeverAboveTheLimit() => Assert.InRange(GoldIops(0.5, 1000, limit: 1100), 1095, 1100.5);
}
