namespace Sluice.Cli.Commands;

/// <summary>
/// A log-linear latency histogram in the HDR style: values (nanoseconds) are bucketed by their
/// highest set bit and the next <see cref="SubBits"/> bits, so every bucket is within ~3% of its
/// values. Recording is an array increment: no allocation, no lock (one histogram per worker,
/// merged at the end).
/// </summary>
internal sealed class BenchHistogram
{
    private const int SubBits = 5;
    private const int SubCount = 1 << SubBits;
    private readonly long[] _counts = new long[64 * SubCount];

    public long Count { get; private set; }

    public long Max { get; private set; }

    public long Min { get; private set; } = long.MaxValue;

    public double Sum { get; private set; }

    public void Record(long value)
    {
        if (value < 0)
        {
            value = 0;
        }

        _counts[Index(value)]++;
        Count++;
        Sum += value;
        if (value > Max)
        {
            Max = value;
        }

        if (value < Min)
        {
            Min = value;
        }
    }

    public void Add(BenchHistogram other)
    {
        for (int i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
        Sum += other.Sum;
        Max = Math.Max(Max, other.Max);
        Min = Math.Min(Min, other.Min);
    }

    /// <summary>The value at percentile <paramref name="p"/> (0..100): the midpoint of its bucket, capped at the maximum.</summary>
    public long Percentile(double p)
    {
        if (Count == 0)
        {
            return 0;
        }

        long rank = (long)Math.Ceiling(p / 100.0 * Count);
        if (rank < 1)
        {
            rank = 1;
        }

        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                var (low, high) = Bounds(i);
                return Math.Min(low + ((high - low) / 2), Max);
            }
        }

        return Max;
    }

    internal static int Index(long value)
    {
        if (value < SubCount)
        {
            return (int)value;
        }

        int msb = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)value);
        int shift = msb - SubBits;
        int sub = (int)((value >> shift) & (SubCount - 1));
        return ((shift + 1) * SubCount) + sub;
    }

    internal static (long Low, long High) Bounds(int index)
    {
        if (index < SubCount)
        {
            return (index, index);
        }

        int shift = (index / SubCount) - 1;
        long sub = index % SubCount;
        long low = (SubCount + sub) << shift;
        return (low, low + (1L << shift) - 1);
    }
}
