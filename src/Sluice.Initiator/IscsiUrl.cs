using System.Globalization;
using System.Text;

namespace Sluice.Initiator;

/// <summary>
/// An iSCSI URL in libiscsi's form: <c>iscsi://[user[%secret]@]host[:port]/target-iqn/lun</c>.
/// IPv6 hosts go in brackets, the port defaults to 3260, and every part is percent-decoded.
/// A portal-only URL (<c>iscsi://host[:port]</c>, optionally with a trailing slash) names a
/// portal for discovery: <see cref="Target"/> is null.
/// </summary>
public sealed record IscsiUrl
{
    /// <summary>The IANA port for iSCSI (RFC 7143 §13.9).</summary>
    public const int DefaultPort = 3260;

    /// <summary>Host name or address (IPv6 without brackets).</summary>
    public required string Host { get; init; }

    /// <summary>TCP port.</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Target IQN, or null for a portal-only URL.</summary>
    public string? Target { get; init; }

    /// <summary>Logical unit number, or null when the URL did not name one.</summary>
    public int? Lun { get; init; }

    /// <summary>CHAP user name, if any.</summary>
    public string? User { get; init; }

    /// <summary>CHAP secret, if any.</summary>
    public string? Secret { get; init; }

    /// <summary>Parses a URL; throws <see cref="FormatException"/> with the reason when it is malformed.</summary>
    public static IscsiUrl Parse(string text)
    {
        if (!TryParse(text, out var url, out var error))
        {
            throw new FormatException($"invalid iSCSI URL '{text}': {error}");
        }

        return url;
    }

    /// <summary>Parses a URL; on failure <paramref name="error"/> says why.</summary>
    public static bool TryParse(string? text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IscsiUrl? url, out string error)
    {
        url = null;
        error = "";
        const string scheme = "iscsi://";
        if (text is null || !text.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            error = "must start with iscsi://";
            return false;
        }

        var rest = text[scheme.Length..];
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        var authority = slash < 0 ? rest : rest[..slash];
        var path = slash < 0 ? "" : rest[(slash + 1)..];

        string? user = null;
        string? secret = null;
        int at = authority.LastIndexOf('@');
        if (at >= 0)
        {
            var userInfo = authority[..at];
            authority = authority[(at + 1)..];
            // libiscsi splits user and secret at the first '%'; each part is then percent-decoded,
            // so a user name cannot contain '%' but a secret can (written %25).
            int pct = userInfo.IndexOf('%', StringComparison.Ordinal);
            if (pct >= 0)
            {
                if (!TryDecode(userInfo[..pct], out user) || !TryDecode(userInfo[(pct + 1)..], out secret))
                {
                    error = "bad percent-encoding in user or secret";
                    return false;
                }
            }
            else if (!TryDecode(userInfo, out user))
            {
                error = "bad percent-encoding in user";
                return false;
            }

            if (string.IsNullOrEmpty(user))
            {
                error = "empty user name";
                return false;
            }
        }

        string host;
        int port = DefaultPort;
        string? portText = null;
        if (authority.StartsWith('['))
        {
            int close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                error = "unterminated IPv6 address";
                return false;
            }

            host = authority[1..close];
            var after = authority[(close + 1)..];
            if (after.Length > 0)
            {
                if (after[0] != ':')
                {
                    error = "junk after IPv6 address";
                    return false;
                }

                portText = after[1..];
            }
        }
        else
        {
            int colon = authority.LastIndexOf(':');
            if (colon >= 0 && authority.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                error = "IPv6 addresses must be in brackets";
                return false;
            }

            host = colon >= 0 ? authority[..colon] : authority;
            portText = colon >= 0 ? authority[(colon + 1)..] : null;
        }

        if (!TryDecode(host, out var decodedHost) || decodedHost.Length == 0)
        {
            error = "missing host";
            return false;
        }

        if (portText is not null &&
            (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
        {
            error = $"bad port '{portText}'";
            return false;
        }

        string? target = null;
        int? lun = null;
        if (path.Length > 0)
        {
            int lunSlash = path.LastIndexOf('/');
            var targetPart = lunSlash < 0 ? path : path[..lunSlash];
            var lunPart = lunSlash < 0 ? "" : path[(lunSlash + 1)..];
            if (!TryDecode(targetPart, out var decodedTarget) || decodedTarget.Length == 0)
            {
                error = "missing target name";
                return false;
            }

            target = decodedTarget;
            if (lunPart.Length > 0)
            {
                if (!int.TryParse(lunPart, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > 16383)
                {
                    error = $"bad LUN '{lunPart}'";
                    return false;
                }

                lun = n;
            }
        }

        url = new IscsiUrl { Host = decodedHost, Port = port, Target = target, Lun = lun, User = user, Secret = secret };
        return true;
    }

    /// <summary>The URL back in libiscsi's form, without the secret.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("iscsi://");
        if (User is not null)
        {
            sb.Append(Uri.EscapeDataString(User)).Append('@');
        }

        sb.Append(Host.Contains(':', StringComparison.Ordinal) ? "[" + Host + "]" : Host);
        if (Port != DefaultPort)
        {
            sb.Append(':').Append(Port.ToString(CultureInfo.InvariantCulture));
        }

        if (Target is not null)
        {
            sb.Append('/').Append(Target);
            if (Lun is int lun)
            {
                sb.Append('/').Append(lun.ToString(CultureInfo.InvariantCulture));
            }
        }

        return sb.ToString();
    }

    private static bool TryDecode(string s, out string decoded)
    {
        decoded = s;
        for (int i = s.IndexOf('%', StringComparison.Ordinal); i >= 0; i = s.IndexOf('%', i + 1))
        {
            if (i + 2 >= s.Length || !Uri.IsHexDigit(s[i + 1]) || !Uri.IsHexDigit(s[i + 2]))
            {
                return false;
            }
        }

        decoded = Uri.UnescapeDataString(s);
        return true;
    }
}
