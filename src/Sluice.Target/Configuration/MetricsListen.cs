using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace Sluice.Target.Configuration;

/// <summary>
/// The metrics endpoint's address, <c>HOST[:PORT]</c> as for a portal but on a loopback address
/// only (the endpoint has no authentication), with port 9464 (Prometheus exporters' custom) by default.
/// </summary>
public static class MetricsListen
{
    public const int DefaultPort = 9464;

    public static bool TryParse(string? text, [NotNullWhen(true)] out IPAddress? address, out int port, [NotNullWhen(false)] out string? error)
    {
        address = null;
        port = 0;
        if (!PortalAddress.TryParse(text, out string? host, out port, out error))
            return false;
        string t = text!.Trim();
        bool hasPort = t.StartsWith('[') ? t.Contains("]:", StringComparison.Ordinal) : t.Contains(':', StringComparison.Ordinal);
        if (!hasPort)
            port = DefaultPort;
        address = IPAddress.Parse(host);
        if (!IPAddress.IsLoopback(address))
        {
            error = $"'{text}' is not a loopback address (the metrics endpoint has no authentication; use 127.0.0.1 or [::1], and a proxy for remote scrapes)";
            address = null;
            return false;
        }

        return true;
    }
}
