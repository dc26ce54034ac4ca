namespace Sluice.Target;

/// <summary>
/// Open sessions, by TSIH and by the (InitiatorName, ISID, TargetName, TPGT) that names a
/// session for reinstatement (RFC 7143 §4.4.1, §6.3.5: the same initiator port logged in
/// through another portal group is another session, another I_T nexus). TSIHs are never 0 and
/// not reused while alive.
/// </summary>
internal sealed class SessionRegistry
{
    private readonly Lock _lock = new();
    private readonly Dictionary<ushort, IscsiSession> _byTsih = [];
    private ushort _nextTsih = 1;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byTsih.Count;
            }
        }
    }

    public IscsiSession? Find(ushort tsih)
    {
        lock (_lock)
        {
            return _byTsih.GetValueOrDefault(tsih);
        }
    }

    public IscsiSession? FindByIdentity(string initiatorName, ulong isid, string? targetName, ushort tpgt)
    {
        lock (_lock)
        {
            foreach (var s in _byTsih.Values)
            {
                if (s.Isid == isid
                    && s.Tpgt == tpgt
                    && string.Equals(s.InitiatorName, initiatorName, StringComparison.OrdinalIgnoreCase)
                    && string.Equals(s.TargetName, targetName, StringComparison.OrdinalIgnoreCase))
                {
                    return s;
                }
            }

            return null;
        }
    }

    /// <summary>Allocates a TSIH, or 0 when <paramref name="maxSessions"/> are open.</summary>
    public ushort Add(Func<ushort, IscsiSession> create, int maxSessions, out IscsiSession? session)
    {
        lock (_lock)
        {
            session = null;
            if (_byTsih.Count >= maxSessions)
            {
                return 0;
            }

            while (_nextTsih == 0 || _byTsih.ContainsKey(_nextTsih))
            {
                _nextTsih++;
            }

            ushort tsih = _nextTsih++;
            session = create(tsih);
            _byTsih.Add(tsih, session);
            return tsih;
        }
    }

    public void Remove(IscsiSession session)
    {
        lock (_lock)
        {
            if (_byTsih.TryGetValue(session.Tsih, out var s) && ReferenceEquals(s, session))
            {
                _byTsih.Remove(session.Tsih);
            }
        }
    }

    public IscsiSession[] Snapshot()
    {
        lock (_lock)
        {
            return [.. _byTsih.Values];
        }
    }
}
