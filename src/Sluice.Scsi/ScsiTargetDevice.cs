using System.Collections.Frozen;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Sluice.Scsi;

/// <summary>
/// A SCSI target device (SAM-5 4.6): its logical units and the device server that runs
/// commands for them. The iSCSI transport hands every SCSI Command PDU to
/// <see cref="ExecuteAsync"/> and task management functions to the reset/clear methods.
/// </summary>
public sealed class ScsiTargetDevice
{
    private readonly FrozenDictionary<ulong, LogicalUnit> units;
    private readonly LogicalUnit[] ordered;

    public ScsiTargetDevice(string targetName, IEnumerable<LogicalUnit> units, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(targetName);
        ArgumentNullException.ThrowIfNull(units);
        TargetName = targetName;
        Logger = logger ?? NullLogger.Instance;
        var map = new Dictionary<ulong, LogicalUnit>();
        foreach (var lu in units)
        {
            if (!map.TryAdd(lu.Lun, lu))
            {
                throw new ArgumentException($"LUN {lu.Lun} is configured twice.", nameof(units));
            }
        }
        this.units = map.ToFrozenDictionary();
        ordered = [.. map.Values.OrderBy(static u => u.Lun)];
        var luns = new ulong[ordered.Length];
        for (int i = 0; i < luns.Length; i++)
        {
            luns[i] = ordered[i].Lun;
        }
        Luns = luns;
    }

    public string TargetName { get; }

    // Target ports (relative target port identifier -> target port group) that REPORT TARGET
    // PORT GROUPS lists: those the transport declared and those commands arrived through.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ushort, ushort> targetPorts = new();

    /// <summary>
    /// Declares a target port (an iSCSI portal group: relative target port identifier and
    /// target port group) so REPORT TARGET PORT GROUPS lists it before any login through it.
    /// Ports that carry commands are learned from their I_T nexus anyway.
    /// </summary>
    public void AddTargetPort(ushort relativeTargetPortId, ushort targetPortGroup) =>
        targetPorts[relativeTargetPortId] = targetPortGroup;

    /// <summary>The target port groups, in group order, each with its ports in order.</summary>
    internal List<(ushort Group, List<ushort> Ports)> TargetPortGroups(ITNexus current)
    {
        targetPorts.TryAdd(current.RelativeTargetPortId, current.TargetPortGroup);
        var groups = new SortedDictionary<ushort, List<ushort>>();
        foreach (var (port, group) in targetPorts)
        {
            if (!groups.TryGetValue(group, out var list))
            {
                groups[group] = list = [];
            }
            list.Add(port);
        }
        var result = new List<(ushort, List<ushort>)>(groups.Count);
        foreach (var (group, ports) in groups)
        {
            ports.Sort();
            result.Add((group, ports));
        }
        return result;
    }

    public IReadOnlyList<ulong> Luns { get; }

    internal ILogger Logger { get; }

    internal IReadOnlyList<LogicalUnit> Units => ordered;

    /// <summary>
    /// Runs one command. SCSI errors come back as CHECK CONDITION with sense data in
    /// <see cref="ScsiRequest.Sense"/>; only cancellation (the task was aborted) throws.
    /// </summary>
    public ValueTask<ScsiResponse> ExecuteAsync(ScsiRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        var cdb = request.Cdb.Span;
        LogicalUnit? lu = FindUnit(request.Lun);
        if (cdb.Length == 0)
        {
            return Responses.Done(Responses.Check(request, lu, SenseKey.IllegalRequest, Asc.InvalidCommandOperationCode));
        }
        var descriptor = CommandTable.Lookup(cdb);

        if (lu is null)
        {
            // SPC-4 6.6.2 / SAM-5 5.9.? : INQUIRY, REPORT LUNS and REQUEST SENSE answer for an
            // incorrect LUN; anything else is LOGICAL UNIT NOT SUPPORTED.
            if (descriptor is null || (descriptor.Flags & CommandFlags.AnyLun) == 0)
            {
                return Responses.Done(Responses.Check(request, null, SenseKey.IllegalRequest, Asc.LogicalUnitNotSupported));
            }
            return Dispatch(descriptor, null, null, request, cancellationToken);
        }

        if (descriptor is not null && !descriptor.IsAvailable(lu))
        {
            descriptor = null; // not offered by this LU, so not advertised by RSOC either
        }

        if (!targetPorts.ContainsKey(request.Nexus.RelativeTargetPortId))
        {
            targetPorts.TryAdd(request.Nexus.RelativeTargetPortId, request.Nexus.TargetPortGroup);
        }
        var nexus = lu.GetNexus(request.Nexus);
        // SAM-5 5.14 / SPC-4 5.14: a pending unit attention terminates any command except
        // INQUIRY, REPORT LUNS and REQUEST SENSE, and is cleared by being reported.
        if (nexus.HasUnitAttention
            && (descriptor is null || (descriptor.Flags & CommandFlags.IgnoresUnitAttention) == 0)
            && nexus.TryTake(out ushort ua))
        {
            return Responses.Done(Responses.Check(request, lu, SenseKey.UnitAttention, ua));
        }

        if (descriptor is null)
        {
            // SPC-4 4.5.? : an unsupported service action of a supported opcode is INVALID
            // FIELD IN CDB pointing at the SERVICE ACTION field; anything else is an invalid opcode.
            return Responses.Done(CommandTable.HasServiceActions(cdb[0])
                ? Responses.InvalidFieldInCdb(request, lu, 1, 4)
                : Responses.Check(request, lu, SenseKey.IllegalRequest, Asc.InvalidCommandOperationCode));
        }

        if (cdb.Length < descriptor.CdbLength)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, lu, cdb.Length - 1));
        }

        if (lu.BackgroundOperation is ushort busy and not 0 && (descriptor.Flags & CommandFlags.AnyLun) == 0)
        {
            // SBC-3 4.11: while a sanitize runs only INQUIRY, REPORT LUNS and REQUEST SENSE
            // (the AnyLun commands) are processed.
            return Responses.Done(Responses.Check(request, lu, SenseKey.NotReady, busy));
        }
        if (lu.SanitizeFailed && (descriptor.Flags & CommandFlags.NeedsMedium) != 0 && descriptor.Opcode != SanitizeCommands.Opcode)
        {
            return Responses.Done(Responses.Check(request, lu, SenseKey.MediumError, Asc.SanitizeCommandFailed));
        }

        if (lu.Reservations.Active && lu.Reservations.Conflicts(descriptor, request.Nexus, cdb))
        {
            // SPC-4 5.12.1: RESERVATION CONFLICT status, no sense data.
            return Responses.Done(new ScsiResponse(ScsiStatus.ReservationConflict, 0, 0, -1));
        }

        return Dispatch(descriptor, lu, nexus, request, cancellationToken);
    }

    /// <summary>
    /// Raised by PERSISTENT RESERVE OUT / PREEMPT AND ABORT (SPC-4 5.12.11.4.5) for each
    /// preempted I_T nexus: the transport must abort every task of that nexus on that LUN (as
    /// for ABORT TASK SET, without further unit attentions; the preempted nexus already has
    /// REGISTRATIONS PREEMPTED pending). The LUN is the logical unit number, not the LUN field.
    /// Runs on the thread completing the PERSISTENT RESERVE OUT; handlers must not block.
    /// </summary>
    public event Action<ITNexus, ulong>? TasksAbortRequested;

    internal void RequestTaskAbort(ITNexus nexus, ulong lun)
    {
        try
        {
            TasksAbortRequested?.Invoke(nexus, lun);
        }
        catch (Exception ex)
        {
            Log.UnexpectedFailure(Logger, TargetName, lun, 0x5F, ex);
        }
    }

    private ValueTask<ScsiResponse> Dispatch(CommandDescriptor descriptor, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var cdb = request.Cdb.Span;
        if (cdb.Length >= descriptor.CdbLength)
        {
            // CONTROL byte (SAM-5 5.2): NACA=1 is not supported, LINK is obsolete.
            int control = descriptor.CdbLength - 1;
            if ((cdb[control] & 0x04) != 0)
            {
                return Responses.Done(Responses.InvalidFieldInCdb(request, lu, control, 2));
            }
            if ((cdb[control] & 0x01) != 0)
            {
                return Responses.Done(Responses.InvalidFieldInCdb(request, lu, control, 0));
            }
            int bad = descriptor.FindReservedBit(cdb, out int bit);
            if (bad >= 0)
            {
                return Responses.Done(Responses.InvalidFieldInCdb(request, lu, bad, bit));
            }
        }
        if (lu is not null && (descriptor.Flags & CommandFlags.NeedsMedium) != 0 && !lu.MediumPresent)
        {
            // SBC-3 4.4 / SPC-4 Table 28: medium-access commands with no medium loaded.
            return Responses.Done(Responses.Check(request, lu, SenseKey.NotReady, Asc.MediumNotPresent));
        }

        ValueTask<ScsiResponse> pending;
        try
        {
            pending = descriptor.Handler(this, lu, nexus, request, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            return Responses.Done(InternalFailure(request, lu, ex));
        }
        return pending.IsCompletedSuccessfully ? pending : Guard(pending, request, lu, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ScsiResponse> Guard(ValueTask<ScsiResponse> pending, ScsiRequest request, LogicalUnit? lu, CancellationToken cancellationToken)
    {
        try
        {
            return await pending.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            return InternalFailure(request, lu, ex);
        }
    }

    private ScsiResponse InternalFailure(ScsiRequest request, LogicalUnit? lu, Exception ex)
    {
        byte op = request.Cdb.Length > 0 ? request.Cdb.Span[0] : (byte)0;
        Log.UnexpectedFailure(Logger, TargetName, lu?.Lun ?? ulong.MaxValue, op, ex);
        return Responses.Check(request, lu, SenseKey.HardwareError, Asc.InternalTargetFailure);
    }

    /// <summary>
    /// Resolves the copy sources and destinations of EXTENDED COPY beyond this target's own
    /// LUs (e.g. every target of a server that admits the initiator). Null: own LUs only.
    /// </summary>
    public ICopyTargetResolver? CopyTargetResolver { get; set; }

    /// <summary>The LU of this target whose VPD page 83h NAA designator is <paramref name="designator"/>, or null.</summary>
    public LogicalUnit? FindUnitByDesignator(ReadOnlySpan<byte> designator)
    {
        Span<byte> mine = stackalloc byte[16];
        foreach (var lu in ordered)
        {
            SpcCommands.NaaDesignator(lu, TargetName, mine);
            if (designator.Length == 16 && designator.SequenceEqual(mine))
            {
                return lu;
            }
        }
        return null;
    }

    internal CopyTarget? ResolveCopyTarget(ReadOnlySpan<byte> designator, ITNexus requester)
    {
        if (CopyTargetResolver is { } resolver)
        {
            return resolver.Resolve(designator, requester);
        }
        return FindUnitByDesignator(designator) is { } lu ? new CopyTarget(this, lu, requester) : null;
    }

    internal LogicalUnit? FindUnit(ulong lunField)
    {
        ulong lun = LunAddressing.Decode(lunField);
        return lun != LunAddressing.Invalid && units.TryGetValue(lun, out var lu) ? lu : null;
    }

    /// <summary>I_T nexus loss (SAM-5 6.3.4): forget the nexus' unit attentions and PREVENT state.</summary>
    public void NexusLost(ITNexus nexus)
    {
        ArgumentNullException.ThrowIfNull(nexus);
        foreach (var lu in ordered)
        {
            lu.RemoveNexus(nexus);
        }
    }

    /// <summary>
    /// LOGICAL UNIT RESET (SAM-5 7.7): every nexus of the LU gets BUS DEVICE RESET FUNCTION
    /// OCCURRED (29h/03h), PREVENT state and mode parameters are reset.
    /// </summary>
    public void ResetLogicalUnit(ulong lun)
    {
        if (units.TryGetValue(lun, out var lu))
        {
            Log.TaskManagement(Logger, TargetName, "LOGICAL UNIT RESET", lun);
            lu.Reset(Asc.BusDeviceResetFunctionOccurred);
        }
    }

    /// <summary>
    /// TARGET WARM RESET / TARGET COLD RESET (RFC 7143 11.5.1, SAM-5 6.3.2 hard reset): every
    /// LU is reset; the unit attention is SCSI BUS RESET OCCURRED (29h/02h) for a warm reset
    /// and POWER ON OCCURRED (29h/01h) for a cold reset.
    /// </summary>
    public void ResetTarget(bool cold)
    {
        ushort code = cold ? Asc.PowerOnOccurred : Asc.ScsiBusResetOccurred;
        foreach (var lu in ordered)
        {
            Log.TaskManagement(Logger, TargetName, cold ? "TARGET COLD RESET" : "TARGET WARM RESET", lu.Lun);
            lu.Reset(code);
        }
    }

    /// <summary>
    /// CLEAR TASK SET (SAM-5 7.4): the transport aborts the tasks; other nexuses whose tasks
    /// were cleared get COMMANDS CLEARED BY ANOTHER INITIATOR (2Fh/00h, SAM-5 5.6).
    /// </summary>
    public void ClearTaskSet(ulong lun, ITNexus by)
    {
        ArgumentNullException.ThrowIfNull(by);
        if (units.TryGetValue(lun, out var lu))
        {
            lu.RaiseUnitAttention(Asc.CommandsClearedByAnotherInitiator, except: by);
        }
    }

    /// <summary>Flushes every LU's back end (shutdown). Failures are logged, not thrown.</summary>
    public async ValueTask FlushAllAsync(CancellationToken cancellationToken)
    {
        foreach (var lu in ordered)
        {
            try
            {
                await lu.Device.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.BackendFailure(Logger, TargetName, lu.Lun, "flush on shutdown", ex);
            }
        }
    }
}
