using System.Net;
using System.Net.Sockets;

namespace Sluice.Target.Tests;

/// <summary>
/// A loopback TCP proxy between one initiator and the target that can flip a chosen byte of
/// either stream, by absolute offset, or cut the connection (STYLE.md: NatsProxy-style fault
/// injection for digest and connection-loss tests).
/// </summary>
internal sealed class CorruptingProxy : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _cts = new();
    private Task? _run;
    private Socket? _client;
    private Socket? _server;
    private long _upstreamBytes;
    private long _downstreamBytes;
    private long _corruptUpstreamAt = -1;
    private long _corruptDownstreamAt = -1;

    public CorruptingProxy(IPEndPoint target)
    {
        _target = target;
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

    private async Task RunAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            try
            {
                _client = await _listener.AcceptAsync(_cts.Token);
                Connections++;
                _server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                _client.NoDelay = true;
                await _server.ConnectAsync(_target, _cts.Token);
                await Task.WhenAny(
                    PumpAsync(_client, _server, upstream: true),
                    PumpAsync(_server, _client, upstream: false));
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
            finally
            {
                _client?.Dispose();
                _server?.Dispose();
            }
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool upstream)
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

    /// <summary>Cuts both directions at once, like a failed link.</summary>
    public void Cut()
    {
        _client?.Dispose();
        _server?.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Dispose();
        Cut();
        if (_run is not null)
        {
            await _run;
        }

        _cts.Dispose();
    }
}
