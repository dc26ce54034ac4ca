using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Sluice.Iscsi.Login;
using Sluice.Iscsi.Pdu;
using Sluice.Iscsi.Text;
using Sluice.Offload;
using Sluice.Scsi;

namespace Sluice.Target;

/// <summary>
/// One TCP connection of the target: login phase, then the full-feature phase loop that reads
/// PDUs in arrival order and hands SCSI commands to the device in CmdSN order
/// (RFC 7143 §3.2.2, §4.2.2). Responses may complete out of order; each carries the
/// connection's StatSN, assigned under the send lock so the numbers go out in order.
/// </summary>
internal sealed partial class IscsiConnection
{
    private const uint ReservedTag = 0xffffffff;

    private readonly TargetServer _server;
    private readonly PduTransport _transport;
    private readonly ILogger _logger;
    private readonly ushort _tpgt;
    private readonly CancellationTokenSource _cts = new();
    private readonly Lock _tasksLock = new();
    private readonly Dictionary<uint, ScsiTask> _tasks = [];
    private readonly SortedDictionary<uint, PendingPdu> _pending = new(SerialComparer.Instance);
    private readonly HashSet<uint> _abortedBeforeArrival = [];
    private uint _statSN;
    private uint _nextTtt = 1;
    private long _lastReceiveTicks;
    private uint _outstandingPing = ReservedTag;
    private long _pingSentTicks;
    private IscsiSession? _session;
    private SessionParameters? _params;
    private byte[]? _textBuffer;
    private int _textLength;
    private byte[]? _textResponse;
    private int _textResponseOffset;
    private uint _textResponseTtt = ReservedTag;

    public IscsiConnection(TargetServer server, Socket socket, ushort tpgt, long id, ILogger logger)
    {
        _server = server;
        _transport = new PduTransport(socket, mode: server.OffloadMode);
        _tpgt = tpgt;
        Id = id;
        _logger = logger;
    }

    public long Id { get; }

    /// <summary>The offload engine's counters for this connection (PDUs, bytes, digest errors).</summary>
    public ConnectionCounters Counters => _transport.Counters;

    public IscsiSession? Session => _session;

    public ushort Cid { get; private set; }

    /// <summary>
    /// True when the peer has closed its side (the socket reads EOF) even if the receive loop
    /// has not run yet to notice. Poll does not consume data.
    /// </summary>
    public bool PeerHasClosed
    {
        get
        {
            try
            {
                var socket = _transport.Socket;
                return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return true;
            }
        }
    }

    private CancellationToken Token => _cts.Token;

    /// <summary>Stops the connection: the loop ends and in-flight tasks are cancelled.</summary>
    public void Close()
    {
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        _ = _transport.DisposeAsync();
    }

    public async Task RunAsync()
    {
        Log.Accepted(_logger, Id, _transport.Socket.RemoteEndPoint);
        try
        {
            _transport.Socket.NoDelay = true;
            if (await LoginAsync().ConfigureAwait(false))
            {
                await FullFeatureAsync().ConfigureAwait(false);
            }
        }
        catch (IscsiProtocolException ex)
        {
            Log.ProtocolError(_logger, Id, ex.Message);
            if (ex.RejectReason is byte reason && _session is not null)
            {
                await TrySendRejectAsync(reason).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }
        catch (IOException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception ex)
        {
            Log.Unexpected(_logger, Id, ex);
        }
        finally
        {
            Cleanup();
            Log.Closed(_logger, Id);
        }
    }

    private async Task TrySendRejectAsync(byte reason)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            var rejected = _transport.Header;
            await SendRejectAsync(reason, rejected, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private void Cleanup()
    {
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        ScsiTask[] tasks;
        lock (_tasksLock)
        {
            _taskPoolClosed = true;
            _taskPool.Clear();
            tasks = [.. _tasks.Values];
            _tasks.Clear();
            foreach (var p in _pending.Values)
            {
                if (p.Task is not null && !tasks.Contains(p.Task))
                {
                    tasks = [.. tasks, p.Task];
                }
            }

            _pending.Clear();
        }

        foreach (var t in tasks)
        {
            t.Aborted = true;
            try
            {
                t.Cancellation.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }

            if (!t.Dispatched)
            {
                t.ReleaseBuffers();
            }
        }

        ReleaseRecoveryState();
        if (_session is not null && ReferenceEquals(_session.Connection, this))
        {
            _server.EndSession(_session);
        }

        _server.ConnectionClosed(this);
        _ = _transport.DisposeAsync();
    }

    // ------------------------------------------------------------------ login

    private async Task<bool> LoginAsync()
    {
        var limits = _server.Config.Limits;
        var timeout = TimeSpan.FromSeconds(limits.LoginTimeoutSeconds);
        using var loginCts = CancellationTokenSource.CreateLinkedTokenSource(Token);
        loginCts.CancelAfter(timeout);
        var settings = _server.NegotiationSettings;
        var machine = new TargetLoginStateMachine(settings, _server.LoginHost, _tpgt);
        bool first = true;
        ulong isid = 0;
        ushort tsih = 0;
        IscsiSession? existing = null;
        _transport.MaxReceiveDataSegmentLength = 8192;
        try
        {
            while (true)
            {
                int firstByte = await _transport.PeekFirstByteAsync(loginCts.Token).ConfigureAwait(false);
                if (firstByte < 0)
                {
                    return false;
                }

                if ((firstByte & 0x3f) != (int)Opcode.LoginRequest)
                {
                    // RFC 7143 §6.1: only Login Requests before full-feature phase; this is not
                    // iSCSI (or not a login), so don't wait for the rest of a "header".
                    throw new IscsiProtocolException($"first byte 0x{firstByte:x2} is not a Login Request");
                }

                if (!await _transport.ReceiveHeaderAsync(loginCts.Token).ConfigureAwait(false))
                {
                    return false;
                }

                var h = _transport.Header;
                if (h.Opcode != Opcode.LoginRequest)
                {
                    // RFC 7143 §6.1: only Login Requests are allowed before full-feature phase.
                    throw new IscsiProtocolException($"{h.Opcode} received during login");
                }

                byte[] data = h.DataSegmentLength == 0 ? [] : new byte[h.DataSegmentLength];
                await _transport.ReceiveDataAsync(data, loginCts.Token).ConfigureAwait(false);
                var request = new LoginRequestInfo(
                    Transit: (h.Flags & 0x80) != 0,
                    Continue: (h.Flags & 0x40) != 0,
                    CurrentStage: (h.Flags >> 2) & 3,
                    NextStage: h.Flags & 3,
                    VersionMax: h[2],
                    VersionMin: h[3],
                    Isid: ReadIsid(h),
                    Tsih: h.U16(14),
                    InitiatorTaskTag: h.InitiatorTaskTag,
                    Cid: h.U16(20),
                    CmdSN: h.CmdSN,
                    ExpStatSN: h.ExpStatSN,
                    Data: data);

                if (first)
                {
                    first = false;
                    isid = request.Isid;
                    tsih = request.Tsih;
                    Cid = request.Cid;
                    _statSN = request.Tsih != 0 ? request.ExpStatSN : (uint)Random.Shared.Next(1, 0x10000);
                    _expCmdSNAtLogin = request.CmdSN;
                    if (tsih != 0)
                    {
                        // Adding or reinstating a connection of an existing session (§6.3.4).
                        existing = _server.Sessions.Find(tsih);
                        if (existing is null || existing.Isid != isid)
                        {
                            await SendLoginStatusAsync(h, LoginStatus.SessionDoesNotExist).ConfigureAwait(false);
                            return false;
                        }
                    }
                }

                var reply = machine.Process(request);
                if (reply.LoginComplete && !reply.Failed)
                {
                    var result = _server.CompleteLogin(this, machine, isid, tsih, existing, _tpgt, request.CmdSN, out ushort failStatus, out var draining);
                    if (result is null)
                    {
                        await SendLoginStatusAsync(h, failStatus).ConfigureAwait(false);
                        return false;
                    }

                    if (draining.Count > 0 && !await AwaitBackendIdleAsync(draining, loginCts.Token).ConfigureAwait(false))
                    {
                        // Still writing after the login timeout: let the initiator retry later
                        // rather than let its commands race the old ones (RFC 7143 §11.13.5 0x0301).
                        _server.EndSession(result);
                        await SendLoginStatusAsync(h, LoginStatus.ServiceUnavailable).ConfigureAwait(false);
                        return false;
                    }

                    _session = result;
                    _params = result.Parameters;
                    await SendLoginReplyAsync(h, reply, result.Tsih).ConfigureAwait(false);

                    // Digests start with the first PDU after the final Login Response (§13.1).
                    _transport.HeaderDigest = _params.HeaderDigestCrc32C;
                    _transport.DataDigest = _params.DataDigestCrc32C;
                    Log.LoggedIn(_logger, Id, result.Tsih, result.IsDiscovery ? "discovery" : "normal", result.InitiatorName, result.TargetName);
                    return true;
                }

                await SendLoginReplyAsync(h, reply, 0).ConfigureAwait(false);
                if (reply.Failed)
                {
                    Log.LoginFailed(_logger, Id, machine.InitiatorName, machine.TargetName, reply.StatusClass, reply.StatusDetail);
                    return false;
                }
            }
        }
        catch (OperationCanceledException) when (!Token.IsCancellationRequested)
        {
            Log.LoginTimeout(_logger, Id, timeout);
            return false;
        }
    }

    private uint _expCmdSNAtLogin;

    /// <summary>Waits until the ended connections' back-end operations are done (IscsiConnection.Drain.cs); false on the login timeout.</summary>
    private async Task<bool> AwaitBackendIdleAsync(List<IscsiConnection> draining, CancellationToken loginToken)
    {
        int running = draining.Sum(c => c.ExecutingCount);
        Log.AwaitingOldCommands(_logger, Id, running);
        try
        {
            await Task.WhenAll(draining.Select(c => c.BackendIdleAsync())).WaitAsync(loginToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!Token.IsCancellationRequested)
        {
            Log.OldCommandsStillRunning(_logger, Id, draining.Sum(c => c.ExecutingCount));
            return false;
        }
    }

    private static ulong ReadIsid(in Bhs h)
    {
        ulong v = 0;
        for (int i = 8; i < 14; i++)
        {
            v = (v << 8) | h[i];
        }

        return v;
    }

    private Task SendLoginStatusAsync(in Bhs request, ushort status)
    {
        Log.LoginFailed(_logger, Id, null, null, (byte)(status >> 8), (byte)status);
        var reply = new LoginReply
        {
            Transit = false,
            CurrentStage = (request.Flags >> 2) & 3,
            NextStage = 0,
            StatusClass = (byte)(status >> 8),
            StatusDetail = (byte)status,
            Data = [],
            Failed = true,
        };
        return SendLoginReplyAsync(request, reply, 0);
    }

    /// <summary>Login Response, RFC 7143 §11.13.</summary>
    private async Task SendLoginReplyAsync(Bhs request, LoginReply reply, ushort tsih)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.LoginResponse;
        byte flags = (byte)(((reply.CurrentStage & 3) << 2) | (reply.NextStage & 3));
        if (reply.Transit)
        {
            flags |= 0x80;
        }

        if (reply.Continue)
        {
            flags |= 0x40;
        }

        h.Flags = flags;
        h.SetByte(2, 0); // Version-max
        h.SetByte(3, 0); // Version-active
        request.Bytes.Slice(8, 6).CopyTo(h.Bytes[8..]);
        h.SetU16(14, tsih);
        h.InitiatorTaskTag = request.InitiatorTaskTag;
        h.StatSN = _statSN++;
        uint exp = _session?.ExpCmdSN ?? _expCmdSNAtLogin;
        h.ExpCmdSN = exp;
        h.MaxCmdSN = _session?.MaxCmdSN ?? exp;
        h.SetByte(36, reply.StatusClass);
        h.SetByte(37, reply.StatusDetail);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _transport.SendAsync(h, reply.Data, timeout.Token).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ full feature phase

    private async Task FullFeatureAsync()
    {
        var p = _params!;
        _transport.MaxReceiveDataSegmentLength = p.TargetMaxRecvDataSegmentLength;
        _lastReceiveTicks = Environment.TickCount64;
        bool recovery = RecoveryEnabled;
        var ping = PingLoopAsync();
        try
        {
            while (await _transport.ReceiveHeaderAsync(Token).ConfigureAwait(false))
            {
                _lastReceiveTicks = Environment.TickCount64;
                if (recovery)
                {
                    AcknowledgeStatus(_transport.Header.ExpStatSN);
                }

                bool keepGoing;
                try
                {
                    keepGoing = await DispatchAsync().ConfigureAwait(false);
                }
                catch (DataDigestException)
                {
                    // §7.8: the PDU is discarded and rejected; the stream is still in sync.
                    var bad = _transport.Header;
                    Log.Rejecting(_logger, Id, bad.Opcode.ToString(), bad.InitiatorTaskTag, RejectReason.DataDigestError, "data digest error");
                    await SendRejectAsync(RejectReason.DataDigestError, bad, Token).ConfigureAwait(false);
                    keepGoing = true;
                }

                if (!keepGoing)
                {
                    return;
                }
            }
        }
        finally
        {
            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }

            await ping.ConfigureAwait(false);
        }
    }

    private async Task<bool> DispatchAsync()
    {
                return _transport.Header.Opcode switch
                {
                    Opcode.ScsiCommand => await OnScsiCommandAsync().ConfigureAwait(false),
                    Opcode.DataOut => await OnDataOutAsync().ConfigureAwait(false),
                    Opcode.NopOut => await OnNopOutAsync().ConfigureAwait(false),
                    Opcode.TaskManagementRequest => await OnTaskManagementAsync().ConfigureAwait(false),
                    Opcode.TextRequest => await OnTextRequestAsync().ConfigureAwait(false),
                    Opcode.LogoutRequest => await OnLogoutAsync().ConfigureAwait(false),
                    Opcode.SnackRequest => await OnSnackAsync().ConfigureAwait(false),
                    _ => await RejectAndDiscardAsync(RejectReason.CommandNotSupported, "unknown opcode").ConfigureAwait(false),
                };
    }

    private async Task<bool> RejectAndDiscardAsync(byte reason, string why)
    {
        var h = _transport.Header;
        Log.Rejecting(_logger, Id, h.Opcode.ToString(), h.InitiatorTaskTag, reason, why);
        await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
        await SendRejectAsync(reason, h, Token).ConfigureAwait(false);
        return true;
    }

    /// <summary>Reject PDU, RFC 7143 §11.17: the rejected header is the data segment.</summary>
    private async Task SendRejectAsync(byte reason, Bhs rejected, CancellationToken cancellationToken)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.Reject;
        h.Flags = 0x80;
        h.SetByte(2, reason);
        h.InitiatorTaskTag = ReservedTag;
        byte[] data = new byte[Bhs.Length];
        rejected.CopyTo(data);
        await SendStatusPduAsync(h, data, advanceStatSN: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends a target PDU with StatSN, ExpCmdSN and MaxCmdSN filled in under the send lock
    /// (RFC 7143 §4.2.2.2: StatSN advances by one for each PDU that carries a status).
    /// </summary>
    private async Task SendStatusPduAsync(Bhs h, ReadOnlyMemory<byte> data, bool advanceStatSN, CancellationToken cancellationToken, ScsiTask? retained = null)
    {
        await _transport.SendAsync(h, data, new StatusStamp(this, advanceStatSN, retained), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Numbers a target PDU inside the transport's send lock, so StatSN order is send order
    /// with one lock per PDU; at ErrorRecoveryLevel 1 a status PDU is recorded for a Status SNACK.
    /// </summary>
    private readonly struct StatusStamp(IscsiConnection connection, bool advanceStatSN, ScsiTask? retained) : IPduStamp
    {
        public void Stamp(ref Bhs header, ReadOnlySpan<byte> data)
        {
            header.StatSN = advanceStatSN ? connection._statSN++ : connection._statSN;
            var (exp, max) = connection._session!.Window2();
            header.ExpCmdSN = exp;
            header.MaxCmdSN = max;
            if (advanceStatSN && connection.RecoveryEnabled)
            {
                header.DataSegmentLength = data.Length;
                connection.RecordStatus(header, data, retained);
            }
        }
    }

    // ------------------------------------------------------------------ NOP

    private async Task<bool> OnNopOutAsync()
    {
        var h = _transport.Header;
        int dsl = h.DataSegmentLength;
        byte[] data = dsl == 0 ? [] : new byte[dsl];
        await _transport.ReceiveDataAsync(data, Token).ConfigureAwait(false);
        if (h.InitiatorTaskTag == ReservedTag)
        {
            // A ping answer (TTT echoes ours) or a plain keep-alive; never answered (§11.18).
            if (h.TargetTransferTag != ReservedTag && h.TargetTransferTag == _outstandingPing)
            {
                _outstandingPing = ReservedTag;
            }

            return true;
        }

        if (!h.Immediate && !await SequenceAsync(h, usesSlot: false, () => SendNopInAsync(h, data)).ConfigureAwait(false))
        {
            return true;
        }

        if (h.Immediate)
        {
            await SendNopInAsync(h, data).ConfigureAwait(false);
        }

        return true;
    }

    private Task SendNopInAsync(Bhs request, byte[] data)
    {
        var r = default(Bhs);
        r.Opcode = Opcode.NopIn;
        r.Flags = 0x80;
        r.Lun = request.Lun;
        r.InitiatorTaskTag = request.InitiatorTaskTag;
        r.TargetTransferTag = ReservedTag;
        int echo = Math.Min(data.Length, _params!.InitiatorMaxRecvDataSegmentLength);
        return SendStatusPduAsync(r, data.AsMemory(0, echo), advanceStatSN: true, Token);
    }

    /// <summary>The target pings an idle connection and drops one that does not answer (§11.19).</summary>
    private async Task PingLoopAsync()
    {
        var limits = _server.Config.Limits;
        if (limits.NopInIntervalSeconds <= 0)
        {
            return;
        }

        long interval = limits.NopInIntervalSeconds * 1000L;
        long timeout = Math.Max(1, limits.NopInTimeoutSeconds) * 1000L;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Min(1000, interval)));
        try
        {
            while (await timer.WaitForNextTickAsync(Token).ConfigureAwait(false))
            {
                long now = Environment.TickCount64;
                if (_outstandingPing != ReservedTag)
                {
                    if (Volatile.Read(ref _lastReceiveTicks) > _pingSentTicks)
                    {
                        _outstandingPing = ReservedTag; // any PDU proves the peer alive
                    }
                    else if (now - _pingSentTicks > timeout)
                    {
                        Log.PingTimeout(_logger, Id, TimeSpan.FromMilliseconds(timeout));
                        Close();
                        return;
                    }
                }
                else if (now - Volatile.Read(ref _lastReceiveTicks) >= interval)
                {
                    uint tag = NextTtt();
                    _pingSentTicks = now;
                    _outstandingPing = tag;
                    var h = default(Bhs);
                    h.Opcode = Opcode.NopIn;
                    h.Flags = 0x80;
                    h.InitiatorTaskTag = ReservedTag;
                    h.TargetTransferTag = tag;
                    await SendStatusPduAsync(h, ReadOnlyMemory<byte>.Empty, advanceStatSN: false, Token).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
    }

    private uint NextTtt()
    {
        uint t = Interlocked.Increment(ref _nextTtt);
        return t == ReservedTag ? Interlocked.Increment(ref _nextTtt) : t;
    }

    // ------------------------------------------------------------------ CmdSN ordering

    /// <summary>
    /// Applies CmdSN ordering to a non-immediate PDU whose handling is <paramref name="deliver"/>:
    /// in order, it runs now (and frees any queued successors); early, it is queued; outside the
    /// window it is dropped silently (RFC 7143 §4.2.2.1). Returns true when it ran now.
    /// </summary>
    private async Task<bool> SequenceAsync(Bhs h, bool usesSlot, Func<Task> deliver, ScsiTask? task = null)
    {
        var session = _session!;
        switch (session.Check(h.CmdSN))
        {
            case CmdSNCheck.InOrder:
                session.Advance(usesSlot);
                await deliver().ConfigureAwait(false);
                await DeliverPendingAsync().ConfigureAwait(false);
                return true;
            case CmdSNCheck.Early:
                lock (_tasksLock)
                {
                    _pending[h.CmdSN] = new PendingPdu(deliver, usesSlot, task);
                }

                return false;
            default:
                var (exp, max) = session.Window2();
                Log.OutsideWindow(_logger, Id, h.Opcode.ToString(), h.CmdSN, exp, max);
                return false;
        }
    }

    private async Task DeliverPendingAsync()
    {
        var session = _session!;
        while (true)
        {
            PendingPdu? next;
            lock (_tasksLock)
            {
                if (!_pending.Remove(session.ExpCmdSN, out next))
                {
                    return;
                }
            }

            session.Advance(next.UsesSlot);
            await next.Deliver().ConfigureAwait(false);
        }
    }

    private sealed record PendingPdu(Func<Task> Deliver, bool UsesSlot, ScsiTask? Task);

    private sealed class SerialComparer : IComparer<uint>
    {
        public static readonly SerialComparer Instance = new();

        public int Compare(uint x, uint y) => x == y ? 0 : SerialNumber.LessThan(x, y) ? -1 : 1;
    }
}
