using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Sluice.Iscsi.Login;
using Sluice.Iscsi.Pdu;
using Sluice.Offload;

namespace Sluice.Initiator;

/// <summary>
/// A normal iSCSI session with one connection to one target (RFC 7143). Many commands may be in
/// flight; they are sent in CmdSN order within the target's CmdSN window and wait (asynchronously)
/// while it is closed. A receive loop dispatches every PDU by its task tag and places Data-In
/// payload straight into the caller's buffers. A dead connection is re-established with session
/// reinstatement (same ISID, TSIH 0) and commands that never got a status are sent again.
/// </summary>
public sealed partial class IscsiSession : IAsyncDisposable
{
    private const uint ControlTagBit = 0x8000_0000;

    private readonly IscsiClientOptions _options;
    private readonly TimeProvider _time;
    private readonly string _host;
    private readonly int _port;
    private readonly string _targetName;
    private readonly string? _chapUser;
    private readonly string? _chapSecret;
    private readonly ulong _isid;
    private readonly Lock _gate = new();
    private readonly ScsiTask[] _tasks;
    private readonly Stack<ScsiTask> _free;
    private readonly Queue<TaskCompletionSource<ScsiTask>> _slotWaiters = new();
    private readonly Queue<TaskRef> _commands = new();
    private readonly Queue<ControlItem> _control = new();
    private readonly Dictionary<uint, TaskRef> _aborts = new();
    private readonly CancellationTokenSource _lifetime = new();
    private Connection? _conn;
    private uint _cmdSN = 1;
    private uint _expCmdSN = 1;
    private uint _maxCmdSN = 1;
    private uint _expStatSN;
    private uint _controlTag;
    private long _sequence;
    private long _reconnects;
    private Exception? _fault;
    private bool _disposing;
    private Task? _watchdog;

    private IscsiSession(IscsiClientOptions options, string host, int port, string targetName, string? chapUser, string? chapSecret)
    {
        _options = options;
        _time = options.TimeProvider;
        _host = host;
        _port = port;
        _targetName = targetName;
        _chapUser = chapUser;
        _chapSecret = chapSecret;
        _isid = IscsiDiscovery.NewIsid();
        _tasks = new ScsiTask[options.QueueDepth];
        _free = new Stack<ScsiTask>(options.QueueDepth);
        for (int i = options.QueueDepth - 1; i >= 0; i--)
        {
            _tasks[i] = new ScsiTask(this, i, options.InlineCompletions);
            _free.Push(_tasks[i]);
        }
    }

    /// <summary>The target this session is logged in to.</summary>
    public string TargetName => _targetName;

    /// <summary>The negotiated operational parameters of the current connection.</summary>
    public SessionParameters Parameters { get; private set; } = new();

    /// <summary>Target Session Identifying Handle the target assigned at the last login.</summary>
    public ushort Tsih { get; private set; }

    /// <summary>How many times the connection was re-established.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>Counters of the current connection's transport.</summary>
    public ConnectionCounters? Counters => _conn?.Transport.Counters;

    /// <summary>True while the session can take commands.</summary>
    public bool IsConnected => _conn is { Closed: false } && _fault is null && !_disposing;

    /// <summary>Logs in to the target and LUN-independent session named by <paramref name="url"/>.</summary>
    public static Task<IscsiSession> ConnectAsync(IscsiUrl url, IscsiClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (url.Target is null)
        {
            throw new ArgumentException($"'{url}' names no target", nameof(url));
        }

        return ConnectAsync(url.Host, url.Port, url.Target, options is null ? new IscsiClientOptions() with { ChapUser = url.User, ChapSecret = url.Secret }
            : options with { ChapUser = options.ChapUser ?? url.User, ChapSecret = options.ChapSecret ?? url.Secret }, cancellationToken);
    }

    /// <summary>Logs in to <paramref name="targetName"/> at <paramref name="host"/>:<paramref name="port"/>.</summary>
    public static async Task<IscsiSession> ConnectAsync(string host, int port, string targetName, IscsiClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentException.ThrowIfNullOrEmpty(targetName);
        options ??= new IscsiClientOptions();
        options.Validate();
        var session = new IscsiSession(options, host, port, targetName, options.ChapUser, options.ChapSecret);
        try
        {
            var (conn, outcome) = await session.EstablishAsync(cancellationToken).ConfigureAwait(false);
            session.Activate(conn, outcome);
            session._watchdog = session.WatchdogAsync();
            return session;
        }
        catch
        {
            session._lifetime.Dispose();
            throw;
        }
    }

    internal static async Task<Socket> ConnectSocketAsync(string host, int port, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, ct).ConfigureAwait(false);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IscsiConnectionException($"cannot connect to {FormatEndpoint(host, port)}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static string FormatEndpoint(string host, int port) => host.Contains(':', StringComparison.Ordinal) ? $"[{host}]:{port}" : $"{host}:{port}";

    /// <summary>TCP connect and login, following up to three redirects (RFC 7143 §11.13.5, status 0x0101/0x0102).</summary>
    private async Task<(Connection, LoginOutcome)> EstablishAsync(CancellationToken cancellationToken)
    {
        string host = _host;
        int port = _port;
        for (int redirect = 0; ; redirect++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _lifetime.Token);
            timeout.CancelAfter(_options.LoginTimeout);
            PduTransport? transport = null;
            try
            {
                var socket = await ConnectSocketAsync(host, port, timeout.Token).ConfigureAwait(false);
                transport = new PduTransport(socket, Math.Max(256 * 1024, _options.MaxRecvDataSegmentLength + 4096), _options.Offload);
                var login = new LoginNegotiation(transport, _options, _targetName, _isid, 0, _chapUser, _chapSecret, _cmdSN);
                var outcome = await login.RunAsync(timeout.Token).ConfigureAwait(false);
                transport.MaxReceiveDataSegmentLength = _options.MaxRecvDataSegmentLength;

                // Digests cover every PDU after the final Login Response (§13.1). A Data-In whose
                // digest fails throws in the receive loop: the connection is dropped and the read,
                // which never got its status, is replayed — the caller never sees the bad bytes.
                transport.HeaderDigest = outcome.Parameters.HeaderDigestCrc32C;
                transport.DataDigest = outcome.Parameters.DataDigestCrc32C;
                return (new Connection(transport, _time.GetTimestamp()), outcome);
            }
            catch (LoginRedirectException r) when (redirect < 3)
            {
                await DisposeQuietly(transport).ConfigureAwait(false);
                host = r.Host;
                port = r.Port;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && !_lifetime.IsCancellationRequested)
            {
                await DisposeQuietly(transport).ConfigureAwait(false);
                throw new IscsiConnectionException($"login to {_targetName} at {FormatEndpoint(host, port)} timed out after {_options.LoginTimeout.TotalSeconds:0.#}s");
            }
            catch (Exception e) when (e is IscsiProtocolException or SocketException or LoginRedirectException)
            {
                await DisposeQuietly(transport).ConfigureAwait(false);
                throw new IscsiConnectionException($"login to {_targetName} at {FormatEndpoint(host, port)} failed: {e.Message}", e);
            }
            catch
            {
                await DisposeQuietly(transport).ConfigureAwait(false);
                throw;
            }
        }
    }

    private static async ValueTask DisposeQuietly(PduTransport? transport)
    {
        if (transport is not null)
        {
            await transport.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void Activate(Connection conn, LoginOutcome outcome)
    {
        lock (_gate)
        {
            Parameters = outcome.Parameters;
            Tsih = outcome.Tsih;
            _cmdSN = outcome.ExpCmdSN;
            _expCmdSN = outcome.ExpCmdSN;
            _maxCmdSN = SerialNumber.LessOrEqual(outcome.ExpCmdSN - 1, outcome.MaxCmdSN) ? outcome.MaxCmdSN : outcome.ExpCmdSN;
            _expStatSN = outcome.ExpStatSN;
            conn.Parameters = outcome.Parameters;
            _conn = conn;
        }

        conn.Receiver = Task.Run(() => ReceiveLoopAsync(conn));
        conn.Sender = Task.Run(() => SendLoopAsync(conn));
        conn.Signal.Set();
    }

    // ---------------------------------------------------------------- submission

    /// <summary>
    /// Runs one SCSI command on <paramref name="lun"/> and returns its status without throwing for
    /// SCSI errors (the raw escape hatch). <paramref name="dataOut"/> is sent to the target,
    /// <paramref name="dataIn"/> receives the target's data; at most one of them may be non-empty.
    /// </summary>
    public ValueTask<ScsiResult> ExecuteAsync(int lun, ReadOnlySpan<byte> cdb, ReadOnlyMemory<byte> dataOut = default, Memory<byte> dataIn = default, CancellationToken cancellationToken = default)
    {
        if (!dataOut.IsEmpty && !dataIn.IsEmpty)
        {
            throw new NotSupportedException("bidirectional commands are not supported");
        }

        return StartAsync(EncodeLun(lun), ToCdb(cdb, out int length), length, dataOut, dataIn, null, dataIn.Length, cancellationToken);
    }

    /// <summary>Runs one SCSI command whose Data-In lands in a scatter-gather list, in order.</summary>
    public ValueTask<ScsiResult> ExecuteReadAsync(int lun, ReadOnlySpan<byte> cdb, IReadOnlyList<Memory<byte>> dataIn, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataIn);
        long total = 0;
        for (int i = 0; i < dataIn.Count; i++)
        {
            total += dataIn[i].Length;
        }

        if (total > int.MaxValue)
        {
            throw new ArgumentException("scatter-gather list larger than 2 GiB", nameof(dataIn));
        }

        return StartAsync(EncodeLun(lun), ToCdb(cdb, out int length), length, default, default, dataIn, (int)total, cancellationToken);
    }

    /// <summary>SAM LUN encoding (SAM-5 §4.7): peripheral addressing below 256, flat addressing up to 16383.</summary>
    internal static ulong EncodeLun(int lun)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(lun);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lun, 16383);
        ulong first = lun < 256 ? (ulong)lun : 0x4000UL | (ulong)lun;
        return first << 48;
    }

    private static Cdb16 ToCdb(ReadOnlySpan<byte> cdb, out int length)
    {
        if (cdb.Length is 0 or > 16)
        {
            throw new ArgumentException("CDBs of 1 to 16 bytes are supported", nameof(cdb));
        }

        var c = default(Cdb16);
        cdb.CopyTo(c);
        length = cdb.Length;
        return c;
    }

    internal ValueTask<ScsiResult> StartAsync(ulong lun, Cdb16 cdb, int cdbLength, ReadOnlyMemory<byte> dataOut, Memory<byte> dataIn,
        IReadOnlyList<Memory<byte>>? dataInList, int dataInLength, CancellationToken ct) =>
        StartAsync(new CommandRequest(lun, cdb, cdbLength, dataOut, dataIn, dataInList, dataInLength, false, false), ct);

    internal ValueTask<ScsiResult> StartAsync(in CommandRequest request, CancellationToken ct)
    {
        if (ct.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ScsiResult>(ct);
        }

        ThrowIfUnusable();
        var task = TryTakeSlot();
        return task is not null ? new ValueTask<ScsiResult>(task, Submit(task, request, ct)) : StartSlowAsync(request, ct);
    }

    /// <summary>
    /// The block path: completes with nothing, throws <see cref="ScsiCommandException"/> for SCSI
    /// errors and retries UNIT ATTENTION inside the session, so a read or write costs no allocation.
    /// </summary>
    internal ValueTask StartBlockAsync(in CommandRequest request, CancellationToken ct)
    {
        if (ct.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(ct);
        }

        ThrowIfUnusable();
        var task = TryTakeSlot();
        return task is not null ? new ValueTask(task, Submit(task, request, ct)) : StartBlockSlowAsync(request, ct);
    }

    private ScsiTask? TryTakeSlot()
    {
        lock (_gate)
        {
            if (_free.Count == 0)
            {
                return null;
            }

            var task = _free.Pop();
            PrepareTag(task);
            return task;
        }
    }

    private async ValueTask<ScsiResult> StartSlowAsync(CommandRequest request, CancellationToken ct)
    {
        var task = await WaitForSlotAsync(ct).ConfigureAwait(false);
        return await new ValueTask<ScsiResult>(task, Submit(task, request, ct)).ConfigureAwait(false);
    }

    private async ValueTask StartBlockSlowAsync(CommandRequest request, CancellationToken ct)
    {
        var task = await WaitForSlotAsync(ct).ConfigureAwait(false);
        await new ValueTask(task, Submit(task, request, ct)).ConfigureAwait(false);
    }

    /// <summary>Back-pressure: every task slot is busy; wait for one to be released.</summary>
    private async Task<ScsiTask> WaitForSlotAsync(CancellationToken ct)
    {
        var waiter = new TaskCompletionSource<ScsiTask>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_free.Count > 0)
            {
                var t = _free.Pop();
                PrepareTag(t);
                waiter.SetResult(t);
            }
            else
            {
                _slotWaiters.Enqueue(waiter);
            }
        }

        ScsiTask task;
        using (ct.UnsafeRegister(static s => ((TaskCompletionSource<ScsiTask>)s!).TrySetCanceled(), waiter))
        {
            try
            {
                task = await waiter.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The slot may have been handed over at the same moment; pass it on.
                if (waiter.Task.IsCompletedSuccessfully)
                {
                    ReleaseTask(waiter.Task.Result);
                }

                throw new OperationCanceledException(ct);
            }
        }

        try
        {
            ThrowIfUnusable();
        }
        catch
        {
            ReleaseTask(task);
            throw;
        }

        return task;
    }

    private void PrepareTag(ScsiTask task)
    {
        task.Generation = (ushort)((task.Generation + 1) & 0x7FFF);
        task.Itt = ((uint)task.Generation << 16) | (uint)task.Index;
        task.State = TaskState.Completed; // owned by the caller until queued
    }

    private short Submit(ScsiTask task, in CommandRequest request, CancellationToken ct)
    {
        task.Lun = request.Lun;
        task.Cdb = request.Cdb;
        task.CdbLength = request.CdbLength;
        task.DataOut = request.DataOut;
        task.DataIn = request.DataIn;
        task.DataInList = request.DataInList;
        task.DataInLength = request.DataInLength;
        task.BlockMode = request.Block;
        task.CheckShortRead = request.CheckShortRead;
        task.RetryBudget = request.Block ? UnitAttentionRetries : 0;
        task.CancelReason = null;
        task.AbortSentAt = 0;
        task.Deadline = _options.CommandTimeout == Timeout.InfiniteTimeSpan ? 0
            : _time.GetTimestamp() + (long)(_options.CommandTimeout.TotalSeconds * _time.TimestampFrequency);
        task.Reset();
        var version = task.Version;
        Connection? conn;
        lock (_gate)
        {
            task.Sequence = _sequence++;
            task.State = TaskState.Queued;
            _commands.Enqueue(new TaskRef(task, task.Itt));
            conn = _conn;
        }

        if (conn is not null)
        {
            if (ReferenceEquals(t_completing, conn))
            {
                // Submitted from a continuation running on this connection's receive loop: the loop
                // wakes the sender once it has handled every PDU at hand, so the commands issued
                // meanwhile go out together (see ReceiveLoopAsync).
                conn.SendDeferred = true;
            }
            else
            {
                conn.Signal.Set();
            }
        }

        if (ct.CanBeCanceled)
        {
            task.Registration = ct.UnsafeRegister(static (s, token) =>
            {
                var t = (ScsiTask)s!;
                t.Session.Cancel(t, t.Itt, new OperationCanceledException(token));
            }, task);
        }

        return version;
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposing, this);
        if (_fault is { } fault)
        {
            throw new IscsiConnectionException("the session has failed: " + fault.Message, fault);
        }
    }

    internal void ReleaseTask(ScsiTask task)
    {
        task.DataOut = default;
        task.DataIn = default;
        task.DataInList = null;
        task.Connection = null;
        task.CancelReason = null;
        TaskCompletionSource<ScsiTask>? waiter = null;
        lock (_gate)
        {
            while (_slotWaiters.Count > 0)
            {
                var w = _slotWaiters.Dequeue();
                if (!w.Task.IsCompleted)
                {
                    waiter = w;
                    break;
                }
            }

            if (waiter is null)
            {
                task.State = TaskState.Free;
                _free.Push(task);
            }
            else
            {
                PrepareTag(task);
            }
        }

        if (waiter is not null && !waiter.TrySetResult(task))
        {
            ReleaseTask(task);
        }
    }

    /// <summary>Cancels or times out a task: unsent tasks end at once, sent ones get an ABORT TASK (RFC 7143 §11.5.1).</summary>
    private void Cancel(ScsiTask task, uint itt, Exception reason)
    {
        bool endNow = false;
        Connection? conn = null;
        lock (_gate)
        {
            if (task.Itt != itt || task.State is not (TaskState.Queued or TaskState.Sent) || task.CancelReason is not null)
            {
                return;
            }

            task.CancelReason = reason;
            if (task.State == TaskState.Queued)
            {
                task.State = TaskState.Completed;
                endNow = true;
            }
            else
            {
                uint tag = NextControlTag();
                _aborts[tag] = new TaskRef(task, task.Itt);
                task.AbortSentAt = _time.GetTimestamp();
                _control.Enqueue(new ControlItem(ControlKind.AbortTask, task, task.Itt, tag, 0, 0, task.Lun, null, task.CmdSN));
                conn = _conn;
            }
        }

        if (endNow)
        {
            Fail(task, reason);
        }

        conn?.Signal.Set();
    }

    private uint NextControlTag()
    {
        uint tag;
        do
        {
            tag = ControlTagBit | (++_controlTag & 0x7FFF_FFFF);
        }
        while (tag == PduFields.ReservedTag);
        return tag;
    }

    private static void Fail(ScsiTask task, Exception reason)
    {
        task.Registration.Dispose();
        task.Registration = default;
        task.SetException(reason);
    }

    /// <summary>The connection whose receive loop is running a command's continuation on this thread (<see cref="IscsiClientOptions.InlineCompletions"/>).</summary>
    [ThreadStatic]
    private static Connection? t_completing;

    private static void Succeed(ScsiTask task, ScsiResult result)
    {
        task.Registration.Dispose();
        task.Registration = default;
        task.SetResult(result);
    }

    /// <summary>Completes a command from <paramref name="c"/>'s receive loop.</summary>
    private static void Succeed(Connection c, ScsiTask task, ScsiResult result)
    {
        if (!task.InlineCompletions)
        {
            Succeed(task, result);
            return;
        }

        t_completing = c;
        try
        {
            Succeed(task, result);
        }
        finally
        {
            t_completing = null;
        }
    }

    /// <summary>
    /// Claims a task for completion by a status that arrived on <paramref name="conn"/>; false
    /// when someone else already completed it, or when the task is no longer on that connection.
    /// </summary>
    /// <remarks>
    /// The connection check closes a race with recovery: a status read by the old connection's
    /// receive loop after <see cref="RecoverAsync"/> requeued the task (to be sent again on the
    /// new connection) must not complete it. Otherwise the caller would see a write acknowledged
    /// while its replay is still queued or in flight, issue a newer write to the same blocks, and
    /// the replay could then land after it: a duplicated write overtaking an acknowledged one,
    /// which RFC 7143 §7.1.4.4 (session recovery: commands without status are retried on the
    /// new session) does not allow the initiator to cause.
    /// </remarks>
    private bool TryClaim(ScsiTask task, uint itt, Connection conn)
    {
        lock (_gate)
        {
            if (task.Itt != itt || task.State != TaskState.Sent || !ReferenceEquals(task.Connection, conn))
            {
                return false;
            }

            task.State = TaskState.Completed;
            return true;
        }
    }

    private ScsiTask? Lookup(uint itt, Connection conn)
    {
        if ((itt & ControlTagBit) != 0)
        {
            return null;
        }

        int index = (int)(itt & 0xFFFF);
        if (index >= _tasks.Length)
        {
            return null;
        }

        var task = _tasks[index];
        return task.Itt == itt && task.State == TaskState.Sent && ReferenceEquals(task.Connection, conn) ? task : null;
    }

    private readonly record struct TaskRef(ScsiTask Task, uint Itt);

    /// <summary>How often the block path resends a command that met a UNIT ATTENTION (libiscsi retries too).</summary>
    internal const int UnitAttentionRetries = 3;

    private enum ControlKind
    {
        DataOut,
        NopOut,
        NopReply,
        AbortTask,
        Logout,
    }

    /// <summary>
    /// A PDU other than a SCSI command waiting for the send loop. For DataOut: Tag is the TTT,
    /// Offset/Length the R2T's burst. For AbortTask: Tag is the TMF's own ITT, Itt the referenced task.
    /// </summary>
    private readonly record struct ControlItem(
        ControlKind Kind, ScsiTask? Task, uint Itt, uint Tag, uint Offset, uint Length, ulong Lun, byte[]? Data, uint RefCmdSN);

    private sealed class Connection(PduTransport transport, long now)
    {
        public PduTransport Transport { get; } = transport;
        public AsyncSignal Signal { get; } = new();

        /// <summary>A command was queued by a continuation on the receive loop; the loop wakes the sender before it next waits.</summary>
        public bool SendDeferred;
        public SessionParameters Parameters { get; set; } = new();
        public volatile bool Closed;
        public long LastReceive = now;
        public uint PingTag;
        public long PingSentAt;
        public Task? Receiver;
        public Task? Sender;
        public TaskCompletionSource? LogoutDone;
        public byte[] Scratch = [];

        public byte[] GetScratch(int length)
        {
            if (Scratch.Length < length)
            {
                Scratch = new byte[Math.Max(length, 4096)];
            }

            return Scratch;
        }
    }

    private static uint ReadU32(ReadOnlySpan<byte> span, int offset) => BinaryPrimitives.ReadUInt32BigEndian(span[offset..]);
}
