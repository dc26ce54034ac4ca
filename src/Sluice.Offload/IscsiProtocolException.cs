namespace Sluice.Offload;

/// <summary>
/// The peer broke the framing or a protocol rule badly enough that the connection cannot go on
/// (RFC 7143 §7.8: format errors and header digest errors cost the connection).
/// </summary>
public sealed class IscsiProtocolException : Exception
{
    public IscsiProtocolException()
    {
    }

    public IscsiProtocolException(string message)
        : base(message)
    {
    }

    public IscsiProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The Reject reason to send before closing, when one applies (RFC 7143 §11.17.1).</summary>
    public byte? RejectReason { get; init; }
}
