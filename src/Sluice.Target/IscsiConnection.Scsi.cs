using System.Diagnostics;
using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Sluice.Iscsi.Pdu;
using Sluice.Offload;
using Sluice.Scsi;

namespace Sluice.Target;

internal sealed partial class IscsiConnection
{
    /// <summary>SCSI Command, RFC 7143 §11.3.</summary>
    private async Task<bool> OnScsiCommandAsync()
    {
        var h = _transport.Header;
        var p = _params!;
        var session = _session!;
        int dsl = h.DataSegmentLength;
        if (session.IsDiscovery)
        {
            // §4.3: a discovery session carries only Text, NOP, Logout.
            return await RejectAndDiscardAsync(RejectReason.ProtocolError, "SCSI command in a discovery session").ConfigureAwait(false);
        }

        if (!h.Immediate && session.Check(h.CmdSN) == CmdSNCheck.OutsideWindow)
        {
            var (exp, max) = session.Window2();
            Log.OutsideWindow(_logger, Id, "ScsiCommand", h.CmdSN, exp, max);
            await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
            return true;
        }

        byte flags = h.Flags;
        bool final = (flags & 0x80) != 0;
        bool read = (flags & 0x40) != 0;
        bool write = (flags & 0x20) != 0;
        uint edtl = h.ExpectedDataTransferLength;

        // Extended CDB and bidirectional read length AHS (§11.2.2).
        byte[] cdb;
        int bidiReadLength = -1;
        var ahs = _transport.Ahs;
        byte[]? extendedCdb = null;
        while (ahs.Length >= 4)
        {
            int ahsLength = BinaryPrimitives.ReadUInt16BigEndian(ahs);
            byte type = ahs[2];
            int total = (3 + ahsLength + 3) & ~3;
            if (total > ahs.Length)
            {
                return await RejectAndDiscardAsync(RejectReason.InvalidPduField, "AHS length").ConfigureAwait(false);
            }

            if (type == 1 && ahsLength >= 1)
            {
                extendedCdb = ahs.Slice(4, ahsLength - 1).ToArray();
            }
            else if (type == 2 && ahsLength == 5)
            {
                bidiReadLength = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32BigEndian(ahs[4..]));
            }

            ahs = ahs[total..];
        }

        // The CDB and sense buffers come from the pool and go back with the task's buffers, so a
        // steady stream of commands allocates no arrays.
        if (extendedCdb is null)
        {
            cdb = ArrayPool<byte>.Shared.Rent(16);
            h.Cdb.CopyTo(cdb);
        }
        else
        {
            cdb = [.. h.Cdb, .. extendedCdb];
        }

        string? problem = null;
        if (dsl > 0 && !write)
        {
            problem = "immediate data without the W bit";
        }
        else if (dsl > 0 && !p.ImmediateData)
        {
            problem = "immediate data when ImmediateData=No";
        }
        else if (dsl > edtl || dsl > p.FirstBurstLength)
        {
            problem = "immediate data beyond EDTL or FirstBurstLength";
        }
        else if (!final && p.InitialR2T)
        {
            problem = "unsolicited Data-Out announced when InitialR2T=Yes";
        }
        else if (!final && !write)
        {
            problem = "F bit clear without the W bit";
        }

        bool duplicate;
        lock (_tasksLock)
        {
            duplicate = _tasks.ContainsKey(h.InitiatorTaskTag);
        }

        if (duplicate)
        {
            problem = "initiator task tag already in use";
        }

        if (problem is not null)
        {
            await RejectAndDiscardAsync(RejectReason.ProtocolError, problem).ConfigureAwait(false);
            if (!h.Immediate)
            {
                // The rejected command still consumes its CmdSN so the window keeps moving.
                await SequenceAsync(h, usesSlot: false, static () => Task.CompletedTask).ConfigureAwait(false);
            }

            return true;
        }

        int limit = _server.Config.Limits.MaxTransferLength;
        int outLength = write ? (int)Math.Min(edtl, int.MaxValue) : 0;
        int inLength = read ? (write ? Math.Max(bidiReadLength, 0) : (int)Math.Min(edtl, int.MaxValue)) : 0;
        bool tooLarge = outLength > limit || inLength > limit;

        // Task and request come from the connection's pool (zero allocation per command).
        var task = RentTask(session);
        var request = task.Request;
        request.Lun = h.Lun;
        request.Cdb = cdb.AsMemory(0, extendedCdb is null ? 16 : cdb.Length);
        request.Attribute = (TaskAttribute)(flags & 0x07);
        request.TaskTag = h.InitiatorTaskTag;
        request.ExpectedDataOutLength = outLength;
        request.ExpectedDataInLength = inLength;
        request.Sense = ArrayPool<byte>.Shared.Rent(252).AsMemory(0, 252);
        task.Itt = h.InitiatorTaskTag;
        task.Arrival = Stopwatch.GetTimestamp();
        task.CmdSN = h.CmdSN;
        task.Immediate = h.Immediate;
        task.OutLength = tooLarge ? 0 : outLength;
        task.InLength = tooLarge ? 0 : inLength;
        task.Header = h;
        task.TooLarge = tooLarge;
        if (!tooLarge)
        {
            if (outLength > 0)
            {
                task.OutBuffer = ArrayPool<byte>.Shared.Rent(outLength);
            }

            if (inLength > 0)
            {
                task.InBuffer = ArrayPool<byte>.Shared.Rent(inLength);
            }
        }

        if (dsl > 0)
        {
            if (tooLarge)
            {
                await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
            }
            else
            {
                try
                {
                    await _transport.ReceiveDataAsync(task.OutBuffer.AsMemory(0, dsl), Token).ConfigureAwait(false);
                }
                catch (DataDigestException)
                {
                    // RFC 7143 §7.8: a command whose immediate data fails its digest is rejected
                    // and counts as not received (its CmdSN is not consumed); nothing executes.
                    // At ErrorRecoveryLevel 1 the initiator plugs the CmdSN gap by retrying the
                    // command (§7.2.1). At level 0 it cannot, so the gap would stall the session's
                    // window for good: the connection ends instead (session recovery, §7.1.5).
                    task.ReleaseBuffers();
                    Log.Rejecting(_logger, Id, "ScsiCommand", h.InitiatorTaskTag, RejectReason.DataDigestError, "immediate data digest error");
                    await SendRejectAsync(RejectReason.DataDigestError, h, Token).ConfigureAwait(false);
                    return p.ErrorRecoveryLevel >= 1;
                }
            }
        }

        task.Received = dsl;
        task.UnsolicitedNextOffset = dsl;
        task.UnsolicitedLimit = Math.Min(p.FirstBurstLength, outLength);
        task.UnsolicitedDone = final;
        task.NextR2TOffset = dsl;
        lock (_tasksLock)
        {
            _tasks[task.Itt] = task;
        }

        if (task.Immediate)
        {
            await DeliverAsync(task).ConfigureAwait(false);
        }
        else
        {
            switch (session.Check(h.CmdSN))
            {
                case CmdSNCheck.InOrder:
                    session.Advance(usesSlot: true);
                    await DeliverAsync(task).ConfigureAwait(false);
                    await DeliverPendingAsync().ConfigureAwait(false);
                    break;
                case CmdSNCheck.Early:
                    QueueEarly(task, h.CmdSN);
                    break;
                default:
                    // Checked on arrival; the window cannot have moved backwards since.
                    Finish(task, completeSlot: false);
                    break;
            }
        }

        return true;
    }

    /// <summary>
    /// Holds a command that arrived ahead of its CmdSN until the gap fills (§4.2.2.1). Kept out
    /// of line so the in-order path allocates no closure.
    /// </summary>
    private void QueueEarly(ScsiTask task, uint cmdSN)
    {
        lock (_tasksLock)
        {
            _pending[cmdSN] = new PendingPdu(() => DeliverAsync(task), UsesSlot: true, task);
        }
    }

    /// <summary>The command's turn in CmdSN order has come: ask for its data or run it.</summary>
    private async Task DeliverAsync(ScsiTask task)
    {
        task.Delivered = true;
        bool abortedEarly;
        lock (_tasksLock)
        {
            abortedEarly = _abortedBeforeArrival.Remove(task.CmdSN) && !task.Immediate;
        }

        if (task.FailureSense is not null)
        {
            // The data phase failed before the command's turn came; it was already removed.
            if (!task.Immediate)
            {
                _session!.Complete();
            }

            await SendScsiResponseAsync(task, ScsiStatus.CheckCondition, task.FailureSense, 0, overflow: false, underflow: false, residual: 0).ConfigureAwait(false);
            return;
        }

        if (abortedEarly || task.Aborted)
        {
            // ABORT TASK arrived before the command (RFC 7143 §11.5.1): it never runs.
            Finish(task, completeSlot: !task.Immediate);
            return;
        }

        if (task.TooLarge)
        {
            if (!task.UnsolicitedDone)
            {
                return; // answered once the unsolicited data has been drained
            }

            await RespondTooLargeAsync(task).ConfigureAwait(false);
            return;
        }

        await ContinueAsync(task).ConfigureAwait(false);
    }

    /// <summary>Either solicits more Data-Out with R2Ts or, with all data present, executes.</summary>
    private async Task ContinueAsync(ScsiTask task)
    {
        if (!task.Delivered || task.Dispatched || task.Aborted)
        {
            return;
        }

        if (task.DigestFailed)
        {
            // §7.8 b: the response waits until every outstanding burst has been received.
            if (task.UnsolicitedDone && task.Bursts.Count == 0)
            {
                await FailDigestAsync(task).ConfigureAwait(false);
            }

            return;
        }

        if (task.DataComplete)
        {
            Dispatch(task);
            return;
        }

        if (!task.UnsolicitedDone)
        {
            return;
        }

        if (task.NextR2TOffset < task.UnsolicitedNextOffset)
        {
            task.NextR2TOffset = task.UnsolicitedNextOffset;
        }

        var p = _params!;
        while (task.Bursts.Count < p.MaxOutstandingR2T)
        {
            int offset;
            int length;
            if (task.Lost is { Count: > 0 } lost)
            {
                // Recovery R2T (RFC 7143 §7.8 a, §11.8): a new R2T, with the next R2TSN and a new
                // TTT, for exactly the range whose Data-Out was discarded.
                var (lostOffset, lostEnd) = lost[0];
                offset = lostOffset;
                length = Math.Min(p.MaxBurstLength, lostEnd - lostOffset);
                if (offset + length == lostEnd)
                {
                    lost.RemoveAt(0);
                }
                else
                {
                    lost[0] = (offset + length, lostEnd);
                }
            }
            else if (task.NextR2TOffset < task.OutLength)
            {
                offset = task.NextR2TOffset;
                length = Math.Min(p.MaxBurstLength, task.OutLength - offset);
                task.NextR2TOffset = offset + length;
            }
            else
            {
                break;
            }

            var burst = new ScsiTask.Burst { Ttt = NextTtt(), Offset = offset, End = offset + length, NextOffset = offset, R2TSN = task.NextR2TSN++ };
            task.Bursts.Add(burst);
            await SendR2TAsync(task, burst).ConfigureAwait(false);
        }
    }

    /// <summary>R2T, RFC 7143 §11.8: StatSN is not advanced.</summary>
    private Task SendR2TAsync(ScsiTask task, ScsiTask.Burst burst)
    {
        var r = default(Bhs);
        r.Opcode = Opcode.ReadyToTransfer;
        r.Flags = 0x80;
        r.Lun = task.Header.Lun;
        r.InitiatorTaskTag = task.Itt;
        r.TargetTransferTag = burst.Ttt;
        r.DataSN = burst.R2TSN;
        r.BufferOffset = (uint)burst.Offset;
        r.ResidualCount = (uint)(burst.End - burst.Offset);
        return SendStatusPduAsync(r, ReadOnlyMemory<byte>.Empty, advanceStatSN: false, Token);
    }

    /// <summary>SCSI Data-Out, RFC 7143 §11.7: placed straight into the command's buffer.</summary>
    private async Task<bool> OnDataOutAsync()
    {
        var h = _transport.Header;
        int dsl = h.DataSegmentLength;
        ScsiTask? task;
        lock (_tasksLock)
        {
            _tasks.TryGetValue(h.InitiatorTaskTag, out task);
        }

        if (task is null || task.Aborted || task.Dispatched)
        {
            Log.UnknownDataOut(_logger, Id, h.InitiatorTaskTag);
            await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
            return true;
        }

        int offset = (int)Math.Min(h.BufferOffset, int.MaxValue);
        bool final = h.Final;
        if (h.TargetTransferTag == ReservedTag)
        {
            // Unsolicited data (§4.2.5.2) up to FirstBurstLength, in order.
            if (task.UnsolicitedDone || h.DataSN != task.UnsolicitedDataSN || offset != task.UnsolicitedNextOffset || offset + dsl > task.UnsolicitedLimit)
            {
                if (task.TooLarge)
                {
                    await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
                    if (final)
                    {
                        task.UnsolicitedDone = true;
                        if (task.Delivered)
                        {
                            await RespondTooLargeAsync(task).ConfigureAwait(false);
                        }
                    }

                    return true;
                }

                await FailSequenceAsync(task, $"unsolicited Data-Out out of sequence (DataSN {h.DataSN}, offset {offset}, length {dsl})", h.DataSN != task.UnsolicitedDataSN).ConfigureAwait(false);
                return true;
            }

            task.UnsolicitedDataSN++;
            task.UnsolicitedNextOffset = offset + dsl;
            if (final)
            {
                task.UnsolicitedDone = true;
            }

            await ReceiveDataOutAsync(task, offset, dsl).ConfigureAwait(false);
        }
        else
        {
            ScsiTask.Burst? burst = null;
            foreach (var b in task.Bursts)
            {
                if (b.Ttt == h.TargetTransferTag)
                {
                    burst = b;
                    break;
                }
            }

            // DataPDUInOrder=Yes and DataSequenceInOrder=Yes (§13.19, §13.20): each burst arrives
            // in order with DataSN counting from 0; anything else is a sequence error, which at
            // ErrorRecoveryLevel 0 costs the connection (§7.1.4).
            if (burst is null || h.DataSN != burst.NextDataSN || offset != burst.NextOffset || offset + dsl > burst.End || (final && offset + dsl != burst.End))
            {
                await FailSequenceAsync(task, $"solicited Data-Out out of sequence (ttt 0x{h.TargetTransferTag:x8}, DataSN {h.DataSN}, offset {offset}, length {dsl})", burst is not null && h.DataSN != burst.NextDataSN).ConfigureAwait(false);
                return true;
            }

            // The burst's sequence advances even when the payload is lost to a digest error:
            // the initiator goes on with the next PDU, and the lost range is asked for again.
            burst.NextDataSN++;
            burst.NextOffset += dsl;
            if (burst.NextOffset == burst.End)
            {
                task.Bursts.Remove(burst);
            }

            await ReceiveDataOutAsync(task, offset, dsl).ConfigureAwait(false);
        }

        await ContinueAsync(task).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// A Data-Out broke DataSN or offset order. At ErrorRecoveryLevel 0 there is no recovery
    /// R2T (RFC 7143 §7.1.4.1), so the command ends with CHECK CONDITION, ABORTED COMMAND and
    /// DATA PHASE ERROR / DATA OFFSET ERROR (SPC-4 D.2): no partial data reaches the device, and
    /// the connection and its other commands go on. Later Data-Out for the task is discarded.
    /// </summary>
    private async Task FailSequenceAsync(ScsiTask task, string why, bool dataSNError)
    {
        Log.Rejecting(_logger, Id, "DataOut", task.Itt, RejectReason.ProtocolError, why);
        await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
        task.Aborted = true;
        byte[] sense = FixedSense(0x0b, 0x4b, dataSNError ? (byte)0x00 : (byte)0x05);
        Finish(task, completeSlot: !task.Immediate);
        if (task.Delivered)
        {
            await SendScsiResponseAsync(task, ScsiStatus.CheckCondition, sense, 0, overflow: false, underflow: false, residual: 0).ConfigureAwait(false);
        }
        else
        {
            task.FailureSense = sense;
        }
    }

    /// <summary>
    /// Places a Data-Out payload into the command's buffer. A data digest error means those
    /// bytes are garbage (RFC 7143 §7.8): the PDU is rejected with reason "Data (payload) digest
    /// error" and its range counts as not received. At ErrorRecoveryLevel 1 the range is asked
    /// for again with a recovery R2T, which overwrites it before the command may run; at level 0
    /// the command will end with ABORTED COMMAND / PROTOCOL SERVICE CRC ERROR once its data is
    /// in. Either way no corrupted byte reaches the back end.
    /// </summary>
    private async Task ReceiveDataOutAsync(ScsiTask task, int offset, int length)
    {
        if (task.DigestFailed)
        {
            await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
            return;
        }

        try
        {
            await _transport.ReceiveDataAsync(task.OutBuffer.AsMemory(offset, length), Token).ConfigureAwait(false);
            task.Received += length;
        }
        catch (DataDigestException)
        {
            var h = _transport.Header;
            Log.Rejecting(_logger, Id, "DataOut", task.Itt, RejectReason.DataDigestError, "data digest error");
            await SendRejectAsync(RejectReason.DataDigestError, h, Token).ConfigureAwait(false);
            if (_params!.ErrorRecoveryLevel >= 1)
            {
                (task.Lost ??= []).Add((offset, offset + length));
            }
            else
            {
                task.DigestFailed = true;
            }
        }
    }

    /// <summary>ErrorRecoveryLevel 0 end of a command whose Data-Out failed its digest (§7.8 b, §11.4.7.2).</summary>
    private async Task FailDigestAsync(ScsiTask task)
    {
        task.Aborted = true;
        byte[] sense = FixedSense(0x0b, 0x47, 0x05);
        Finish(task, completeSlot: !task.Immediate);
        await SendScsiResponseAsync(task, ScsiStatus.CheckCondition, sense, 0, overflow: false, underflow: false, residual: 0).ConfigureAwait(false);
    }

    /// <summary>Fixed-format sense data (SPC-4 4.5.3) for the few errors the transport itself reports.</summary>
    private static byte[] FixedSense(byte senseKey, byte asc, byte ascq)
    {
        byte[] sense = new byte[18];
        sense[0] = 0x70;
        sense[2] = senseKey;
        sense[7] = 10;
        sense[12] = asc;
        sense[13] = ascq;
        return sense;
    }

    private async Task RespondTooLargeAsync(ScsiTask task)
    {
        // The transfer exceeds what one command may move: ILLEGAL REQUEST, INVALID FIELD IN CDB
        // (SPC-4 4.5.2.1 fixed format sense).
        byte[] sense = FixedSense(0x05, 0x24, 0);
        Finish(task, completeSlot: !task.Immediate);
        await SendScsiResponseAsync(task, ScsiStatus.CheckCondition, sense, 0, overflow: false, underflow: false, residual: 0).ConfigureAwait(false);
    }

    private void Dispatch(ScsiTask task)
    {
        task.Dispatched = true;
        BackendStarted();
        _ = ExecuteAsync(task);
    }

    private async Task ExecuteAsync(ScsiTask task)
    {
        var target = _session!.Target!;
        var request = task.Request;
        request.DataOut = task.OutBuffer is null ? ReadOnlyMemory<byte>.Empty : task.OutBuffer.AsMemory(0, task.Received);
        request.DataIn = task.InBuffer is null ? Memory<byte>.Empty : task.InBuffer.AsMemory(0, task.InLength);
        try
        {
            ScsiResponse response;
            try
            {
                // A scheduled LUN's device operations wait for the function's turn; the session's
                // CmdSN window already bounds how many commands one session can queue here.
                response = await target.ExecuteAsync(request, task.Arrival, task.Cancellation.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Finish(task, completeSlot: !task.Immediate);
                return;
            }
            finally
            {
                BackendDone();
            }

            if (task.Aborted)
            {
                Finish(task, completeSlot: !task.Immediate);
                return;
            }

            await SendResultAsync(task, response).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or System.Net.Sockets.SocketException or IOException or ObjectDisposedException)
        {
        }
        catch (Exception ex)
        {
            Log.Unexpected(_logger, Id, ex);
            Close();
        }
        finally
        {
            // A retained task (ErrorRecoveryLevel 1) keeps its Data-In buffer until the
            // initiator acknowledges its status; if the status never went out, release now.
            if (!task.Retained || !ReleaseRetainedLater(task))
            {
                task.ReleaseBuffers();
                if (task.Completed)
                {
                    ReturnTask(task);
                }
            }
        }
    }

    /// <summary>Removes a task from the connection and, for a CmdSN-ordered command, reopens its window slot.</summary>
    private void Finish(ScsiTask task, bool completeSlot)
    {
        bool removed;
        lock (_tasksLock)
        {
            removed = _tasks.Remove(task.Itt, out var current) && ReferenceEquals(current, task);
            if (!removed && current is not null)
            {
                _tasks[task.Itt] = current;
            }
        }

        if (removed && completeSlot && task.Delivered)
        {
            _session!.Complete();
        }

        if (!task.Dispatched)
        {
            task.ReleaseBuffers();
        }
    }

    /// <summary>
    /// Data-In PDUs with the status folded into the last one when the command succeeded
    /// (§11.7.4 S bit), or Data-In then a SCSI Response carrying the sense data. Residuals
    /// compare what the CDB asked for with the initiator's expected length (§11.4.5).
    /// </summary>
    private async Task SendResultAsync(ScsiTask task, ScsiResponse response)
    {
        var p = _params!;
        long wanted;
        int expected;
        bool isRead = task.InLength > 0 || (task.Header.Flags & 0x40) != 0;
        if ((task.Header.Flags & 0x20) != 0 && !isRead)
        {
            expected = task.OutLength;
            wanted = response.TransferLength >= 0 ? response.TransferLength : expected;
        }
        else
        {
            expected = task.InLength;
            wanted = response.TransferLength >= 0 ? response.TransferLength : response.DataInLength;
            if ((task.Header.Flags & 0x60) == 0)
            {
                expected = 0;
            }
        }

        bool overflow = wanted > expected;
        bool underflow = wanted < expected;
        uint residual = (uint)Math.Min(uint.MaxValue, Math.Abs(wanted - expected));
        int dataLength = Math.Min(response.DataInLength, task.InLength);
        bool good = response.Status == ScsiStatus.Good && response.SenseLength == 0;
        Finish(task, completeSlot: !task.Immediate);

        // ErrorRecoveryLevel 1: the Data-In stays answerable by a Data SNACK until the status is
        // acknowledged (RFC 7143 §11.16), so the status goes in its own SCSI Response PDU that the
        // acknowledgement names, and the buffer is kept (released by AcknowledgeStatus).
        bool retain = p.ErrorRecoveryLevel >= 1 && dataLength > 0;
        task.DataInSent = dataLength;
        if (retain)
        {
            task.Retained = true;
            lock (_tasksLock)
            {
                _retained[task.Itt] = task;
            }
        }

        bool collapse = good && !retain && dataLength > 0;
        var status = new DataInStatus(collapse, response.Status, overflow, underflow, residual);
        uint dataSN = await SendDataInAsync(task, dataLength, 0, uint.MaxValue, status).ConfigureAwait(false);
        if (collapse)
        {
            task.Completed = true;
            return;
        }

        byte[] senseCopy = response.SenseLength > 0 ? task.Request.Sense[..response.SenseLength].ToArray() : [];
        await SendScsiResponseAsync(task, response.Status, senseCopy, dataSN, overflow, underflow, residual).ConfigureAwait(false);
        task.Completed = true;
    }

    /// <summary>Status folded into the last Data-In PDU (§11.7.4 S bit), when it is.</summary>
    private readonly record struct DataInStatus(bool OnLast, byte Status, bool Overflow, bool Underflow, uint Residual);

    /// <summary>
    /// Sends the Data-In PDUs of <paramref name="dataLength"/> bytes of the task's buffer whose
    /// DataSN is in [<paramref name="firstSN"/>, <paramref name="lastSN"/>]: segments of at most
    /// the initiator's MaxRecvDataSegmentLength, F bit at the end of each MaxBurstLength sequence.
    /// The split is a pure function of the length and the session's parameters, so a Data SNACK
    /// gets back exactly the PDUs first sent. Returns the number of Data-In PDUs of the whole transfer.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<uint> SendDataInAsync(ScsiTask task, int dataLength, uint firstSN, uint lastSN, DataInStatus status)
    {
        var p = _params!;
        uint dataSN = 0;
        int offset = 0;
        int maxSegment = p.InitiatorMaxRecvDataSegmentLength;
        int burstEnd = Math.Min(p.MaxBurstLength, dataLength);
        while (offset < dataLength)
        {
            int length = Math.Min(maxSegment, burstEnd - offset);
            bool last = offset + length == dataLength;
            bool endOfSequence = offset + length == burstEnd;
            if (dataSN >= firstSN && dataSN <= lastSN)
            {
                var h = default(Bhs);
                h.Opcode = Opcode.DataIn;
                byte flags = 0;
                if (endOfSequence)
                {
                    flags |= 0x80;
                }

                bool withStatus = last && status.OnLast;
                if (withStatus)
                {
                    flags |= 0x01;
                    if (status.Overflow)
                    {
                        flags |= 0x04;
                    }
                    else if (status.Underflow)
                    {
                        flags |= 0x02;
                    }

                    h.SetByte(3, status.Status);
                    h.ResidualCount = status.Overflow || status.Underflow ? status.Residual : 0;
                }

                h.Flags = flags;
                h.Lun = task.Header.Lun;
                h.InitiatorTaskTag = task.Itt;
                h.TargetTransferTag = ReservedTag;
                h.DataSN = dataSN;
                h.BufferOffset = (uint)offset;
                await SendStatusPduAsync(h, task.InBuffer.AsMemory(offset, length), advanceStatSN: withStatus, Token).ConfigureAwait(false);
            }

            dataSN++;
            offset += length;
            if (endOfSequence)
            {
                burstEnd = Math.Min(burstEnd + p.MaxBurstLength, dataLength);
            }
        }

        return dataSN;
    }

    /// <summary>SCSI Response, RFC 7143 §11.4; sense data is preceded by its 2-byte length (§11.4.7).</summary>
    private Task SendScsiResponseAsync(ScsiTask task, byte status, byte[] sense, uint expDataSN, bool overflow, bool underflow, uint residual)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.ScsiResponse;
        byte flags = 0x80;
        if (overflow)
        {
            flags |= 0x04;
        }
        else if (underflow)
        {
            flags |= 0x02;
        }

        h.Flags = flags;
        h.SetByte(2, 0); // command completed at target
        h.SetByte(3, status);
        h.InitiatorTaskTag = task.Itt;
        h.DataSN = expDataSN;
        h.ResidualCount = overflow || underflow ? residual : 0;
        byte[] data = [];
        if (sense.Length > 0)
        {
            data = new byte[2 + sense.Length];
            BinaryPrimitives.WriteUInt16BigEndian(data, (ushort)sense.Length);
            sense.CopyTo(data, 2);
        }

        return SendStatusPduAsync(h, data, advanceStatSN: true, Token, task.Retained ? task : null);
    }
}
