namespace Sluice.Qos;

/// <summary>How a <see cref="QosScheduler"/> orders requests.</summary>
public enum QosMode
{
    /// <summary>mClock: reservations, limits and weights per function.</summary>
    MClock,

    /// <summary>No scheduling: arrival order, with the same bound on outstanding requests (for comparison).</summary>
    Fifo,
}

/// <summary>Which rule let a request go to the back end.</summary>
public enum DispatchPhase
{
    /// <summary>Its reservation tag was due (constraint-based phase).</summary>
    Reservation,

    /// <summary>It had the smallest proportional tag among functions under their limit (weight-based phase).</summary>
    Weight,

    /// <summary>FIFO mode: its turn in arrival order.</summary>
    Fifo,
}

/// <summary>Settings of one device's scheduler. Every figure has a default.</summary>
public sealed record QosSchedulerOptions
{
    /// <summary>Default for <see cref="MaxOutstanding"/>.</summary>
    public const int DefaultMaxOutstanding = 32;

    /// <summary>Default for <see cref="CostUnitBytes"/>.</summary>
    public const int DefaultCostUnitBytes = 64 * 1024;

    /// <summary>Scheduling or plain FIFO.</summary>
    public QosMode Mode { get; init; } = QosMode.MClock;

    /// <summary>
    /// Requests allowed at the back end at once (config key <c>qos.maxOutstanding</c>). Beyond it
    /// requests wait in the scheduler, so that the scheduler, not the device queue, picks the order.
    /// </summary>
    public int MaxOutstanding { get; init; } = DefaultMaxOutstanding;

    /// <summary>
    /// Size normalisation of the proportional (weight) cost: a request of <c>b</c> bytes costs
    /// <c>1 + b / CostUnitBytes</c>, i.e. a fixed per-I/O part plus a transfer part
    /// (config key <c>qos.costUnitBytes</c>).
    /// </summary>
    public int CostUnitBytes { get; init; } = DefaultCostUnitBytes;

    /// <summary>
    /// Bound the back end's outstanding work adaptively as well (config key <c>qos.adaptiveOutstanding</c>):
    /// besides at most <see cref="MaxOutstanding"/> requests, a request is sent only while the cost
    /// outstanding (<c>1 + bytes / CostUnitBytes</c> per request, the weight-phase unit) is below a
    /// window that a delay-based controller keeps where small requests' device latency stays within
    /// <see cref="AdaptiveLatencyTolerance"/> of its unloaded value (see <see cref="QosScheduler"/>).
    /// </summary>
    public bool AdaptiveOutstanding { get; init; }

    /// <summary>
    /// How much longer than unloaded (the smallest slice mean of recent history) small requests'
    /// dispatch-to-completion latency may be before the adaptive window shrinks: 0.5 = 50% longer,
    /// i.e. about half a request of queueing per device lane.
    /// </summary>
    public double AdaptiveLatencyTolerance { get; init; } = 0.5;

    /// <summary>The adaptive window, in cost units, never goes below this (2: two small requests).</summary>
    public double AdaptiveMinCost { get; init; } = 2;

    /// <summary>
    /// The reservation phase paces a function at <c>(1 + ReservationHeadroom) x</c> its reservation
    /// (never above its limit), config key <c>qos.reservationHeadroom</c>. A function that gets no more
    /// than its reservation would otherwise receive it exactly on average, so completion jitter puts
    /// about half of all one-second windows a little under it; 0.02 keeps them above.
    /// </summary>
    public double ReservationHeadroom { get; init; } = DefaultReservationHeadroom;

    /// <summary>Default for <see cref="ReservationHeadroom"/>.</summary>
    public const double DefaultReservationHeadroom = 0.02;

    /// <summary>
    /// Reservation credit a function keeps across a short pause (config key <c>qos.reservationBurstMs</c>):
    /// a request's reservation tag is <c>max(R' + dR, arrival - ReservationBurst)</c> rather than
    /// <c>max(R' + dR, arrival)</c>. A closed-loop client (a fixed queue depth) has nothing queued
    /// while all its commands are at the device, so each completion-and-resubmit looks like a return
    /// from idle; with no credit its next few requests are spaced <c>dR</c> apart from that moment,
    /// the spacing adds to its latency and keeps it below the very reservation it paces (the Ceph
    /// dmClock scheduler's "anticipation timeout" answers the same problem). Up to this much unused
    /// reservation carries over, so at most <c>ReservationBurst x reservation</c> requests go at once
    /// after a pause; 0 = strict mClock.
    /// </summary>
    public TimeSpan ReservationBurst { get; init; } = DefaultReservationBurst;

    /// <summary>Default for <see cref="ReservationBurst"/>: 10 ms.</summary>
    public static readonly TimeSpan DefaultReservationBurst = TimeSpan.FromMilliseconds(10);

    /// <summary>The sliding window over which per-function latency quantiles are reported.</summary>
    public TimeSpan LatencyWindow { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The window is kept as this many slices; the hold-back controller runs once per slice
    /// (every <c>LatencyWindow / LatencyWindowSlices</c>, 100 ms by default) on the slice just closed.
    /// </summary>
    public int LatencyWindowSlices { get; init; } = 10;

    /// <summary>
    /// A latency target is judged on at least this many completions: slices are pooled until the
    /// function has this many (or a whole <see cref="LatencyWindow"/> has passed), so that a p99 is
    /// not simply the largest of a few samples and one late completion does not hold back everyone
    /// else. 1 judges every slice on its own.
    /// </summary>
    public int LatencyMinSamples { get; init; } = 100;

    /// <summary>Multiplicative decrease of the held-back functions' shared weight-phase rate per missed judgement.</summary>
    public double HoldBackDecrease { get; init; } = 0.5;

    /// <summary>Additive recovery of the hold-back scale per judgement in which every target is met.</summary>
    public double HoldBackRecovery { get; init; } = 0.1;

    /// <summary>The hold-back scale never goes below this.</summary>
    public double HoldBackMinScale { get; init; } = 1.0 / 64;

    /// <summary>
    /// The held-back functions together still get at least this many cost units per second (about as
    /// many small I/Os) in the weight phase.
    /// </summary>
    public double HoldBackMinIops { get; init; } = 10;

    /// <summary>
    /// Run the awaiting code of a dispatched request on the thread pool (default) rather than inline
    /// on the thread that freed the slot. Inline is for deterministic tests and benchmarks.
    /// </summary>
    public bool RunContinuationsAsynchronously { get; init; } = true;

    /// <summary>Clock for tags, latencies and timers.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxOutstanding);
        if (!(AdaptiveLatencyTolerance > 0) || double.IsInfinity(AdaptiveLatencyTolerance))
            throw new ArgumentOutOfRangeException(nameof(AdaptiveLatencyTolerance), AdaptiveLatencyTolerance, "must be > 0");
        ArgumentOutOfRangeException.ThrowIfLessThan(ReservationBurst, TimeSpan.Zero);
        if (!(ReservationHeadroom >= 0 && ReservationHeadroom <= 1))
            throw new ArgumentOutOfRangeException(nameof(ReservationHeadroom), ReservationHeadroom, "must be in [0, 1]");
        if (!(AdaptiveMinCost >= 1) || double.IsInfinity(AdaptiveMinCost))
            throw new ArgumentOutOfRangeException(nameof(AdaptiveMinCost), AdaptiveMinCost, "must be >= 1");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(CostUnitBytes);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(LatencyWindow, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(LatencyWindowSlices);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(LatencyMinSamples);
        if (!(HoldBackDecrease > 0 && HoldBackDecrease < 1))
            throw new ArgumentOutOfRangeException(nameof(HoldBackDecrease), HoldBackDecrease, "must be in (0, 1)");
        if (!(HoldBackRecovery > 0 && HoldBackRecovery <= 1))
            throw new ArgumentOutOfRangeException(nameof(HoldBackRecovery), HoldBackRecovery, "must be in (0, 1]");
        if (!(HoldBackMinScale > 0 && HoldBackMinScale <= 1))
            throw new ArgumentOutOfRangeException(nameof(HoldBackMinScale), HoldBackMinScale, "must be in (0, 1]");
        if (!(HoldBackMinIops > 0))
            throw new ArgumentOutOfRangeException(nameof(HoldBackMinIops), HoldBackMinIops, "must be > 0");
        ArgumentNullException.ThrowIfNull(TimeProvider);
    }
}
