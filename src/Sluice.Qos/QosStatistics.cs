namespace Sluice.Qos;

/// <summary>Latency quantiles of a set of completed requests.</summary>
public readonly record struct LatencySummary(long Count, TimeSpan P50, TimeSpan P99, TimeSpan P999, TimeSpan Max)
{
    internal static LatencySummary From(LatencyHistogram h) => new(
        h.Count,
        TimeSpan.FromMicroseconds(h.Quantile(0.50)),
        TimeSpan.FromMicroseconds(h.Quantile(0.99)),
        TimeSpan.FromMicroseconds(h.Quantile(0.999)),
        TimeSpan.FromMicroseconds(h.MaxMicros));
}

/// <summary>One function's counters at the time of a <see cref="QosScheduler.GetSnapshot"/>.</summary>
/// <param name="Name">The function.</param>
/// <param name="ServiceLevel">Its current service level.</param>
/// <param name="CompletedIos">Requests completed (grant disposed) since registration.</param>
/// <param name="CompletedBytes">Their bytes.</param>
/// <param name="QueueDepth">Requests waiting in the scheduler now.</param>
/// <param name="Outstanding">Requests dispatched and not yet completed now.</param>
/// <param name="ReservationDispatches">Requests dispatched because their reservation tag was due.</param>
/// <param name="WeightDispatches">Requests dispatched by weight (or in FIFO mode, by arrival).</param>
/// <param name="ThrottledTime">Time the function's next request was held back by its (effective) limit while the device had room.</param>
/// <param name="LatencyTargetMisses">Completed requests slower than the latency target.</param>
/// <param name="SlaWindowsMissed">Controller slices in which the p99 was above the target.</param>
/// <param name="HoldBackScale">1 when not held back; below 1, the factor applied to its weight-phase rate.</param>
/// <param name="Latency">Latency since registration, enqueue to completion.</param>
/// <param name="WindowLatency">Latency over the sliding window (<see cref="QosSchedulerOptions.LatencyWindow"/>).</param>
public sealed record QosFunctionStats(
    string Name,
    ServiceLevel ServiceLevel,
    long CompletedIos,
    long CompletedBytes,
    int QueueDepth,
    int Outstanding,
    long ReservationDispatches,
    long WeightDispatches,
    TimeSpan ThrottledTime,
    long LatencyTargetMisses,
    long SlaWindowsMissed,
    double HoldBackScale,
    LatencySummary Latency,
    LatencySummary WindowLatency);

/// <summary>A device scheduler's state at one moment.</summary>
public sealed record QosSnapshot(
    QosMode Mode,
    int MaxOutstanding,
    int Outstanding,
    int Queued,
    IReadOnlyList<QosFunctionStats> Functions)
{
    /// <summary>
    /// The adaptive bound on outstanding cost (<see cref="QosSchedulerOptions.AdaptiveOutstanding"/>),
    /// in cost units; infinity when the bound is fixed.
    /// </summary>
    public double OutstandingCostWindow { get; init; } = double.PositiveInfinity;

    /// <summary>The cost outstanding now (<c>1 + bytes / CostUnitBytes</c> per request).</summary>
    public double OutstandingCost { get; init; }

    /// <summary>The adaptive controller's unloaded latency of small requests (0 before it has one).</summary>
    public TimeSpan BaseLatency { get; init; }
}
