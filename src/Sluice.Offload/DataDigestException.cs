namespace Sluice.Offload;

/// <summary>
/// A data segment arrived with a wrong CRC32C data digest (RFC 7143 §7.8). The framing is
/// intact (the PDU was consumed whole), so the caller recovers per PDU: Reject, and fail or
/// retry the command; the bytes received must not be used.
/// </summary>
public sealed class DataDigestException : Exception
{
    public DataDigestException()
        : base("data digest error")
    {
    }

    public DataDigestException(string message)
        : base(message)
    {
    }

    public DataDigestException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
