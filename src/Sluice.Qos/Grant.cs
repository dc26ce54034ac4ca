namespace Sluice.Qos;

/// <summary>
/// Permission to run one request at the back end. Dispose it (or call <see cref="Complete"/>)
/// exactly when the back-end I/O has finished: that frees the slot for the next request and records
/// the latency. A second dispose of the same grant is ignored. For a part of a split I/O
/// (<see cref="QosScheduler.AcquirePartAsync"/>) dispose counts its bytes only, and
/// <see cref="Complete"/> on the last part counts the I/O with the latency given.
/// </summary>
public readonly struct Grant : IDisposable
{
    private readonly QosRequest? _request;
    private readonly int _version;

    internal Grant(QosRequest request, int version)
    {
        _request = request;
        _version = version;
    }

    /// <summary>Why the scheduler dispatched this request; valid until the grant is disposed.</summary>
    public DispatchPhase Phase => _request is { } r && r.Version == _version ? r.Phase : default;

    /// <summary>The I/O finished; its latency is measured from enqueue to now.</summary>
    public void Dispose() => _request?.Scheduler.Release(_request, _version, -1);

    /// <summary>
    /// The I/O finished; it is counted but its latency is not recorded, because the caller reports
    /// latencies of its own (<see cref="QosScheduler.RecordLatency"/>, e.g. per SCSI command).
    /// </summary>
    public void CompleteUntimed() => _request?.Scheduler.Release(_request, _version, QosScheduler.Untimed);

    /// <summary>The I/O finished with a latency the caller measured (for example including the network).</summary>
    public void Complete(TimeSpan latency)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(latency, TimeSpan.Zero);
        _request?.Scheduler.Release(_request, _version, (long)latency.TotalMicroseconds);
    }
}
