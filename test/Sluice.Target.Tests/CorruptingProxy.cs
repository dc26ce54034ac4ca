using System.Net;
using System.Net.Sockets;

namespace Sluice.Target.Tests;

/// <summary>Where a PDU-triggered cut (<see cref="CorruptingProxy.CutAtNext"/>) falls.</summary>
internal enum CutPoint
{
    /// <summary>The PDU is dropped and the connection cut (e.g. a SCSI Response: the status is lost).</summary>
    BeforePdu,

    /// <summary>The header and half of the data segment pass, then the cut (data partly sent).</summary>
    MidData,

    /// <summary>The whole PDU passes; the cut follows a moment later (e.g. an R2T left outstanding).</summary>
    AfterPdu,
}

/// <summary>
/// A loopback TCP proxy between one initiator and the target that can flip a chosen byte of
/// either stream, by absolute offset, or cut the connection (STYLE.md: NatsProxy-style fault
/// injection for digest and connection-loss tests). When <c>framed</c>, it forwards whole iSCSI
/// PDUs (RFC 7143 §11.2: BHS, AHS, data padded to 4 bytes; no digests negotiated) so that a cut
/// can be placed at a PDU of a given opcode, and an upstream header can be rewritten.
/// </summary>
internal sealed class CorruptingProxy : IAsyncDisposable
{
    private readonly bool _framed;
    private readonly List<(bool Upstream, byte Opcode, CutPoint Point)> _cuts = [];
    private int _cutsDone;
    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _cts = new();
    private Task? _run;
    private readonly List<Link> _held = [];
    private Link? _link;
    private long _upstreamBytes;
    private long _downstreamBytes;
    private long _corruptUpstreamAt = -1;
    private long _corruptDownstreamAt = -1;

    public CorruptingProxy(IPEndPoint target, bool framed = false)
    {
        _target = target;
        _framed = framed;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(4);
        _run = RunAsync();
    }

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndPoint!;

    /// <summary>Bytes of the initiator's stream the proxy has taken in so far.</summary>
    public long UpstreamBytes => Interlocked.Read(ref _upstreamBytes);

    public long DownstreamBytes => Interlocked.Read(ref _downstreamBytes);

    /// <summary>Flips a bit of the initiator-to-target byte at this absolute offset.</summary>
    public void CorruptUpstreamAt(long offset) => Interlocked.Exchange(ref _corruptUpstreamAt, offset);

    public void CorruptDownstreamAt(long offset) => Interlocked.Exchange(ref _corruptDownstreamAt, offset);

    /// <summary>Connections accepted so far (a reconnecting initiator comes back through the proxy).</summary>
    public int Connections { get; private set; }

    /// <summary>PDU-triggered cuts that have happened (framed mode).</summary>
    public int CutsDone => Volatile.Read(ref _cutsDone);

    /// <summary>
    /// Framed mode: called with every initiator-to-target BHS (48 bytes) before it is forwarded;
    /// it may change the bytes in place.
    /// </summary>
    public Action<byte[]>? RewriteUpstream { get; set; }

    /// <summary>Framed mode: the next PDU with this opcode in this direction triggers a cut at <paramref name="point"/>.</summary>
    public void CutAtNext(bool upstream, byte opcode, CutPoint point)
    {
        lock (_cuts)
        {
            _cuts.Add((upstream, opcode, point));
        }
    }

    private CutPoint? TakeCut(bool upstream, byte opcode)
    {
        lock (_cuts)
        {
            int i = _cuts.FindIndex(c => c.Upstream == upstream && c.Opcode == opcode);
            if (i < 0)
            {
                return null;
            }

            var point = _cuts[i].Point;
            _cuts.RemoveAt(i);
            return point;
        }
    }

    /// <summary>One proxied connection: both sockets, and whether it has gone silent.</summary>
    private sealed class Link(Socket client, Socket server)
    {
        public Socket Client { get; } = client;
        public Socket Server { get; } = server;
        public volatile bool Stalled;
        public TaskCompletionSource StallStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Dispose()
        {
            Client.Dispose();
            Server.Dispose();
        }
    }

    private async Task RunAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            Link? link = null;
            try
            {
                var client = await _listener.AcceptAsync(_cts.Token);
                Connections++;
                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                link = new Link(client, server);
                _link = link;
                client.NoDelay = true;
                await server.ConnectAsync(_target, _cts.Token);
                var pumps = _framed
                    ? Task.WhenAny(FramedPumpAsync(link, client, server, upstream: true), FramedPumpAsync(link, server, client, upstream: false))
                    : Task.WhenAny(PumpAsync(link, client, server, upstream: true), PumpAsync(link, server, client, upstream: false));
                // A stalled link stays open (both peers see a silent connection) while the next one is accepted.
                await Task.WhenAny(pumps, link.StallStarted.Task);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
            finally
            {
                if (link is { Stalled: true })
                {
                    lock (_held)
                    {
                        _held.Add(link);
                    }
                }
                else
                {
                    link?.Dispose();
                }
            }
        }
    }

    /// <summary>
    /// The current connection goes silent both ways without closing, like a link that died
    /// without a FIN or RST: bytes are taken in and dropped. The sockets stay open until the
    /// proxy is disposed (or a peer closes its side); new connections are proxied normally.
    /// </summary>
    public void Stall()
    {
        if (_link is { } link)
        {
            link.Stalled = true;
            link.StallStarted.TrySetResult();
        }
    }

    /// <summary>A stalled link swallows what it receives.</summary>
    private async Task HoldIfStalledAsync(Link link)
    {
        if (link.Stalled)
        {
            await Task.Delay(Timeout.Infinite, _cts.Token);
        }
    }

    private async Task PumpAsync(Link link, Socket from, Socket to, bool upstream)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, _cts.Token);
                if (n == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await HoldIfStalledAsync(link);

                long start = upstream ? Interlocked.Read(ref _upstreamBytes) : Interlocked.Read(ref _downstreamBytes);
                long at = upstream ? Interlocked.Read(ref _corruptUpstreamAt) : Interlocked.Read(ref _corruptDownstreamAt);
                if (at >= start && at < start + n)
                {
                    buffer[at - start] ^= 0x20;
                    if (upstream)
                    {
                        Interlocked.Exchange(ref _corruptUpstreamAt, -1);
                    }
                    else
                    {
                        Interlocked.Exchange(ref _corruptDownstreamAt, -1);
                    }
                }

                // Counted before forwarding: once the far side can answer these bytes, a test
                // that reads the count must already see them (offsets of the next PDU start here).
                if (upstream)
                {
                    Interlocked.Add(ref _upstreamBytes, n);
                }
                else
                {
                    Interlocked.Add(ref _downstreamBytes, n);
                }

                int sent = 0;
                while (sent < n)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None, _cts.Token);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Forwards whole PDUs; a PDU that matches an armed cut ends the connection there.</summary>
    private async Task FramedPumpAsync(Link link, Socket from, Socket to, bool upstream)
    {
        var header = new byte[48];
        var data = new byte[64 * 1024];
        try
        {
            while (true)
            {
                if (!await ReadExactlyAsync(from, header))
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await HoldIfStalledAsync(link);
                byte opcode = (byte)(header[0] & 0x3F);
                int dataLength = (header[5] << 16) | (header[6] << 8) | header[7];
                long rest = (header[4] * 4L) + ((dataLength + 3) & ~3);
                if (upstream)
                {
                    RewriteUpstream?.Invoke(header);
                }

                var cut = TakeCut(upstream, opcode);
                if (cut == CutPoint.BeforePdu)
                {
                    CutNow();
                    return;
                }

                await SendAllAsync(to, header, upstream);
                long passOn = cut == CutPoint.MidData ? rest / 2 : rest;
                for (long done = 0; done < rest;)
                {
                    int n = (int)Math.Min(data.Length, rest - done);
                    if (!await ReadExactlyAsync(from, data.AsMemory(0, n)))
                    {
                        to.Shutdown(SocketShutdown.Send);
                        return;
                    }

                    await HoldIfStalledAsync(link);
                    int forward = (int)Math.Clamp(passOn - done, 0, n);
                    if (forward > 0)
                    {
                        await SendAllAsync(to, data.AsMemory(0, forward), upstream);
                    }

                    done += n;
                    if (done >= passOn && cut == CutPoint.MidData)
                    {
                        CutNow();
                        return;
                    }
                }

                if (cut == CutPoint.AfterPdu)
                {
                    // Let the peer take the PDU in before the link goes.
                    await Task.Delay(20, _cts.Token);
                    CutNow();
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private void CutNow()
    {
        Interlocked.Increment(ref _cutsDone);
        Cut();
    }

    private async Task<bool> ReadExactlyAsync(Socket from, Memory<byte> buffer)
    {
        for (int got = 0; got < buffer.Length;)
        {
            int n = await from.ReceiveAsync(buffer[got..], SocketFlags.None, _cts.Token);
            if (n == 0)
            {
                return false;
            }

            got += n;
        }

        return true;
    }

    private async Task SendAllAsync(Socket to, ReadOnlyMemory<byte> bytes, bool upstream)
    {
        Interlocked.Add(ref upstream ? ref _upstreamBytes : ref _downstreamBytes, bytes.Length);
        for (int sent = 0; sent < bytes.Length;)
        {
            sent += await to.SendAsync(bytes[sent..], SocketFlags.None, _cts.Token);
        }
    }

    /// <summary>Cuts both directions at once, like a failed link.</summary>
    public void Cut() => _link?.Dispose();

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Dispose();
        Cut();
        if (_run is not null)
        {
            await _run;
        }

        lock (_held)
        {
            foreach (var link in _held)
            {
                link.Dispose();
            }
        }

        _cts.Dispose();
    }
}
