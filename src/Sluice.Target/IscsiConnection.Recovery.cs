using Sluice.Iscsi.Pdu;

namespace Sluice.Target;

/// <summary>
/// ErrorRecoveryLevel 1 (RFC 7143 §7.1.5, §13.20): within-command and within-connection
/// recovery. The target keeps every status PDU it sent until the initiator's ExpStatSN
/// acknowledges it (a Status SNACK can ask for it again) and keeps a completed read's Data-In
/// buffer as long as its status (a Data SNACK can ask for a Data-In again); an R2T SNACK gets
/// the R2T again. Nothing here runs at level 0.
/// </summary>
internal sealed partial class IscsiConnection
{
    private const byte SnackData = 0;
    private const byte SnackStatus = 1;
    private const byte SnackDataAck = 2;
    private const byte SnackRData = 3;

    private readonly Lock _statusLock = new();
    private readonly Queue<SentStatus> _sentStatus = new();
    private readonly Dictionary<uint, ScsiTask> _retained = [];
    private bool _statusClosed;

    /// <summary>A status PDU as sent, kept for a Status SNACK until acknowledged.</summary>
    private sealed class SentStatus
    {
        public required Bhs Header;
        public required byte[] Data;
        public ScsiTask? Task;
    }

    private readonly Stack<ScsiTask> _taskPool = new();
    private bool _taskPoolClosed;

    /// <summary>Largest number of idle tasks a connection keeps (the CmdSN window bounds the busy ones).</summary>
    private const int TaskPoolLimit = 256;

    /// <summary>A task for a new command: a pooled one, or a new one with its request bound to the session.</summary>
    private ScsiTask RentTask(IscsiSession session)
    {
        lock (_tasksLock)
        {
            if (_taskPool.TryPop(out var pooled))
            {
                return pooled;
            }
        }

        return new ScsiTask { Request = new Sluice.Scsi.ScsiRequest { Nexus = session.Nexus! } };
    }

    /// <summary>
    /// Back to the pool once the command's path is over (response sent, buffers released, no
    /// longer in the task table). A task an abort has touched is left to the GC instead.
    /// </summary>
    private void ReturnTask(ScsiTask task)
    {
        lock (_tasksLock)
        {
            if (task.NoReuse || _taskPoolClosed || _taskPool.Count >= TaskPoolLimit || _tasks.TryGetValue(task.Itt, out var current) && ReferenceEquals(current, task))
            {
                return;
            }

            task.Generation++;
            task.Reset();
            _taskPool.Push(task);
        }
    }

    private bool RecoveryEnabled => _params is { ErrorRecoveryLevel: >= 1 };

    /// <summary>Called under the send lock with the StatSN already assigned.</summary>
    private void RecordStatus(in Bhs header, ReadOnlySpan<byte> data, ScsiTask? task)
    {
        lock (_statusLock)
        {
            if (_statusClosed)
            {
                return;
            }

            _sentStatus.Enqueue(new SentStatus { Header = header, Data = data.ToArray(), Task = task });
            if (task is not null)
            {
                task.StatusRecorded = true;
            }
        }
    }

    /// <summary>
    /// The initiator's ExpStatSN acknowledges every status before it (§4.2.2.2): those PDUs
    /// and the Data-In buffers of their commands are no longer needed.
    /// </summary>
    private void AcknowledgeStatus(uint expStatSN)
    {
        while (true)
        {
            SentStatus? done;
            lock (_statusLock)
            {
                if (_sentStatus.Count == 0 || !SerialNumber.LessThan(_sentStatus.Peek().Header.StatSN, expStatSN))
                {
                    return;
                }

                done = _sentStatus.Dequeue();
            }

            if (done.Task is { } task)
            {
                ForgetRetained(task);
                task.ReleaseBuffers();
            }
        }
    }

    /// <summary>
    /// After a retained command's status went out: true when its buffers are now owned by the
    /// status record (released on acknowledgement); false when the caller must release them.
    /// </summary>
    private bool ReleaseRetainedLater(ScsiTask task)
    {
        lock (_statusLock)
        {
            if (task.StatusRecorded)
            {
                return true;
            }
        }

        ForgetRetained(task);
        return false;
    }

    private void ForgetRetained(ScsiTask task)
    {
        lock (_tasksLock)
        {
            if (_retained.TryGetValue(task.Itt, out var current) && ReferenceEquals(current, task))
            {
                _retained.Remove(task.Itt);
            }
        }
    }

    /// <summary>The connection is gone: drop every kept status and buffer.</summary>
    private void ReleaseRecoveryState()
    {
        SentStatus[] all;
        lock (_statusLock)
        {
            _statusClosed = true;
            all = [.. _sentStatus];
            _sentStatus.Clear();
        }

        foreach (var s in all)
        {
            if (s.Task is { } task)
            {
                ForgetRetained(task);
                task.ReleaseBuffers();
            }
        }
    }

    /// <summary>SNACK Request, RFC 7143 §11.16 (ErrorRecoveryLevel ≥ 1 only).</summary>
    private async Task<bool> OnSnackAsync()
    {
        if (!RecoveryEnabled)
        {
            return await RejectAndDiscardAsync(RejectReason.ProtocolError, "SNACK needs ErrorRecoveryLevel > 0").ConfigureAwait(false);
        }

        var h = _transport.Header;
        await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
        byte type = (byte)(h.Flags & 0x0f);
        uint begRun = h.U32(40);
        uint runLength = h.U32(44);
        switch (type)
        {
            case SnackData:
                await OnDataSnackAsync(h, begRun, runLength).ConfigureAwait(false);
                return true;
            case SnackStatus:
                await OnStatusSnackAsync(h, begRun, runLength).ConfigureAwait(false);
                return true;
            case SnackDataAck:
                // We never set the A bit in a Data-In (§11.7.2), so there is nothing to acknowledge.
                await RejectSnackAsync(h, "DataACK without a Data-In that asked for one").ConfigureAwait(false);
                return true;
            case SnackRData:
                // R-Data SNACK follows a MaxRecvDataSegmentLength change (§11.16.3); this target does
                // not renegotiate it in full-feature phase, so there is nothing to resegment.
                await RejectSnackAsync(h, "R-Data SNACK without a MaxRecvDataSegmentLength change").ConfigureAwait(false);
                return true;
            default:
                await RejectSnackAsync(h, "unknown SNACK type").ConfigureAwait(false);
                return true;
        }
    }

    private async Task RejectSnackAsync(Bhs h, string why)
    {
        Log.Rejecting(_logger, Id, "SnackRequest", h.InitiatorTaskTag, RejectReason.SnackReject, why);
        await SendRejectAsync(RejectReason.SnackReject, h, Token).ConfigureAwait(false);
    }

    /// <summary>
    /// Data/R2T SNACK (§11.16.1 type 0): resend the Data-In PDUs (a read) or R2Ts (a write)
    /// numbered BegRun to BegRun+RunLength-1 (RunLength 0: all from BegRun).
    /// </summary>
    private async Task OnDataSnackAsync(Bhs h, uint begRun, uint runLength)
    {
        ScsiTask? task;
        lock (_tasksLock)
        {
            if (!_retained.TryGetValue(h.InitiatorTaskTag, out task))
            {
                _tasks.TryGetValue(h.InitiatorTaskTag, out task);
            }
        }

        if (task is null)
        {
            await RejectSnackAsync(h, "Data/R2T SNACK for a task the target no longer holds").ConfigureAwait(false);
            return;
        }

        if (task.Retained)
        {
            uint count = DataInPduCount(task.DataInSent);
            if (begRun >= count)
            {
                // The status has been sent already: nothing more to do (§7.8).
                await RejectSnackAsync(h, $"Data SNACK for DataSN {begRun} of {count}").ConfigureAwait(false);
                return;
            }

            uint last = runLength == 0 ? count - 1 : (uint)Math.Min(count - 1, (ulong)begRun + runLength - 1);
            Log.Retransmitting(_logger, Id, "DataIn", task.Itt, begRun, last);
            await SendDataInAsync(task, task.DataInSent, begRun, last, default).ConfigureAwait(false);
            return;
        }

        if (task.OutLength == 0 || task.Dispatched || task.Aborted || !task.Delivered || begRun >= task.NextR2TSN)
        {
            await RejectSnackAsync(h, $"R2T SNACK for R2TSN {begRun} that is not outstanding").ConfigureAwait(false);
            if (!task.Dispatched && !task.Aborted && task.Delivered && task.OutLength > 0)
            {
                // §7.8: a rejected SNACK for a command whose status is not yet sent ends it with
                // CHECK CONDITION, iSCSI condition SNACK REJECTED (§11.4.7.2: 0x11/0x13).
                task.Aborted = true;
                Finish(task, completeSlot: !task.Immediate);
                await SendScsiResponseAsync(task, Sluice.Scsi.ScsiStatus.CheckCondition, FixedSense(0x0b, 0x11, 0x13), 0, overflow: false, underflow: false, residual: 0).ConfigureAwait(false);
            }

            return;
        }

        // Every R2T in the run that is still outstanding goes out again, as first sent. The
        // burst restarts: the initiator answers the resent R2T from its first byte.
        uint end = runLength == 0 ? task.NextR2TSN : begRun + runLength;
        foreach (var burst in task.Bursts)
        {
            if (SerialNumber.LessThan(burst.R2TSN, begRun) || !SerialNumber.LessThan(burst.R2TSN, end))
            {
                continue;
            }

            task.Received -= BytesReceivedIn(task, burst);
            burst.NextOffset = burst.Offset;
            burst.NextDataSN = 0;
            Log.Retransmitting(_logger, Id, "R2T", task.Itt, burst.R2TSN, burst.R2TSN);
            await SendR2TAsync(task, burst).ConfigureAwait(false);
        }
    }

    /// <summary>Bytes of the burst placed so far (those lost to a digest error are resent with it).</summary>
    private static int BytesReceivedIn(ScsiTask task, ScsiTask.Burst burst)
    {
        int placed = burst.NextOffset - burst.Offset;
        if (task.Lost is { } lost)
        {
            for (int i = lost.Count - 1; i >= 0; i--)
            {
                var (offset, end) = lost[i];
                if (offset >= burst.Offset && end <= burst.End)
                {
                    placed -= end - offset;
                    lost.RemoveAt(i);
                }
            }
        }

        return placed;
    }

    /// <summary>How many Data-In PDUs <see cref="SendDataInAsync"/> splits a transfer into.</summary>
    private uint DataInPduCount(int dataLength)
    {
        var p = _params!;
        uint count = 0;
        int offset = 0;
        int burstEnd = Math.Min(p.MaxBurstLength, dataLength);
        while (offset < dataLength)
        {
            int length = Math.Min(p.InitiatorMaxRecvDataSegmentLength, burstEnd - offset);
            offset += length;
            count++;
            if (offset == burstEnd)
            {
                burstEnd = Math.Min(burstEnd + p.MaxBurstLength, dataLength);
            }
        }

        return count;
    }

    /// <summary>Status SNACK (§11.16.1 type 1): resend the status PDUs numbered BegRun.. as first sent.</summary>
    private async Task OnStatusSnackAsync(Bhs h, uint begRun, uint runLength)
    {
        List<SentStatus> resend = [];
        lock (_statusLock)
        {
            foreach (var s in _sentStatus)
            {
                uint statSN = s.Header.StatSN;
                bool inRun = !SerialNumber.LessThan(statSN, begRun) && (runLength == 0 || SerialNumber.LessThan(statSN, begRun + runLength));
                if (inRun)
                {
                    resend.Add(s);
                }
            }
        }

        if (resend.Count == 0)
        {
            await RejectSnackAsync(h, $"Status SNACK for StatSN {begRun} (+{runLength}) that is not held").ConfigureAwait(false);
            return;
        }

        foreach (var s in resend)
        {
            Log.Retransmitting(_logger, Id, s.Header.Opcode.ToString(), s.Header.InitiatorTaskTag, s.Header.StatSN, s.Header.StatSN);
            await SendRetransmissionAsync(s.Header, s.Data, Token).ConfigureAwait(false);
        }
    }

    /// <summary>A status PDU again, with its original StatSN and the current window (§11.16).</summary>
    private async Task SendRetransmissionAsync(Bhs h, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _transport.SendAsync(h, data, new WindowStamp(_session!), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Only the current command window; the StatSN stays the original one.</summary>
    private readonly struct WindowStamp(IscsiSession session) : Sluice.Offload.IPduStamp
    {
        public void Stamp(ref Bhs header, ReadOnlySpan<byte> data)
        {
            var (exp, max) = session.Window2();
            header.ExpCmdSN = exp;
            header.MaxCmdSN = max;
        }
    }
}
