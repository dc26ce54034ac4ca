namespace Sluice.Offload;

/// <summary>Per-connection counters of the offload engine.</summary>
public sealed class ConnectionCounters
{
    private long _pdusReceived;
    private long _pdusSent;
    private long _bytesReceived;
    private long _bytesSent;
    private long _directPlacements;
    private long _directBytes;
    private long _stagedCopies;
    private long _stagedBytes;
    private long _headerDigestErrors;
    private long _dataDigestErrors;
    private long _sendCalls;

    public long PdusReceived => Volatile.Read(ref _pdusReceived);
    public long PdusSent => Volatile.Read(ref _pdusSent);
    public long BytesReceived => Volatile.Read(ref _bytesReceived);
    public long BytesSent => Volatile.Read(ref _bytesSent);

    /// <summary>Payloads received from the socket straight into their final buffer (fast path).</summary>
    public long DirectPlacements => Volatile.Read(ref _directPlacements);
    public long DirectBytes => Volatile.Read(ref _directBytes);

    /// <summary>Payload bytes that went through the staging buffer first (slow path).</summary>
    public long StagedCopies => Volatile.Read(ref _stagedCopies);
    public long StagedBytes => Volatile.Read(ref _stagedBytes);
    public long HeaderDigestErrors => Volatile.Read(ref _headerDigestErrors);
    public long DataDigestErrors => Volatile.Read(ref _dataDigestErrors);

    /// <summary>Socket send calls: fewer than <see cref="PdusSent"/> when PDUs were batched (PduTransport.TryAppend).</summary>
    public long SendCalls => Volatile.Read(ref _sendCalls);

    internal void PduReceived(int bytes)
    {
        _pdusReceived++;
        _bytesReceived += bytes;
    }

    internal void PduSent(long bytes)
    {
        Interlocked.Increment(ref _pdusSent);
        Interlocked.Add(ref _bytesSent, bytes);
    }

    internal void SendCall() => Interlocked.Increment(ref _sendCalls);

    internal void Direct(int bytes)
    {
        _directPlacements++;
        _directBytes += bytes;
    }

    internal void Staged(int bytes)
    {
        _stagedCopies++;
        _stagedBytes += bytes;
    }

    internal void HeaderDigestError() => Interlocked.Increment(ref _headerDigestErrors);

    internal void DataDigestError() => Interlocked.Increment(ref _dataDigestErrors);
}
