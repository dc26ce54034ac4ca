using Sluice.Iscsi.Pdu;
using Sluice.Iscsi.Login;
using Sluice.Scsi;

namespace Sluice.Target;

/// <summary>
/// One iSCSI session: identity, negotiated parameters and the command window
/// (RFC 7143 §4.2.2.1). Commands are delivered in CmdSN order; MaxCmdSN - ExpCmdSN + 1 is the
/// number of free command slots, so a busy session closes its window instead of queuing without
/// bound in the target. The window never shrinks: each delivery raises ExpCmdSN and uses a slot.
/// </summary>
internal sealed class IscsiSession
{
    private readonly Lock _lock = new();
    private uint _expCmdSN;
    private int _active;

    public IscsiSession(ushort tsih, ulong isid, string initiatorName, TargetNode? target, bool discovery, SessionParameters parameters, int window, uint initialCmdSN, ushort tpgt)
    {
        Tsih = tsih;
        Isid = isid;
        Tpgt = tpgt;
        InitiatorName = initiatorName;
        Target = target;
        IsDiscovery = discovery;
        Parameters = parameters;
        Window = Math.Max(1, window);
        _expCmdSN = initialCmdSN;
        if (target is not null)
        {
            Nexus = new ITNexus(
                initiatorName,
                $"{initiatorName},i,0x{isid:x12}",
                target.Name,
                $"{target.Name},t,0x{tpgt:x4}",
                tpgt,
                tpgt);
        }
    }

    public ushort Tsih { get; }
    public ulong Isid { get; }

    /// <summary>The portal group the session was opened through; its connections stay in it (RFC 7143 §4.4.1).</summary>
    public ushort Tpgt { get; }
    public string InitiatorName { get; }
    public TargetNode? Target { get; }
    public string? TargetName => Target?.Name;
    public bool IsDiscovery { get; }
    public SessionParameters Parameters { get; }
    public ITNexus? Nexus { get; }
    public int Window { get; }

    private int _ended;

    /// <summary>Marks the session ended; true only for the first caller, so nexus loss is reported once.</summary>
    public bool TryEnd() => Interlocked.Exchange(ref _ended, 1) == 0;

    /// <summary>The session has ended (logout, connection loss, reinstatement, fn rm).</summary>
    public bool Ended => Volatile.Read(ref _ended) != 0;

    /// <summary>The connection currently serving the session (MaxConnections=1).</summary>
    public IscsiConnection? Connection { get; set; }

    public uint ExpCmdSN
    {
        get
        {
            lock (_lock)
            {
                return _expCmdSN;
            }
        }
    }

    public uint MaxCmdSN
    {
        get
        {
            lock (_lock)
            {
                return MaxCmdSNLocked();
            }
        }
    }

    private uint MaxCmdSNLocked() => unchecked(_expCmdSN + (uint)(Window - _active) - 1);

    public (uint Exp, uint Max) Window2()
    {
        lock (_lock)
        {
            return (_expCmdSN, MaxCmdSNLocked());
        }
    }

    /// <summary>Classifies a non-immediate PDU's CmdSN against the window.</summary>
    public CmdSNCheck Check(uint cmdSN)
    {
        lock (_lock)
        {
            if (cmdSN == _expCmdSN)
            {
                return CmdSNCheck.InOrder;
            }

            return SerialNumber.InWindow(cmdSN, _expCmdSN, MaxCmdSNLocked()) ? CmdSNCheck.Early : CmdSNCheck.OutsideWindow;
        }
    }

    /// <summary>Consumes the next CmdSN; <paramref name="usesSlot"/> for SCSI commands that stay active until done.</summary>
    public void Advance(bool usesSlot)
    {
        lock (_lock)
        {
            _expCmdSN++;
            if (usesSlot)
            {
                _active++;
            }
        }
    }

    /// <summary>A command that used a slot has completed: the window reopens by one.</summary>
    public void Complete()
    {
        lock (_lock)
        {
            _active--;
        }
    }
}

internal enum CmdSNCheck
{
    InOrder,
    Early,
    OutsideWindow,
}
