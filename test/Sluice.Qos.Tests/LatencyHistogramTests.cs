namespace Sluice.Qos.Tests;

public class LatencyHistogramTests
{
    [Fact]
    public void IndexOf_AcrossRange_IsMonotonicAndConsistentWithLowerBound()
    {
        int last = -1;
        for (long v = 0; v < 1 << 22; v = v < 64 ? v + 1 : v + v / 13)
        {
            int i = LatencyHistogram.IndexOf(v);
            Assert.True(i >= last);
            Assert.True(LatencyHistogram.LowerBoundOf(i) <= v);
            Assert.True(i + 1 >= LatencyHistogram.BucketCount || LatencyHistogram.LowerBoundOf(i + 1) > v);
            last = i;
        }
        Assert.Equal(LatencyHistogram.BucketCount - 1, LatencyHistogram.IndexOf(long.MaxValue));
    }

    [Fact]
    public void Quantile_UniformValues_Within12Percent()
    {
        var h = new LatencyHistogram();
        for (int v = 1; v <= 100_000; v++)
            h.Record(v);
        Assert.InRange(h.Quantile(0.5), 50_000 * 0.88, 50_000 * 1.125);
        Assert.InRange(h.Quantile(0.99), 99_000 * 0.88, 99_000 * 1.125);
        Assert.InRange(h.Quantile(0.999), 99_900 * 0.88, 100_000);
        Assert.Equal(100_000, h.MaxMicros);
    }

    [Fact]
    public void Quantile_Empty_IsZero() => Assert.Equal(0, new LatencyHistogram().Quantile(0.99));
}

public class ServiceLevelTests
{
    [Theory]
    [InlineData(0, 0, 0, 0, 0)]     // weight 0
    [InlineData(100, 0, 50, 0, 1)]  // reservation above limit (IOPS)
    [InlineData(0, 10, 0, 5, 1)]    // reservation above limit (MB/s)
    [InlineData(-1, 0, 0, 0, 1)]    // negative
    public void Validate_BadLevel_Throws(double rIops, double rMbps, double lIops, double lMbps, double weight)
    {
        var level = new ServiceLevel { ReservationIops = rIops, ReservationMbps = rMbps, LimitIops = lIops, LimitMbps = lMbps, Weight = weight };
        Assert.Throws<ArgumentException>(level.Validate);
    }

    [Fact]
    public void Validate_Consistent_DoesNotThrow() =>
        new ServiceLevel { ReservationIops = 100, LimitIops = 100, ReservationMbps = 1, LimitMbps = 10, Weight = 0.5, LatencyTargetMs = 2 }.Validate();
}
