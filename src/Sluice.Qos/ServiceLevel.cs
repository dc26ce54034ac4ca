namespace Sluice.Qos;

/// <summary>
/// What one function is promised by its device's <see cref="QosScheduler"/>. Rates of 0 mean
/// "none". MB/s is 10^6 bytes per second.
/// </summary>
/// <remarks>
/// A dimension pair (IOPS, MB/s) is enforced as follows, for a request of <c>b</c> bytes:
/// a <em>reservation</em> is met when either the IOPS or the MB/s figure is reached (the request's
/// reservation spacing is the smaller of <c>1/ReservationIops</c> and <c>b/ReservationBytesPerSecond</c>),
/// so small requests are guaranteed by count and large ones by bandwidth;
/// a <em>limit</em> caps both (the spacing is the larger of the two), whichever binds first.
/// <see cref="Weight"/> shares what is left after reservations, in proportion, with the size-based
/// cost of <see cref="QosSchedulerOptions.CostUnitBytes"/>.
/// <see cref="Priority"/> matters only together with <see cref="LatencyTargetMs"/>: while a function
/// with a target misses it, functions of lower priority are held back (see <see cref="QosScheduler"/>).
/// </remarks>
public sealed record ServiceLevel
{
    /// <summary>A best-effort level: weight 1, no reservation, limit, target.</summary>
    public static ServiceLevel BestEffort { get; } = new();

    /// <summary>Guaranteed I/Os per second (0 = none).</summary>
    public double ReservationIops { get; init; }

    /// <summary>Guaranteed MB/s, 10^6 bytes per second (0 = none).</summary>
    public double ReservationMbps { get; init; }

    /// <summary>At most this many I/Os per second (0 = none).</summary>
    public double LimitIops { get; init; }

    /// <summary>At most this many MB/s, 10^6 bytes per second (0 = none).</summary>
    public double LimitMbps { get; init; }

    /// <summary>Share of the spare capacity, relative to other functions' weights; greater than 0.</summary>
    public double Weight { get; init; } = 1;

    /// <summary>Priority class; higher is more important. Used by the latency-target hold-back.</summary>
    public int Priority { get; init; }

    /// <summary>p99 latency target in milliseconds, measured from enqueue to completion (0 = none).</summary>
    public double LatencyTargetMs { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> when a figure is out of range or inconsistent.</summary>
    public void Validate()
    {
        CheckRate(ReservationIops, nameof(ReservationIops));
        CheckRate(ReservationMbps, nameof(ReservationMbps));
        CheckRate(LimitIops, nameof(LimitIops));
        CheckRate(LimitMbps, nameof(LimitMbps));
        CheckRate(LatencyTargetMs, nameof(LatencyTargetMs));
        if (!(Weight > 0) || double.IsInfinity(Weight))
            throw new ArgumentException($"weight must be a positive number (got {Weight})", nameof(Weight));
        if (LimitIops > 0 && ReservationIops > LimitIops)
            throw new ArgumentException($"reservation {ReservationIops} IOPS is above the limit {LimitIops} IOPS", nameof(ReservationIops));
        if (LimitMbps > 0 && ReservationMbps > LimitMbps)
            throw new ArgumentException($"reservation {ReservationMbps} MB/s is above the limit {LimitMbps} MB/s", nameof(ReservationMbps));
    }

    private static void CheckRate(double value, string name)
    {
        if (!(value >= 0) || double.IsInfinity(value))
            throw new ArgumentException($"{name} must be a finite number >= 0 (got {value})", name);
    }
}
