namespace Sluice.Qos;

/// <summary>
/// A function registered with a <see cref="QosScheduler"/>: the key its requests are queued under.
/// All mutable state is owned by the scheduler and touched only under its lock.
/// </summary>
public sealed class FunctionHandle
{
    internal FunctionHandle(QosScheduler owner, string name, ServiceLevel level, in SchedulerConstants k)
    {
        Owner = owner;
        Name = name;
        Total = new LatencyHistogram();
        Slices = new LatencyHistogram[k.Slices];
        for (int i = 0; i < Slices.Length; i++)
            Slices[i] = new LatencyHistogram();
        Apply(level, k);
    }

    /// <summary>The function's name, unique per scheduler.</summary>
    public string Name { get; }

    /// <summary>The service level in force.</summary>
    public ServiceLevel ServiceLevel => Level;

    internal QosScheduler Owner { get; }

    internal ServiceLevel Level = ServiceLevel.BestEffort;
    internal bool Removed;

    // Precomputed from Level, in timestamp ticks: 0 = dimension not set.
    internal double RTicksPerIo, RTicksPerByte, LTicksPerIo, LTicksPerByte, InverseWeight;
    internal bool HasReservation;
    internal long TargetMicros;

    // Waiting requests, oldest first (doubly linked through QosRequest.Prev/Next).
    internal QosRequest? Head, Tail;
    internal int Queued, Outstanding;
    internal int ActiveIndex = -1;

    // mClock tags. *Last are the tags of the most recently tagged request, which is the head while
    // the queue is non-empty; the head's tags are copied to Head* for a cache-friendly scan.
    internal double RLast, LLast, PLast;
    internal double HeadR, HeadL, HeadP, HeadDeltaR, HeadDeltaL, HeadDeltaP;
    internal double ThrottleEnd;

    // Hold-back (latency target of a higher-priority function missed): the scale in force for this
    // function (1 = not held), and the cost units it completed since the last judgement.
    internal double HoldScale = 1;
    internal double SliceCost;
    // I/Os and bytes completed in the slice being closed, against the reservation (HoldBack).
    internal long ReservationSliceIos, ReservationSliceBytes;
    // Completions of the slices not yet judged against the latency target, and how many slices.
    internal readonly LatencyHistogram Pending = new();
    internal int PendingSlices;

    // Statistics.
    internal long CompletedIos, CompletedBytes, ReservationDispatches, WeightDispatches, TargetMisses, SlaWindowsMissed;
    internal double ThrottledTicks;
    internal readonly LatencyHistogram Total;
    internal readonly LatencyHistogram[] Slices;

    internal void Apply(ServiceLevel level, in SchedulerConstants k)
    {
        Level = level;
        LTicksPerIo = level.LimitIops > 0 ? k.Frequency / level.LimitIops : 0;
        LTicksPerByte = level.LimitMbps > 0 ? k.Frequency / (level.LimitMbps * 1e6) : 0;
        // Paced with the headroom, but never faster than the function's own limit.
        double pace = 1 + k.ReservationHeadroom;
        RTicksPerIo = level.ReservationIops > 0 ? Math.Max(k.Frequency / (level.ReservationIops * pace), LTicksPerIo) : 0;
        RTicksPerByte = level.ReservationMbps > 0 ? Math.Max(k.Frequency / (level.ReservationMbps * 1e6 * pace), LTicksPerByte) : 0;
        HasReservation = RTicksPerIo > 0 || RTicksPerByte > 0;
        InverseWeight = 1 / level.Weight;
        TargetMicros = level.LatencyTargetMs > 0 ? (long)Math.Ceiling(level.LatencyTargetMs * 1000) : 0;
    }

    /// <summary>
    /// Reservation spacing for <paramref name="ios"/> I/Os (1, or 0 for a later part of a split I/O)
    /// moving <paramref name="bytes"/>: met by either dimension, so the smaller.
    /// </summary>
    internal double ReservationDelta(int ios, int bytes)
    {
        if (RTicksPerIo > 0)
            return RTicksPerByte > 0 ? Math.Min(ios * RTicksPerIo, bytes * RTicksPerByte) : ios * RTicksPerIo;
        return bytes * RTicksPerByte;
    }

    /// <summary>Limit spacing for <paramref name="ios"/> I/Os moving <paramref name="bytes"/>: both dimensions cap, so the larger.</summary>
    internal double LimitDelta(int ios, int bytes) => Math.Max(ios * LTicksPerIo, bytes * LTicksPerByte);
}

/// <summary>Scheduler-wide figures that tagging needs, copied once so the hot path reads fields.</summary>
internal readonly struct SchedulerConstants
{
    public SchedulerConstants(QosSchedulerOptions options)
    {
        Frequency = options.TimeProvider.TimestampFrequency;
        CostUnitBytes = options.CostUnitBytes;
        ReservationHeadroom = options.ReservationHeadroom;
        ReservationBurstTicks = options.ReservationBurst.TotalSeconds * Frequency;
        Slices = options.LatencyWindowSlices;
    }

    public readonly double Frequency;
    public readonly double CostUnitBytes;
    public readonly double ReservationHeadroom;
    public readonly double ReservationBurstTicks;
    public readonly int Slices;
}
