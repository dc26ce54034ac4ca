using System.Globalization;

namespace Sluice.Initiator;

/// <summary>Login failed: the target answered with a non-zero status (RFC 7143 §11.13.5), or the exchange broke a rule.</summary>
public sealed class LoginException : IOException
{
    /// <summary>Creates the exception.</summary>
    public LoginException(byte statusClass, byte statusDetail, string reason)
        : base(Format(statusClass, statusDetail, reason))
    {
        StatusClass = statusClass;
        StatusDetail = statusDetail;
        Reason = reason;
    }

    /// <summary>Status-Class (0 when the failure was detected locally).</summary>
    public byte StatusClass { get; }

    /// <summary>Status-Detail.</summary>
    public byte StatusDetail { get; }

    /// <summary>Readable reason.</summary>
    public string Reason { get; }

    /// <summary>The text RFC 7143 §11.13.5 gives a status code.</summary>
    public static string Describe(byte statusClass, byte statusDetail) => ((statusClass << 8) | statusDetail) switch
    {
        0x0000 => "success",
        0x0101 => "target moved temporarily",
        0x0102 => "target moved permanently",
        0x0200 => "initiator error",
        0x0201 => "authentication failure",
        0x0202 => "authorization failure",
        0x0203 => "target not found",
        0x0204 => "target removed",
        0x0205 => "unsupported version",
        0x0206 => "too many connections",
        0x0207 => "missing parameter",
        0x0208 => "can't include in session",
        0x0209 => "session type not supported",
        0x020A => "session does not exist",
        0x020B => "invalid request during login",
        0x0300 => "target error",
        0x0301 => "service unavailable",
        0x0302 => "out of resources",
        _ => "unknown status",
    };

    private static string Format(byte statusClass, byte statusDetail, string reason) =>
        statusClass == 0 && statusDetail == 0
            ? "login failed: " + reason
            : string.Create(CultureInfo.InvariantCulture, $"login failed: {Describe(statusClass, statusDetail)} (status 0x{statusClass:x2}{statusDetail:x2}){(reason.Length > 0 ? ": " + reason : "")}");
}

/// <summary>The connection to the target failed and could not be recovered, or the session is closed.</summary>
public sealed class IscsiConnectionException : IOException
{
    /// <summary>Creates the exception.</summary>
    public IscsiConnectionException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
