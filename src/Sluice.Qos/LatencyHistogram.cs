namespace Sluice.Qos;

/// <summary>
/// A log-linear (HDR-style) histogram of latencies in microseconds: values below 8 µs have a bucket
/// each; above, every power of two is split into 8 equal buckets, so a reported quantile is within
/// 12.5% of the truth, up to 2^37 µs (38 hours; larger values land in the last bucket).
/// Not thread-safe: the scheduler updates it under its lock.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int SubBits = 3;
    private const int Sub = 1 << SubBits;
    private const int MaxExponent = 36;
    internal const int BucketCount = Sub + (MaxExponent - SubBits + 1) * Sub;

    private readonly long[] _counts = new long[BucketCount];

    public long Count { get; private set; }

    public long MaxMicros { get; private set; }

    public void Record(long micros)
    {
        if (micros < 0)
            micros = 0;
        _counts[IndexOf(micros)]++;
        Count++;
        if (micros > MaxMicros)
            MaxMicros = micros;
    }

    public void Add(LatencyHistogram other)
    {
        if (other.Count == 0)
            return;
        var src = other._counts;
        for (int i = 0; i < src.Length; i++)
            _counts[i] += src[i];
        Count += other.Count;
        MaxMicros = Math.Max(MaxMicros, other.MaxMicros);
    }

    /// <summary>Copies the bucket counts into <paramref name="counts"/> (at least <see cref="BucketCount"/> long).</summary>
    public void CopyTo(Span<long> counts) => _counts.CopyTo(counts);

    public void Clear()
    {
        if (Count == 0)
            return;
        Array.Clear(_counts);
        Count = 0;
        MaxMicros = 0;
    }

    /// <summary>The value at quantile <paramref name="q"/> (0..1), as the middle of its bucket; 0 when empty.</summary>
    public long Quantile(double q)
    {
        if (Count == 0)
            return 0;
        long rank = Math.Max(1, (long)Math.Ceiling(q * Count));
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
                return Math.Min(MiddleOf(i), MaxMicros);
        }
        return MaxMicros;
    }

    internal static int IndexOf(long micros)
    {
        if (micros < Sub)
            return (int)micros;
        int exponent = 63 - (int)long.LeadingZeroCount(micros);
        if (exponent > MaxExponent)
            return BucketCount - 1;
        int sub = (int)(micros >> (exponent - SubBits)) & (Sub - 1);
        return Sub + (exponent - SubBits) * Sub + sub;
    }

    internal static long LowerBoundOf(int index)
    {
        if (index < Sub)
            return index;
        int exponent = (index - Sub) / Sub + SubBits;
        int sub = (index - Sub) % Sub;
        return (1L << exponent) + ((long)sub << (exponent - SubBits));
    }

    private static long MiddleOf(int index)
    {
        if (index < Sub)
            return index;
        int exponent = (index - Sub) / Sub + SubBits;
        return LowerBoundOf(index) + (1L << (exponent - SubBits)) / 2;
    }
}
