using System.Buffers.Binary;
using System.Text;
using Sluice.Iscsi.Pdu;
using Sluice.Iscsi.Text;
using Sluice.Offload;

namespace Sluice.Target;

internal sealed partial class IscsiConnection
{
    // ------------------------------------------------------------------ task management

    /// <summary>Task Management Function Request, RFC 7143 §11.5.</summary>
    private async Task<bool> OnTaskManagementAsync()
    {
        var h = _transport.Header;
        await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
        if (_session!.IsDiscovery)
        {
            await SendRejectAsync(RejectReason.ProtocolError, h, Token).ConfigureAwait(false);
            return true;
        }

        if (h.Immediate)
        {
            await RunTaskManagementAsync(h).ConfigureAwait(false);
        }
        else
        {
            await SequenceAsync(h, usesSlot: false, () => RunTaskManagementAsync(h)).ConfigureAwait(false);
        }

        return true;
    }

    private async Task RunTaskManagementAsync(Bhs h)
    {
        byte function = (byte)(h.Flags & 0x7f);
        var device = _session!.Target!.Device;
        ulong lun = h.Lun;
        uint rtt = h.TargetTransferTag; // Referenced Task Tag shares bytes 20-23
        uint refCmdSN = h.U32(32);
        byte response;
        bool dropAll = false;
        switch (function)
        {
            case TmfFunction.AbortTask:
                response = AbortTask(rtt, refCmdSN, lun);
                break;
            case TmfFunction.AbortTaskSet:
                AbortWhere(t => t.Request.Lun == lun);
                response = TmfResponse.FunctionComplete;
                break;
            case TmfFunction.ClearTaskSet:
                _server.AbortTasks(_session.Target, lun);
                device.ClearTaskSet(lun, _session.Nexus!);
                response = TmfResponse.FunctionComplete;
                break;
            case TmfFunction.LogicalUnitReset:
                if (!device.Luns.Contains(DecodeLun(lun)))
                {
                    response = TmfResponse.LunDoesNotExist;
                    break;
                }

                _server.AbortTasks(_session.Target, lun);
                device.ResetLogicalUnit(lun);
                response = TmfResponse.FunctionComplete;
                break;
            case TmfFunction.TargetWarmReset:
                _server.AbortTasks(_session.Target, null);
                device.ResetTarget(cold: false);
                response = TmfResponse.FunctionComplete;
                break;
            case TmfFunction.TargetColdReset:
                // SAM-5 5.7: a cold reset is a power cycle; RFC 7143 §11.5.1 the target drops
                // every connection after answering.
                _server.AbortTasks(_session.Target, null);
                device.ResetTarget(cold: true);
                response = TmfResponse.FunctionComplete;
                dropAll = true;
                break;
            case TmfFunction.ClearAca:
                response = TmfResponse.FunctionNotSupported;
                break;
            case TmfFunction.TaskReassign:
                // Only meaningful at ErrorRecoveryLevel 2 (§11.5.1).
                response = TmfResponse.TaskAllegianceReassignmentNotSupported;
                break;
            default:
                response = TmfResponse.FunctionRejected;
                break;
        }

        Log.TaskManagement(_logger, Id, function, lun, rtt, response);
        var r = default(Bhs);
        r.Opcode = Opcode.TaskManagementResponse;
        r.Flags = 0x80;
        r.SetByte(2, response);
        r.InitiatorTaskTag = h.InitiatorTaskTag;
        await SendStatusPduAsync(r, ReadOnlyMemory<byte>.Empty, advanceStatSN: true, Token).ConfigureAwait(false);
        if (dropAll)
        {
            _server.DropSessionsOf(_session.Target);
        }
    }

    internal static ulong DecodeLun(ulong lun)
    {
        // SAM-5 4.7.3: single-level peripheral (00b) or flat (01b) addressing in the first two bytes.
        ulong first = lun >> 48;
        return (first >> 14) switch
        {
            0 => (first >> 8) == 0 ? first & 0xff : first & 0x3fff,
            1 => first & 0x3fff,
            _ => ulong.MaxValue,
        };
    }

    private byte AbortTask(uint rtt, uint refCmdSN, ulong lun)
    {
        ScsiTask? task;
        lock (_tasksLock)
        {
            _tasks.TryGetValue(rtt, out task);
            if (task is null)
            {
                foreach (var p in _pending.Values)
                {
                    if (p.Task?.Itt == rtt)
                    {
                        task = p.Task;
                        break;
                    }
                }
            }

            if (task is not null)
            {
                task.NoReuse = true; // found live under the lock: it can no longer be pooled and reused
            }
        }

        if (task is not null)
        {
            if (task.Request.Lun != lun)
            {
                return TmfResponse.TaskDoesNotExist;
            }

            Abort(task);
            return TmfResponse.FunctionComplete;
        }

        // §11.5.1: a referenced command not yet received but inside the window counts as
        // received and aborted; otherwise the task does not exist (it already completed).
        var (exp, max) = _session!.Window2();
        if (SerialNumber.InWindow(refCmdSN, exp, max))
        {
            lock (_tasksLock)
            {
                _abortedBeforeArrival.Add(refCmdSN);
            }

            return TmfResponse.FunctionComplete;
        }

        return TmfResponse.TaskDoesNotExist;
    }

    /// <summary>Aborts this connection's tasks matching <paramref name="match"/>; no responses are sent for them.</summary>
    internal void AbortWhere(Func<ScsiTask, bool> match)
    {
        List<ScsiTask> victims = [];
        lock (_tasksLock)
        {
            foreach (var t in _tasks.Values)
            {
                if (match(t))
                {
                    victims.Add(t);
                }
            }

            foreach (var p in _pending.Values)
            {
                if (p.Task is not null && match(p.Task) && !victims.Contains(p.Task))
                {
                    victims.Add(p.Task);
                }
            }

            foreach (var t in victims)
            {
                t.NoReuse = true;
            }
        }

        foreach (var t in victims)
        {
            Abort(t);
        }
    }

    private void Abort(ScsiTask task)
    {
        // The caller marked the task NoReuse under the task lock while it was still live, so
        // it cannot have been pooled and handed to another command since.
        task.Aborted = true;
        try
        {
            task.Cancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        if (task.Delivered && !task.Dispatched)
        {
            Finish(task, completeSlot: !task.Immediate);
        }
    }

    // ------------------------------------------------------------------ text

    /// <summary>Text Request, RFC 7143 §11.10; SendTargets per §13.6 and Appendix C.</summary>
    private async Task<bool> OnTextRequestAsync()
    {
        var h = _transport.Header;
        int dsl = h.DataSegmentLength;
        byte[] data = dsl == 0 ? [] : new byte[dsl];
        await _transport.ReceiveDataAsync(data, Token).ConfigureAwait(false);
        if (h.Immediate)
        {
            await RunTextAsync(h, data).ConfigureAwait(false);
        }
        else
        {
            await SequenceAsync(h, usesSlot: false, () => RunTextAsync(h, data)).ConfigureAwait(false);
        }

        return true;
    }

    private async Task RunTextAsync(Bhs h, byte[] data)
    {
        bool cont = (h.Flags & 0x40) != 0;
        int maxSegment = _params!.InitiatorMaxRecvDataSegmentLength;

        // Continuation of a long response: the initiator pulls the next part with our TTT.
        if (h.TargetTransferTag != ReservedTag)
        {
            if (_textResponse is null || h.TargetTransferTag != _textResponseTtt)
            {
                await SendRejectAsync(RejectReason.InvalidPduField, h, Token).ConfigureAwait(false);
                return;
            }

            await SendTextChunkAsync(h, maxSegment).ConfigureAwait(false);
            return;
        }

        // Accumulate a request that spans PDUs (C bit, §6.1.2).
        const int maxText = 64 * 1024;
        _textBuffer ??= new byte[maxText];
        if (_textLength + data.Length > maxText)
        {
            _textLength = 0;
            await SendRejectAsync(RejectReason.ProtocolError, h, Token).ConfigureAwait(false);
            return;
        }

        data.CopyTo(_textBuffer, _textLength);
        _textLength += data.Length;
        if (cont)
        {
            var partial = default(Bhs);
            partial.Opcode = Opcode.TextResponse;
            partial.InitiatorTaskTag = h.InitiatorTaskTag;
            partial.TargetTransferTag = NextTtt();
            await SendStatusPduAsync(partial, ReadOnlyMemory<byte>.Empty, advanceStatSN: true, Token).ConfigureAwait(false);
            return;
        }

        bool parsed = TextCodec.TryParse(_textBuffer.AsSpan(0, _textLength), allowDuplicateKeys: false, out var keys, out _);
        _textLength = 0;
        if (!parsed)
        {
            // §6.1: malformed key=value text is a protocol error for the whole request.
            await SendRejectAsync(RejectReason.ProtocolError, h, Token).ConfigureAwait(false);
            return;
        }

        var response = new StringBuilder();
        foreach (var (key, value) in keys)
        {
            if (key == "SendTargets")
            {
                _server.AppendSendTargets(response, _session!, value, _transport.Socket.LocalEndPoint, _tpgt);
            }
            else if (key.StartsWith("X-", StringComparison.Ordinal) || key.StartsWith("X#", StringComparison.Ordinal))
            {
                response.Append(key).Append("=NotUnderstood\0");
            }
            else
            {
                // Renegotiation in full-feature phase is not offered (§6.2): refuse the key.
                response.Append(key).Append("=Reject\0");
            }
        }

        _textResponse = Encoding.UTF8.GetBytes(response.ToString());
        _textResponseOffset = 0;
        await SendTextChunkAsync(h, maxSegment).ConfigureAwait(false);
    }

    private async Task SendTextChunkAsync(Bhs request, int maxSegment)
    {
        var text = _textResponse!;
        int length = Math.Min(maxSegment, text.Length - _textResponseOffset);
        bool more = _textResponseOffset + length < text.Length;
        var r = default(Bhs);
        r.Opcode = Opcode.TextResponse;
        r.Flags = (byte)(more ? 0x40 : 0x80);
        r.InitiatorTaskTag = request.InitiatorTaskTag;
        r.TargetTransferTag = more ? (_textResponseTtt = NextTtt()) : ReservedTag;
        var chunk = text.AsMemory(_textResponseOffset, length);
        _textResponseOffset += length;
        if (!more)
        {
            _textResponse = null;
            _textResponseTtt = ReservedTag;
        }

        await SendStatusPduAsync(r, chunk, advanceStatSN: true, Token).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ logout

    /// <summary>Logout Request, RFC 7143 §11.14; the response is §11.15.</summary>
    private async Task<bool> OnLogoutAsync()
    {
        var h = _transport.Header;
        await _transport.DiscardDataAsync(Token).ConfigureAwait(false);
        int reason = h.Flags & 0x7f;
        Log.Logout(_logger, Id, reason);
        if (!h.Immediate && _session!.Check(h.CmdSN) == CmdSNCheck.OutsideWindow)
        {
            return true;
        }

        if (!h.Immediate)
        {
            _session!.Advance(usesSlot: false);
        }

        byte response = reason switch
        {
            0 => 0,
            1 => h.U16(20) == Cid ? (byte)0 : (byte)1,
            2 => 2, // connection recovery needs ErrorRecoveryLevel 2
            _ => 3,
        };

        // Let commands already running finish before the answer (§11.14: the logout is
        // processed after earlier commands).
        await WaitForTasksAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        var r = default(Bhs);
        r.Opcode = Opcode.LogoutResponse;
        r.Flags = 0x80;
        r.SetByte(2, response);
        r.InitiatorTaskTag = h.InitiatorTaskTag;
        r.SetU16(40, (ushort)_params!.DefaultTime2Wait);
        r.SetU16(42, (ushort)_params.DefaultTime2Retain);
        await SendStatusPduAsync(r, ReadOnlyMemory<byte>.Empty, advanceStatSN: true, Token).ConfigureAwait(false);
        return response != 0;
    }

    private async Task WaitForTasksAsync(TimeSpan limit)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (Environment.TickCount64 < deadline)
        {
            lock (_tasksLock)
            {
                if (_tasks.Count == 0)
                {
                    return;
                }
            }

            await Task.Delay(5, Token).ConfigureAwait(false);
        }
    }

    /// <summary>Async Message asking the initiator to log out (§11.9.1 event 1), used at shutdown.</summary>
    public async Task RequestLogoutAsync(int seconds)
    {
        if (_session is null)
        {
            return;
        }

        var h = default(Bhs);
        h.Opcode = Opcode.AsyncMessage;
        h.Flags = 0x80;
        h.InitiatorTaskTag = ReservedTag;
        h.SetByte(36, AsyncEvent.LogoutRequested);
        h.SetU16(42, (ushort)seconds);
        try
        {
            await SendStatusPduAsync(h, ReadOnlyMemory<byte>.Empty, advanceStatSN: true, Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or System.Net.Sockets.SocketException or IOException or ObjectDisposedException)
        {
        }
    }

    public bool HasTasks
    {
        get
        {
            lock (_tasksLock)
            {
                return _tasks.Count > 0;
            }
        }
    }

}
