using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sluice.Target.Configuration;

/// <summary>Listen addresses as written in the config (<c>host</c>) and on the command line (<c>HOST[:PORT]</c>).</summary>
public static class PortalAddress
{
    /// <summary>The IANA-assigned iSCSI port.</summary>
    public const int DefaultPort = 3260;

    /// <summary>
    /// Parses an IP address literal: IPv4 in dotted-quad form or IPv6 (without brackets). Host
    /// names are refused: a portal binds one address, and the target never resolves names.
    /// </summary>
    public static bool TryParseHost(string? host, [NotNullWhen(true)] out IPAddress? address)
    {
        address = null;
        if (string.IsNullOrEmpty(host) || host.Contains('[', StringComparison.Ordinal))
            return false;
        if (host.Contains(':', StringComparison.Ordinal))
        {
            return IPAddress.TryParse(host, out address) && address.AddressFamily == AddressFamily.InterNetworkV6;
        }

        // IPAddress.TryParse takes "1" and "1.2" as IPv4 shorthand; a portal wants all four parts.
        var parts = host.Split('.');
        if (parts.Length != 4)
            return false;
        foreach (var part in parts)
        {
            if (part.Length is 0 or > 3 || !part.All(char.IsAsciiDigit))
                return false;
        }
        return IPAddress.TryParse(host, out address) && address.AddressFamily == AddressFamily.InterNetwork;
    }

    /// <summary>
    /// Parses <c>HOST[:PORT]</c>: <c>127.0.0.1:3260</c>, <c>[::1]:3260</c>, <c>[::1]</c>, <c>0.0.0.0</c>,
    /// <c>localhost</c> (127.0.0.1). The port defaults to 3260; 0 asks for an ephemeral port.
    /// </summary>
    public static bool TryParse(
        string? text,
        [NotNullWhen(true)] out string? host,
        out int port,
        [NotNullWhen(false)] out string? error)
    {
        host = null;
        port = DefaultPort;
        error = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "empty address (expected HOST[:PORT], e.g. 127.0.0.1:3260 or [::1]:3260)";
            return false;
        }

        string hostText;
        string? portText = null;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                error = $"'{text}' has no closing ']' (expected [IPV6]:PORT, e.g. [::1]:3260)";
                return false;
            }
            hostText = text[1..close];
            var after = text.AsSpan(close + 1);
            if (!after.IsEmpty)
            {
                if (after[0] != ':')
                {
                    error = $"'{text}': expected ':PORT' after ']'";
                    return false;
                }
                portText = after[1..].ToString();
            }
            if (!hostText.Contains(':', StringComparison.Ordinal))
            {
                error = $"'{text}': brackets are only for IPv6 addresses";
                return false;
            }
        }
        else
        {
            int first = text.IndexOf(':', StringComparison.Ordinal);
            if (first >= 0 && text.IndexOf(':', first + 1) >= 0)
            {
                error = $"'{text}': write IPv6 addresses in brackets, e.g. [::1]:3260";
                return false;
            }
            hostText = first < 0 ? text : text[..first];
            portText = first < 0 ? null : text[(first + 1)..];
        }

        if (hostText.Length == 0)
        {
            error = $"'{text}' has no host (expected HOST[:PORT], e.g. 0.0.0.0:3260 for every IPv4 address)";
            return false;
        }
        if (hostText.Equals("localhost", StringComparison.OrdinalIgnoreCase))
            hostText = "127.0.0.1";
        if (!TryParseHost(hostText, out var address))
        {
            error = $"invalid host '{hostText}' (expected an IPv4 or IPv6 address)";
            return false;
        }

        if (portText is not null
            && (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port > 65535))
        {
            error = $"invalid port '{portText}' (expected 0-65535; 0 picks a free port)";
            port = 0;
            return false;
        }

        host = address.ToString();
        return true;
    }

    /// <summary><c>host:port</c>, with an IPv6 host in brackets.</summary>
    public static string Format(string host, int port) =>
        host.Contains(':', StringComparison.Ordinal)
            ? string.Create(CultureInfo.InvariantCulture, $"[{host}]:{port}")
            : string.Create(CultureInfo.InvariantCulture, $"{host}:{port}");
}
