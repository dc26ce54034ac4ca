using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using Sluice.Iscsi.Pdu;
using Sluice.Offload;

namespace Sluice.Initiator;

public sealed partial class IscsiSession
{
    // ---------------------------------------------------------------- send side

    /// <summary>
    /// The one writer of a connection: control PDUs first (Data-Out for R2Ts, NOP, TMF, Logout),
    /// then SCSI commands in submission order while CmdSN is inside [ExpCmdSN, MaxCmdSN]
    /// (RFC 7143 §4.2.2.1). A closed window leaves commands queued until a response opens it.
    /// </summary>
    private async Task SendLoopAsync(Connection c)
    {
        // Everything is awaited here, in one long-lived state machine, so sending allocates nothing per PDU.
        try
        {
            while (true)
            {
                await c.Signal.WaitAsync().ConfigureAwait(false);
                while (!c.Closed)
                {
                    ControlItem control;
                    ScsiTask? command;
                    uint itt;
                    uint cmdSN;
                    uint expStatSN;
                    bool taken;
                    lock (_gate)
                    {
                        taken = TryTakeWork(c, out control, out command, out itt, out cmdSN, out expStatSN);
                    }

                    if (!taken)
                    {
                        // Queue empty: whatever was batched goes out now, in one socket call.
                        await c.Transport.FlushAsync().ConfigureAwait(false);
                        break;
                    }

                    ReadOnlyMemory<byte> data = default;
                    int burstStart = 0;
                    int burstEnd = 0;
                    uint ttt = PduFields.ReservedTag;
                    ulong lun = 0;
                    if (command is not null)
                    {
                        data = command.DataOut;
                        lun = command.Lun;
                        var h = BuildCommand(c, command, itt, cmdSN, expStatSN, out int immediate, out burstEnd);
                        burstStart = immediate;
                        if (burstEnd == immediate && c.Transport.TryAppend(h, data.Span[..immediate]))
                        {
                            continue; // batched with the other commands ready now (sent when the queue runs dry)
                        }

                        await c.Transport.SendAsync(h, data[..immediate]).ConfigureAwait(false);
                    }
                    else if (control.Kind == ControlKind.DataOut)
                    {
                        var task = control.Task!;
                        data = task.DataOut;
                        if (task.Itt != control.Itt || task.State != TaskState.Sent || !ReferenceEquals(task.Connection, c) ||
                            (long)control.Offset + control.Length > data.Length)
                        {
                            continue; // the task ended (abort, error status) before we answered its R2T
                        }

                        itt = control.Itt;
                        lun = task.Lun;
                        ttt = control.Tag;
                        burstStart = (int)control.Offset;
                        burstEnd = burstStart + (int)control.Length;
                    }
                    else
                    {
                        await c.Transport.SendAsync(BuildControl(control, cmdSN, expStatSN), control.Data ?? ReadOnlyMemory<byte>.Empty).ConfigureAwait(false);
                        continue;
                    }

                    // One burst of Data-Out PDUs (RFC 7143 §11.7), each within the target's MaxRecvDataSegmentLength.
                    int max = c.Parameters.TargetMaxRecvDataSegmentLength;
                    uint dataSN = 0;
                    for (int pos = burstStart; pos < burstEnd;)
                    {
                        int n = Math.Min(max, burstEnd - pos);
                        var d = default(Bhs);
                        d.Opcode = Opcode.DataOut;
                        d.Final = pos + n == burstEnd;
                        d.Lun = lun;
                        d.InitiatorTaskTag = itt;
                        d.TargetTransferTag = ttt;
                        d.ExpStatSN = Volatile.Read(ref _expStatSN);
                        d.DataSN = dataSN++;
                        d.BufferOffset = (uint)pos;
                        await c.Transport.SendAsync(d, data.Slice(pos, n)).ConfigureAwait(false);
                        pos += n;
                    }
                }

                if (c.Closed)
                {
                    return;
                }
            }
        }
        catch (Exception e)
        {
            ConnectionFailed(c, e);
        }
    }

    private bool TryTakeWork(Connection c, out ControlItem control, out ScsiTask? command, out uint itt, out uint cmdSN, out uint expStatSN)
    {
        control = default;
        command = null;
        itt = 0;
        cmdSN = _cmdSN;
        expStatSN = _expStatSN;
        if (c.Closed || !ReferenceEquals(_conn, c))
        {
            return false;
        }

        if (_control.Count > 0)
        {
            control = _control.Dequeue();
            return true;
        }

        while (_commands.Count > 0)
        {
            var r = _commands.Peek();
            if (r.Task.Itt != r.Itt || r.Task.State != TaskState.Queued)
            {
                _commands.Dequeue(); // cancelled while queued
                continue;
            }

            if (SerialNumber.GreaterThan(_cmdSN, _maxCmdSN))
            {
                return false; // window closed: back-pressure until the target raises MaxCmdSN
            }

            _commands.Dequeue();
            command = r.Task;
            itt = r.Itt;
            command.CmdSN = cmdSN = _cmdSN++;
            command.State = TaskState.Sent;
            command.Connection = c;
            return true;
        }

        return false;
    }

    /// <summary>SCSI Command PDU (RFC 7143 §11.3) with immediate data and unsolicited Data-Out as negotiated (§13.10, §13.11, §13.14).</summary>
    private static Bhs BuildCommand(Connection c, ScsiTask task, uint itt, uint cmdSN, uint expStatSN, out int immediate, out int unsolicitedEnd)
    {
        var p = c.Parameters;
        var data = task.DataOut;
        bool write = !data.IsEmpty;
        immediate = 0;
        unsolicitedEnd = 0;
        if (write)
        {
            int firstBurst = Math.Min(data.Length, p.FirstBurstLength);
            immediate = p.ImmediateData ? Math.Min(firstBurst, p.TargetMaxRecvDataSegmentLength) : 0;
            unsolicitedEnd = p.InitialR2T ? immediate : firstBurst;
        }

        var h = default(Bhs);
        h.Opcode = Opcode.ScsiCommand;
        // F = no unsolicited Data-Out follows; ATTR = 1 (simple task).
        h.Flags = (byte)((unsolicitedEnd > immediate ? 0 : 0x80) | (task.DataInLength > 0 ? 0x40 : 0) | (write ? 0x20 : 0) | 1);
        h.Lun = task.Lun;
        h.InitiatorTaskTag = itt;
        h.ExpectedDataTransferLength = (uint)(write ? data.Length : task.DataInLength);
        h.CmdSN = cmdSN;
        h.ExpStatSN = expStatSN;
        ((ReadOnlySpan<byte>)task.Cdb)[..task.CdbLength].CopyTo(h.Cdb);
        return h;
    }

    private static Bhs BuildControl(in ControlItem item, uint cmdSN, uint expStatSN)
    {
        var h = default(Bhs);
        switch (item.Kind)
        {
            case ControlKind.NopOut:
                // §11.18: a ping: ITT valid, TTT reserved, immediate so it bypasses the CmdSN window.
                h.Opcode = Opcode.NopOut;
                h.Immediate = true;
                h.Final = true;
                h.InitiatorTaskTag = item.Tag;
                h.TargetTransferTag = PduFields.ReservedTag;
                break;

            case ControlKind.NopReply:
                // §11.18: the answer to a target's NOP-In: ITT reserved, its TTT and LUN echoed, its data too.
                h.Opcode = Opcode.NopOut;
                h.Immediate = true;
                h.Final = true;
                h.Lun = item.Lun;
                h.InitiatorTaskTag = PduFields.ReservedTag;
                h.TargetTransferTag = item.Tag;
                break;

            case ControlKind.AbortTask:
                // §11.5: ABORT TASK, referenced task tag at 20, RefCmdSN at 32.
                h.Opcode = Opcode.TaskManagementRequest;
                h.Immediate = true;
                h.Flags = (byte)(0x80 | TmfFunction.AbortTask);
                h.Lun = item.Lun;
                h.InitiatorTaskTag = item.Tag;
                h.SetU32(20, item.Itt);
                h.SetU32(32, item.RefCmdSN);
                break;

            case ControlKind.Logout:
                // §11.14: reason 0, close the session.
                h.Opcode = Opcode.LogoutRequest;
                h.Immediate = true;
                h.Flags = 0x80;
                h.InitiatorTaskTag = item.Tag;
                break;
        }

        h.CmdSN = cmdSN;
        h.ExpStatSN = expStatSN;
        return h;
    }

    // ---------------------------------------------------------------- receive side

    /// <summary>The one reader of a connection: every PDU is dispatched by its task tag.</summary>
    private async Task ReceiveLoopAsync(Connection c)
    {
        var t = c.Transport;
        try
        {
            while (!c.Closed)
            {
                if (c.SendDeferred && !t.PduStaged)
                {
                    WakeSender(c);
                }

                if (!await t.ReceiveHeaderAsync().ConfigureAwait(false))
                {
                    throw new IscsiConnectionException("the target closed the connection");
                }

                if (c.Closed)
                {
                    return;
                }

                Volatile.Write(ref c.LastReceive, _time.GetTimestamp());
                var h = t.Header;
                switch (h.Opcode)
                {
                    case Opcode.DataIn:
                    {
                        // Data-In (RFC 7143 §11.7), inline so that the hot path awaits only in this state machine.
                        bool hasStatus = (h.Flags & 0x01) != 0;
                        Acknowledge(c, h, hasStatus);
                        uint itt = h.InitiatorTaskTag;
                        var task = Lookup(itt, c);
                        int length = h.DataSegmentLength;
                        if (task is null)
                        {
                            await t.DiscardDataAsync().ConfigureAwait(false);
                            break;
                        }

                        uint offset = h.BufferOffset;
                        if ((ulong)offset + (ulong)length > (ulong)task.DataInLength)
                        {
                            throw DataInOverrun(itt, offset, length, task.DataInLength);
                        }

                        if (length > 0)
                        {
                            if (c.SendDeferred && t.StagedBytes < length)
                            {
                                WakeSender(c);
                            }

                            if (task.DataInList is null)
                            {
                                await t.ReceiveDataAsync(task.DataIn.Slice((int)offset, length)).ConfigureAwait(false);
                            }
                            else
                            {
                                await ReceiveIntoListAsync(c, task.DataInList, (int)offset, length).ConfigureAwait(false);
                            }
                        }

                        if (hasStatus && TryClaim(task, itt, c))
                        {
                            Succeed(c, task, new ScsiResult(PduFields.ScsiStatusByte(h), 0, Residual(h), (h.Flags & 0x02) != 0, (h.Flags & 0x04) != 0, null));
                        }

                        break;
                    }

                    case Opcode.ScsiResponse:
                        if (h.DataSegmentLength == 0)
                        {
                            OnScsiResponse(c, h, []);
                        }
                        else
                        {
                            await OnScsiResponseWithDataAsync(c, h).ConfigureAwait(false);
                        }

                        break;
                    case Opcode.ReadyToTransfer:
                        OnReadyToTransfer(c, h);
                        if (h.DataSegmentLength > 0)
                        {
                            await t.DiscardDataAsync().ConfigureAwait(false);
                        }

                        break;
                    case Opcode.NopIn:
                        await OnNopInAsync(c, h).ConfigureAwait(false);
                        break;
                    case Opcode.TaskManagementResponse:
                        Acknowledge(c, h, statSN: true);
                        await t.DiscardDataAsync().ConfigureAwait(false);
                        OnTaskManagementResponse(c, h);
                        break;
                    case Opcode.LogoutResponse:
                        Acknowledge(c, h, statSN: true);
                        await t.DiscardDataAsync().ConfigureAwait(false);
                        c.LogoutDone?.TrySetResult();
                        throw new IscsiConnectionException("logged out");
                    case Opcode.AsyncMessage:
                        Acknowledge(c, h, statSN: true);
                        await t.DiscardDataAsync().ConfigureAwait(false);
                        OnAsyncMessage(c, h);
                        break;
                    case Opcode.Reject:
                        await OnRejectAsync(c, h).ConfigureAwait(false);
                        break;
                    case Opcode.TextResponse:
                        Acknowledge(c, h, statSN: true);
                        await t.DiscardDataAsync().ConfigureAwait(false);
                        break;
                    default:
                        throw new IscsiProtocolException($"unexpected {h.Opcode} from the target");
                }
            }
        }
        catch (Exception e)
        {
            ConnectionFailed(c, e);
        }
    }

    /// <summary>
    /// Before the receive loop waits for the socket: commands that continuations queued while it
    /// handled the PDUs at hand go out now. The sender runs on this thread until it has sent them
    /// (one socket call for the lot) or must wait itself, as in a C initiator's event loop.
    /// </summary>
    private static void WakeSender(Connection c)
    {
        c.SendDeferred = false;
        c.Signal.Set(inline: true);
    }

    /// <summary>
    /// Takes StatSN (when the PDU carries a new one) and the CmdSN window from a target PDU.
    /// RFC 7143 §4.2.2.1: a MaxCmdSN below ExpCmdSN - 1 is ignored, and neither value moves back.
    /// </summary>
    private void Acknowledge(Connection c, in Bhs h, bool statSN)
    {
        bool opened = false;
        lock (_gate)
        {
            if (!ReferenceEquals(_conn, c))
            {
                return;
            }

            if (statSN && SerialNumber.GreaterThan(h.StatSN + 1, _expStatSN))
            {
                _expStatSN = h.StatSN + 1;
            }

            uint exp = h.ExpCmdSN;
            uint max = h.MaxCmdSN;
            if (SerialNumber.LessOrEqual(exp - 1, max))
            {
                if (SerialNumber.GreaterThan(exp, _expCmdSN))
                {
                    _expCmdSN = exp;
                }

                if (SerialNumber.GreaterThan(max, _maxCmdSN))
                {
                    opened = SerialNumber.GreaterThan(_cmdSN, _maxCmdSN) && _commands.Count > 0;
                    _maxCmdSN = max;
                }
            }
        }

        if (opened)
        {
            c.Signal.Set();
        }
    }

    private static IscsiProtocolException DataInOverrun(uint itt, uint offset, int length, int expected) =>
        new(string.Create(CultureInfo.InvariantCulture,
            $"Data-In for task 0x{itt:x8} at offset {offset} length {length} exceeds the expected {expected} bytes"));

    /// <summary>
    /// Places one Data-In segment across a scatter-gather list. PduTransport consumes the padding
    /// (and, with DataDigest, checks a digest) at the end of each piece it receives, so pieces go
    /// straight in only when every piece but the last is a multiple of 4 bytes and no data digest
    /// is in force, or when the segment lands in one piece; otherwise it is staged and copied.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask ReceiveIntoListAsync(Connection c, IReadOnlyList<Memory<byte>> list, int offset, int length)
    {
        int index = 0;
        int skip = offset;
        while (index < list.Count && skip >= list[index].Length)
        {
            skip -= list[index].Length;
            index++;
        }

        bool direct = true;
        int remaining = length;
        for (int i = index, s = skip; i < list.Count && remaining > 0; i++, s = 0)
        {
            int take = Math.Min(list[i].Length - s, remaining);
            remaining -= take;
            if (remaining > 0 && ((take & 3) != 0 || c.Transport.DataDigest))
            {
                direct = false;
                break;
            }
        }

        if (direct)
        {
            remaining = length;
            for (int i = index; remaining > 0; i++, skip = 0)
            {
                int take = Math.Min(list[i].Length - skip, remaining);
                await c.Transport.ReceiveDataAsync(list[i].Slice(skip, take)).ConfigureAwait(false);
                remaining -= take;
            }

            return;
        }

        var scratch = c.GetScratch(length);
        await c.Transport.ReceiveDataAsync(scratch.AsMemory(0, length)).ConfigureAwait(false);
        int copied = 0;
        for (int i = index; copied < length; i++, skip = 0)
        {
            int take = Math.Min(list[i].Length - skip, length - copied);
            scratch.AsSpan(copied, take).CopyTo(list[i].Span[skip..]);
            copied += take;
        }
    }

    private static int Residual(in Bhs h) => (int)Math.Min(h.ResidualCount, int.MaxValue);

    private async ValueTask OnScsiResponseWithDataAsync(Connection c, Bhs h)
    {
        int length = h.DataSegmentLength;
        var task = Lookup(h.InitiatorTaskTag, c);
        var buffer = task is not null && length <= task.Sense.Length ? task.Sense : c.GetScratch(length);
        await c.Transport.ReceiveDataAsync(buffer.AsMemory(0, length)).ConfigureAwait(false);
        OnScsiResponse(c, h, buffer.AsSpan(0, length));
    }

    /// <summary>
    /// SCSI Response (RFC 7143 §11.4): status, residuals and, with CHECK CONDITION, SenseLength +
    /// sense data. On the block path a UNIT ATTENTION sends the command again instead of failing it.
    /// </summary>
    private void OnScsiResponse(Connection c, in Bhs h, ReadOnlySpan<byte> data)
    {
        Acknowledge(c, h, statSN: true);
        uint itt = h.InitiatorTaskTag;
        var task = Lookup(itt, c);
        if (task is null)
        {
            return;
        }

        byte response = PduFields.Response(h);
        byte status = PduFields.ScsiStatusByte(h);
        var sense = ReadOnlySpan<byte>.Empty;
        if (data.Length >= 2)
        {
            sense = data.Slice(2, Math.Min(BinaryPrimitives.ReadUInt16BigEndian(data), data.Length - 2));
        }

        if (response == 0 && status == ScsiStatus.CheckCondition && task.RetryBudget > 0 &&
            SenseDecoder.TryDecode(sense, out byte key, out _, out _) && key == SenseKey.UnitAttention && TryRequeue(task, itt, c))
        {
            return;
        }

        byte[]? senseCopy = response != 0 || status is not (ScsiStatus.Good or ScsiStatus.ConditionMet) ? sense.ToArray() : null;
        if (TryClaim(task, itt, c))
        {
            Succeed(c, task, new ScsiResult(status, response, Residual(h), (h.Flags & 0x02) != 0, (h.Flags & 0x04) != 0, senseCopy));
        }
    }

    private bool TryRequeue(ScsiTask task, uint itt, Connection c)
    {
        lock (_gate)
        {
            // Only a task still on this connection: after recovery requeued it, a late UNIT
            // ATTENTION from the old connection must not queue it a second time.
            if (task.Itt != itt || task.State != TaskState.Sent || task.CancelReason is not null || !ReferenceEquals(task.Connection, c))
            {
                return false;
            }

            task.RetryBudget--;
            task.State = TaskState.Queued;
            task.Connection = null;
            _commands.Enqueue(new TaskRef(task, itt));
        }

        c.Signal.Set();
        return true;
    }

    /// <summary>R2T (RFC 7143 §11.8): queue a Data-Out burst of the requested range.</summary>
    private void OnReadyToTransfer(Connection c, in Bhs h)
    {
        Acknowledge(c, h, statSN: false);
        uint itt = h.InitiatorTaskTag;
        var task = Lookup(itt, c);
        if (task is null)
        {
            return; // aborted or completed
        }

        uint offset = h.BufferOffset;
        uint desired = h.ResidualCount;
        if (task.DataOut.IsEmpty || desired == 0 || (ulong)offset + desired > (ulong)task.DataOut.Length)
        {
            throw new IscsiProtocolException(string.Create(CultureInfo.InvariantCulture,
                $"R2T for task 0x{itt:x8} asks for {desired} bytes at {offset} of a {task.DataOut.Length}-byte write"));
        }

        lock (_gate)
        {
            _control.Enqueue(new ControlItem(ControlKind.DataOut, task, itt, h.TargetTransferTag, offset, desired, task.Lun, null, 0));
        }

        c.Signal.Set();
    }

    /// <summary>NOP-In (RFC 7143 §11.19): the answer to our ping, or a ping from the target to answer.</summary>
    private async ValueTask OnNopInAsync(Connection c, Bhs h)
    {
        uint itt = h.InitiatorTaskTag;
        Acknowledge(c, h, statSN: itt != PduFields.ReservedTag);
        if (h.TargetTransferTag != PduFields.ReservedTag)
        {
            var data = new byte[h.DataSegmentLength];
            await c.Transport.ReceiveDataAsync(data).ConfigureAwait(false);
            lock (_gate)
            {
                _control.Enqueue(new ControlItem(ControlKind.NopReply, null, 0, h.TargetTransferTag, 0, 0, h.Lun, data, 0));
            }

            c.Signal.Set();
        }
        else
        {
            await c.Transport.DiscardDataAsync().ConfigureAwait(false);
        }

        if (itt != PduFields.ReservedTag && itt == c.PingTag)
        {
            c.PingTag = 0;
        }
    }

    private void OnTaskManagementResponse(Connection c, in Bhs h)
    {
        TaskRef r;
        lock (_gate)
        {
            if (!_aborts.Remove(h.InitiatorTaskTag, out r))
            {
                return;
            }
        }

        // §11.6.1: after "function complete" or "task does not exist" no more PDUs come for the task.
        if (TryClaim(r.Task, r.Itt, c))
        {
            Fail(r.Task, r.Task.CancelReason ?? new OperationCanceledException());
        }
    }

    /// <summary>Async Message (RFC 7143 §11.9).</summary>
    private void OnAsyncMessage(Connection c, in Bhs h)
    {
        switch (PduFields.AsyncEventCode(h))
        {
            case AsyncEvent.LogoutRequested:
                // Log out; the connection is then re-established and outstanding commands replayed.
                lock (_gate)
                {
                    _control.Enqueue(new ControlItem(ControlKind.Logout, null, 0, NextControlTag(), 0, 0, 0, null, 0));
                }

                c.Signal.Set();
                break;
            case AsyncEvent.ConnectionDrop:
            case AsyncEvent.SessionDrop:
                throw new IscsiConnectionException("the target dropped the connection (Async Message)");
            default:
                break; // SCSI async events and renegotiation requests need nothing from a single-connection initiator
        }
    }

    private async ValueTask OnRejectAsync(Connection c, Bhs h)
    {
        Acknowledge(c, h, statSN: true);
        int length = h.DataSegmentLength;
        var data = c.GetScratch(length);
        await c.Transport.ReceiveDataAsync(data.AsMemory(0, length)).ConfigureAwait(false);
        if (length < Bhs.Length)
        {
            return;
        }

        uint itt = ReadU32(data, 16);
        var task = Lookup(itt, c);
        if (task is not null && TryClaim(task, itt, c))
        {
            Fail(task, new IOException(string.Create(CultureInfo.InvariantCulture,
                $"the target rejected the command (reason 0x{PduFields.RejectReasonCode(h):x2})")));
        }
    }

    // ---------------------------------------------------------------- failure, recovery, watchdog

    private void ConnectionFailed(Connection c, Exception cause)
    {
        lock (_gate)
        {
            if (c.Closed)
            {
                return;
            }

            c.Closed = true;
            if (!ReferenceEquals(_conn, c))
            {
                return;
            }

            _conn = null;
        }

        c.Signal.Set();
        c.LogoutDone?.TrySetResult();
        _ = c.Transport.DisposeAsync();
        if (_disposing)
        {
            FailOutstanding(new ObjectDisposedException(nameof(IscsiSession)));
            return;
        }

        if (_options.ReconnectAttempts == 0)
        {
            _fault = new IscsiConnectionException($"connection to {_targetName} lost: {cause.Message}", cause);
            FailOutstanding(_fault);
            return;
        }

        _ = Task.Run(() => RecoverAsync(cause));
    }

    /// <summary>
    /// Session reinstatement (RFC 7143 §6.3.5): log in again with the same ISID and TSIH 0, then
    /// send again every command that never got a status, in submission order. A command that got
    /// its status is never sent again.
    /// </summary>
    private async Task RecoverAsync(Exception cause)
    {
        var aborted = new List<ScsiTask>();
        lock (_gate)
        {
            var pending = new List<ScsiTask>();
            foreach (var task in _tasks)
            {
                if (task.State is TaskState.Queued or TaskState.Sent)
                {
                    if (task.CancelReason is not null)
                    {
                        task.State = TaskState.Completed;
                        aborted.Add(task);
                    }
                    else
                    {
                        pending.Add(task);
                    }
                }
            }

            pending.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
            _commands.Clear();
            _control.Clear();
            _aborts.Clear();
            foreach (var task in pending)
            {
                task.State = TaskState.Queued;
                task.Connection = null;
                task.AbortSentAt = 0;
                _commands.Enqueue(new TaskRef(task, task.Itt));
            }
        }

        foreach (var task in aborted)
        {
            Fail(task, task.CancelReason!);
        }

        Exception last = cause;
        for (int attempt = 1; attempt <= _options.ReconnectAttempts && !_disposing; attempt++)
        {
            try
            {
                if (attempt > 1)
                {
                    await Task.Delay(_options.ReconnectDelay, _time, _lifetime.Token).ConfigureAwait(false);
                }

                var (conn, outcome) = await EstablishAsync(_lifetime.Token).ConfigureAwait(false);
                if (_disposing)
                {
                    await conn.Transport.DisposeAsync().ConfigureAwait(false);
                    break;
                }

                Interlocked.Increment(ref _reconnects);
                Activate(conn, outcome);
                return;
            }
            catch (LoginException e) when (e.StatusClass == 2)
            {
                last = e; // authentication, authorization, not found: trying again will not help
                break;
            }
            catch (Exception e)
            {
                last = e;
            }
        }

        var fault = new IscsiConnectionException(
            $"connection to {_targetName} lost ({cause.Message}) and could not be re-established: {last.Message}", last);
        _fault = fault;
        FailOutstanding(fault);
    }

    private void FailOutstanding(Exception reason)
    {
        var failed = new List<ScsiTask>();
        lock (_gate)
        {
            foreach (var task in _tasks)
            {
                if (task.State is TaskState.Queued or TaskState.Sent)
                {
                    task.State = TaskState.Completed;
                    failed.Add(task);
                }
            }

            _commands.Clear();
            _control.Clear();
            _aborts.Clear();
        }

        foreach (var task in failed)
        {
            Fail(task, reason);
        }
    }

    private async Task WatchdogAsync()
    {
        var period = TimeSpan.FromSeconds(1);
        foreach (var limit in new[] { _options.NopInterval, _options.NopTimeout, _options.CommandTimeout })
        {
            if (limit > TimeSpan.Zero && limit != Timeout.InfiniteTimeSpan && limit / 4 < period)
            {
                period = limit / 4;
            }
        }

        if (period < TimeSpan.FromMilliseconds(10))
        {
            period = TimeSpan.FromMilliseconds(10);
        }

        using var timer = new PeriodicTimer(period, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_lifetime.Token).ConfigureAwait(false))
            {
                Tick();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Pings an idle connection, declares it dead when a ping or an abort goes unanswered, and times commands out.</summary>
    internal void Tick()
    {
        long now = _time.GetTimestamp();
        var c = _conn;
        if (c is { Closed: false })
        {
            if (c.PingTag != 0)
            {
                if (_time.GetElapsedTime(c.PingSentAt, now) > _options.NopTimeout)
                {
                    ConnectionFailed(c, new TimeoutException(string.Create(CultureInfo.InvariantCulture,
                        $"the target did not answer a NOP-Out within {_options.NopTimeout.TotalSeconds:0.#}s")));
                    return;
                }
            }
            else if (_options.NopInterval > TimeSpan.Zero && _time.GetElapsedTime(Volatile.Read(ref c.LastReceive), now) >= _options.NopInterval &&
                     _time.GetElapsedTime(c.PingSentAt, now) >= _options.NopInterval)
            {
                lock (_gate)
                {
                    c.PingTag = NextControlTag();
                    c.PingSentAt = now;
                    _control.Enqueue(new ControlItem(ControlKind.NopOut, null, 0, c.PingTag, 0, 0, 0, null, 0));
                }

                c.Signal.Set();
            }
        }

        foreach (var task in _tasks)
        {
            var state = task.State;
            if (state is not (TaskState.Queued or TaskState.Sent))
            {
                continue;
            }

            uint itt = task.Itt;
            if (task.CancelReason is null && task.Deadline != 0 && now > task.Deadline)
            {
                Cancel(task, itt, new TimeoutException(string.Create(CultureInfo.InvariantCulture,
                    $"SCSI command 0x{task.Cdb[0]:x2} timed out after {_options.CommandTimeout.TotalSeconds:0.#}s")));
            }
            else if (c is { Closed: false } && task.AbortSentAt != 0 && ReferenceEquals(task.Connection, c) &&
                     _time.GetElapsedTime(task.AbortSentAt, now) > _options.NopTimeout)
            {
                ConnectionFailed(c, new TimeoutException("the target did not answer ABORT TASK"));
                return;
            }
        }
    }

    /// <summary>Logs out (RFC 7143 §11.14) and closes the connection; outstanding commands fail.</summary>
    public async ValueTask DisposeAsync()
    {
        Connection? c;
        lock (_gate)
        {
            if (_disposing)
            {
                return;
            }

            _disposing = true;
            c = _conn;
        }

        if (c is { Closed: false })
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            c.LogoutDone = done;
            lock (_gate)
            {
                _control.Enqueue(new ControlItem(ControlKind.Logout, null, 0, NextControlTag(), 0, 0, 0, null, 0));
            }

            c.Signal.Set();
            try
            {
                await done.Task.WaitAsync(TimeSpan.FromSeconds(2), _time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }

            ConnectionFailed(c, new ObjectDisposedException(nameof(IscsiSession)));
            try
            {
                await Task.WhenAll(c.Receiver ?? Task.CompletedTask, c.Sender ?? Task.CompletedTask).WaitAsync(TimeSpan.FromSeconds(2), _time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }

        await _lifetime.CancelAsync().ConfigureAwait(false);
        if (_watchdog is not null)
        {
            await _watchdog.ConfigureAwait(false);
        }

        FailOutstanding(new ObjectDisposedException(nameof(IscsiSession)));
        _lifetime.Dispose();
    }
}
