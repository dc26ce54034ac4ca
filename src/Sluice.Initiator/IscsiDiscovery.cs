using System.Globalization;
using System.Security.Cryptography;
using Sluice.Iscsi.Pdu;
using Sluice.Iscsi.Text;
using Sluice.Offload;

namespace Sluice.Initiator;

/// <summary>A portal a target can be reached at (TargetAddress, RFC 7143 §13.8).</summary>
/// <param name="Host">Host name or address (IPv6 without brackets).</param>
/// <param name="Port">TCP port.</param>
/// <param name="PortalGroupTag">Target portal group tag, or -1 when the target did not give one.</param>
public sealed record TargetPortal(string Host, int Port, int PortalGroupTag);

/// <summary>One target a SendTargets discovery returned.</summary>
/// <param name="TargetName">The target's IQN.</param>
/// <param name="Addresses">Its portals; empty means "the portal you asked".</param>
public sealed record DiscoveredTarget(string TargetName, IReadOnlyList<TargetPortal> Addresses);

/// <summary>SendTargets discovery (RFC 7143 §4.3, Appendix C).</summary>
public static class IscsiDiscovery
{
    /// <summary>
    /// Logs in to a discovery session at <paramref name="host"/>:<paramref name="port"/>, asks
    /// SendTargets=All, logs out and returns the targets.
    /// </summary>
    public static async Task<IReadOnlyList<DiscoveredTarget>> SendTargetsAsync(
        string host, int port = IscsiUrl.DefaultPort, IscsiClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new IscsiClientOptions();
        options.Validate();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.LoginTimeout);
        var ct = timeout.Token;
        var socket = await IscsiSession.ConnectSocketAsync(host, port, ct).ConfigureAwait(false);
        await using var transport = new PduTransport(socket, 64 * 1024);
        try
        {
            var login = new LoginNegotiation(transport, options, null, NewIsid(), 0, options.ChapUser, options.ChapSecret, 1);
            var outcome = await login.RunAsync(ct).ConfigureAwait(false);
            transport.MaxReceiveDataSegmentLength = options.MaxRecvDataSegmentLength;
            // A discovery session negotiates digests like any other (RFC 7143 §13.1); they cover
            // every PDU after the final Login Response.
            transport.HeaderDigest = outcome.Parameters.HeaderDigestCrc32C;
            transport.DataDigest = outcome.Parameters.DataDigestCrc32C;
            uint cmdSN = outcome.ExpCmdSN;
            uint expStatSN = outcome.ExpStatSN;
            var accumulator = new TextAccumulator(1024 * 1024) { AllowDuplicateKeys = true };
            var data = TextCodec.Encode([new TextPair("SendTargets", "All")]);
            uint ttt = PduFields.ReservedTag;
            IReadOnlyList<TextPair> pairs;
            while (true)
            {
                var h = default(Bhs);
                h.Opcode = Opcode.TextRequest;
                h.Immediate = true;
                h.Final = true;
                h.InitiatorTaskTag = 1;
                h.TargetTransferTag = ttt;
                h.CmdSN = cmdSN;
                h.ExpStatSN = expStatSN;
                await transport.SendAsync(h, data, ct).ConfigureAwait(false);
                data = [];
                var r = await ReceiveAsync(transport, ct).ConfigureAwait(false);
                if (r.Header.Opcode != Opcode.TextResponse)
                {
                    throw new IscsiConnectionException($"discovery: unexpected {r.Header.Opcode} answering SendTargets");
                }

                expStatSN = r.Header.StatSN + 1;
                bool more = PduFields.Continue(r.Header);
                var result = accumulator.Append(r.Data, final: !more);
                if (result == TextAccumulatorResult.Failed)
                {
                    throw new IscsiConnectionException($"discovery: malformed SendTargets response ({accumulator.Error})");
                }

                if (result == TextAccumulatorResult.Complete)
                {
                    pairs = accumulator.Pairs;
                    break;
                }

                // §11.11.2: the target keeps its TTT while C=1; we pull the rest with empty requests.
                ttt = r.Header.TargetTransferTag;
            }

            await LogoutAsync(transport, cmdSN, expStatSN, ct).ConfigureAwait(false);
            return Parse(pairs);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new IscsiConnectionException($"discovery at {host}:{port} timed out after {options.LoginTimeout.TotalSeconds:0.#}s");
        }
    }

    internal static IReadOnlyList<DiscoveredTarget> Parse(IReadOnlyList<TextPair> pairs)
    {
        var list = new List<DiscoveredTarget>();
        string? name = null;
        var addresses = new List<TargetPortal>();
        foreach (var p in pairs)
        {
            if (p.Key == "TargetName")
            {
                if (name is not null)
                {
                    list.Add(new DiscoveredTarget(name, addresses));
                }

                name = p.Value;
                addresses = [];
            }
            else if (p.Key == "TargetAddress" && name is not null && TryParseAddress(p.Value, out var host, out int port, out int tag))
            {
                addresses.Add(new TargetPortal(host, port, tag));
            }
        }

        if (name is not null)
        {
            list.Add(new DiscoveredTarget(name, addresses));
        }

        return list;
    }

    /// <summary>Parses <c>domainname[:port][,portal-group-tag]</c> (RFC 7143 §13.8), IPv6 in brackets.</summary>
    internal static bool TryParseAddress(string value, out string host, out int port, out int tag)
    {
        host = "";
        port = IscsiUrl.DefaultPort;
        tag = -1;
        var text = value;
        int comma = text.LastIndexOf(',');
        if (comma >= 0)
        {
            if (!int.TryParse(text.AsSpan(comma + 1), NumberStyles.None, CultureInfo.InvariantCulture, out tag))
            {
                return false;
            }

            text = text[..comma];
        }

        string? portText = null;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return false;
            }

            host = text[1..close];
            if (close + 1 < text.Length)
            {
                if (text[close + 1] != ':')
                {
                    return false;
                }

                portText = text[(close + 2)..];
            }
        }
        else
        {
            int colon = text.LastIndexOf(':');
            if (colon >= 0 && text.IndexOf(':', StringComparison.Ordinal) == colon)
            {
                host = text[..colon];
                portText = text[(colon + 1)..];
            }
            else
            {
                host = text; // a bare IPv6 address without brackets, or a name without a port
            }
        }

        if (portText is not null && (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
        {
            return false;
        }

        return host.Length > 0;
    }

    /// <summary>A random ISID (RFC 7143 §11.12.5, type 10b: 22 random bits plus a 16-bit qualifier).</summary>
    internal static ulong NewIsid()
    {
        Span<byte> r = stackalloc byte[5];
        RandomNumberGenerator.Fill(r);
        return (0x80UL << 40) | ((ulong)(r[0] & 0x3f) << 40) | ((ulong)r[1] << 32) | ((ulong)r[2] << 24) | ((ulong)r[3] << 16) | ((ulong)r[4] << 8) | 1;
    }

    private static async Task<(Bhs Header, byte[] Data)> ReceiveAsync(PduTransport transport, CancellationToken ct)
    {
        while (true)
        {
            if (!await transport.ReceiveHeaderAsync(ct).ConfigureAwait(false))
            {
                throw new IscsiConnectionException("discovery: target closed the connection");
            }

            var h = transport.Header;
            var data = new byte[h.DataSegmentLength];
            await transport.ReceiveDataAsync(data, ct).ConfigureAwait(false);
            if (h.Opcode == Opcode.NopIn || h.Opcode == Opcode.AsyncMessage)
            {
                continue;
            }

            if (h.Opcode == Opcode.Reject)
            {
                throw new IscsiConnectionException($"discovery: target rejected the request (reason 0x{PduFields.RejectReasonCode(h):x2})");
            }

            return (h, data);
        }
    }

    private static async Task LogoutAsync(PduTransport transport, uint cmdSN, uint expStatSN, CancellationToken ct)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.LogoutRequest;
        h.Immediate = true;
        h.Flags = 0x80; // reason 0: close the session
        h.InitiatorTaskTag = 2;
        h.CmdSN = cmdSN;
        h.ExpStatSN = expStatSN;
        try
        {
            await transport.SendAsync(h, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
            await ReceiveAsync(transport, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or IscsiProtocolException)
        {
            // The answer is a courtesy; the targets are already known.
        }
    }
}
