namespace Sluice.Scsi;

/// <summary>
/// Per I_T_L nexus state: the unit attention queue (SAM-5 5.14) and the PREVENT ALLOW MEDIUM
/// REMOVAL state (SPC-4 6.13, kept per I_T nexus).
/// </summary>
internal sealed class NexusState
{
    private readonly Lock gate = new();
    private readonly List<ushort> pending = new(2);
    private volatile int count;

    public NexusState(bool powerOn)
    {
        if (powerOn)
        {
            Add(Asc.PowerOnResetOrBusDeviceReset);
        }
    }

    /// <summary>PREVENT ALLOW MEDIUM REMOVAL with PREVENT=01b is in effect for this nexus.</summary>
    public volatile bool Prevent;

    public bool HasUnitAttention => count != 0;

    public void Add(ushort ascAscq)
    {
        lock (gate)
        {
            // A reset-class condition supersedes whatever was queued (SAM-5 5.14: the
            // device server may report only the highest-precedence condition).
            if ((ascAscq >> 8) == 0x29)
            {
                pending.Clear();
            }
            if (!pending.Contains(ascAscq))
            {
                pending.Add(ascAscq);
            }
            count = pending.Count;
        }
    }

    public bool TryTake(out ushort ascAscq)
    {
        lock (gate)
        {
            if (pending.Count == 0)
            {
                ascAscq = 0;
                return false;
            }
            ascAscq = pending[0];
            pending.RemoveAt(0);
            count = pending.Count;
            return true;
        }
    }

    public void Clear()
    {
        lock (gate)
        {
            pending.Clear();
            count = 0;
        }
    }
}

/// <summary>Identifies an I_T nexus by initiator port and target port name (SAM-5 4.7).</summary>
internal sealed class NexusComparer : IEqualityComparer<ITNexus>
{
    public static readonly NexusComparer Instance = new();

    public bool Equals(ITNexus? x, ITNexus? y)
    {
        if (ReferenceEquals(x, y))
        {
            return true;
        }
        if (x is null || y is null)
        {
            return false;
        }
        return string.Equals(x.InitiatorPortName, y.InitiatorPortName, StringComparison.Ordinal)
            && string.Equals(x.TargetPortName, y.TargetPortName, StringComparison.Ordinal);
    }

    public int GetHashCode(ITNexus obj) =>
        HashCode.Combine(StringComparer.Ordinal.GetHashCode(obj.InitiatorPortName), StringComparer.Ordinal.GetHashCode(obj.TargetPortName));
}
