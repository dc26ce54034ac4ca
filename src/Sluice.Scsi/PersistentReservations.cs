using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Sluice.Scsi;

/// <summary>
/// Reservation state of one logical unit (SPC-4 5.12): persistent reservation registrations
/// per I_T nexus, the persistent reservation, the PRgeneration, APTPL persistence, and the
/// RESERVE(6)/(10) reservation. All changes happen under one lock; the I/O path reads only
/// <see cref="Active"/> until something is registered or reserved.
/// </summary>
internal sealed class PersistentReservations
{
    // PERSISTENT RESERVE OUT TYPE values (SPC-4 Table 183).
    public const byte WriteExclusive = 1;
    public const byte ExclusiveAccess = 3;
    public const byte WriteExclusiveRegistrantsOnly = 5;
    public const byte ExclusiveAccessRegistrantsOnly = 6;
    public const byte WriteExclusiveAllRegistrants = 7;
    public const byte ExclusiveAccessAllRegistrants = 8;

    private readonly Lock gate = new();
    private readonly List<Registration> registrations = [];
    private readonly string? stateFile;

    internal sealed class Registration(ITNexus nexus, ulong key)
    {
        public ITNexus Nexus { get; } = nexus;
        public ulong Key { get; set; } = key;
    }

    public PersistentReservations(string? stateFile)
    {
        this.stateFile = stateFile;
        if (stateFile is not null)
        {
            Load(stateFile);
        }
        UpdateActive();
    }

    public Lock Gate => gate;
    public uint Generation { get; set; }
    public bool Aptpl { get; set; }
    public bool CanPersist => stateFile is not null;

    /// <summary>The holder of a non all-registrants reservation; null for WEAR/EAAR (every registrant holds it).</summary>
    public ITNexus? Holder { get; set; }
    public byte Type { get; set; }
    public bool Reserved => Type != 0;
    public List<Registration> Registrations => registrations;

    /// <summary>RESERVE(6)/(10) holder (SPC-2 7.21), released by RELEASE, reset or nexus loss.</summary>
    public ITNexus? LegacyHolder { get; set; }

    /// <summary>Anything registered or reserved: the dispatcher checks conflicts only then.</summary>
    public volatile bool Active;

    public void UpdateActive() => Active = registrations.Count != 0 || Type != 0 || LegacyHolder is not null;

    public static bool IsAllRegistrants(byte type) => type is WriteExclusiveAllRegistrants or ExclusiveAccessAllRegistrants;

    public static bool IsValidType(byte type) => type is WriteExclusive or ExclusiveAccess or WriteExclusiveRegistrantsOnly
        or ExclusiveAccessRegistrantsOnly or WriteExclusiveAllRegistrants or ExclusiveAccessAllRegistrants;

    public Registration? Find(ITNexus nexus)
    {
        foreach (var r in registrations)
        {
            if (NexusComparer.Instance.Equals(r.Nexus, nexus))
            {
                return r;
            }
        }
        return null;
    }

    public bool IsHolder(ITNexus nexus) =>
        Type != 0 && (IsAllRegistrants(Type) ? Find(nexus) is not null : Holder is not null && NexusComparer.Instance.Equals(Holder, nexus));

    public ulong HolderKey => Holder is not null ? Find(Holder)?.Key ?? 0 : 0;

    /// <summary>
    /// SPC-4 5.12.1 / Table 46 (and SBC-3 Table 13): does <paramref name="nexus"/> get RESERVATION
    /// CONFLICT for a command of this class?
    /// </summary>
    public bool Conflicts(CommandDescriptor d, ITNexus nexus, ReadOnlySpan<byte> cdb)
    {
        lock (gate)
        {
            if (LegacyHolder is not null && !NexusComparer.Instance.Equals(LegacyHolder, nexus))
            {
                // RESERVE(6)/(10) by another nexus (SPC-2 5.5.1): only the commands that must
                // always work, and RELEASE, get through.
                return (d.Flags & CommandFlags.AnyLun) == 0 && d.Opcode is not (0x17 or 0x57);
            }
            if (Type == 0 || (d.Flags & CommandFlags.ReservationAllowed) != 0 || IsHolder(nexus))
            {
                return false;
            }
            if (d.Opcode == 0x1E && (cdb[4] & 0x03) == 0)
            {
                return false; // PREVENT ALLOW MEDIUM REMOVAL with PREVENT=0 is always allowed
            }
            bool registered = Find(nexus) is not null;
            bool read = (d.Flags & CommandFlags.ReservationRead) != 0;
            return Type switch
            {
                WriteExclusive => !read,
                ExclusiveAccess => true,
                WriteExclusiveRegistrantsOnly or WriteExclusiveAllRegistrants => !registered && !read,
                _ => !registered, // EARO / EAAR
            };
        }
    }

    // ---- APTPL persistence (SPC-4 5.12.5) ---------------------------------------------

    /// <summary>Writes or removes the state file after a change; called under the gate.</summary>
    public void Persist()
    {
        if (stateFile is null)
        {
            return;
        }
        if (!Aptpl)
        {
            File.Delete(stateFile);
            return;
        }
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("generation", Generation);
            w.WriteNumber("type", Type);
            w.WriteStartArray("registrations");
            foreach (var r in registrations)
            {
                w.WriteStartObject();
                WriteNexus(w, r.Nexus);
                w.WriteString("key", r.Key.ToString("x16", System.Globalization.CultureInfo.InvariantCulture));
                w.WriteBoolean("holder", Holder is not null && NexusComparer.Instance.Equals(Holder, r.Nexus));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        // Write a temporary file, make it durable, then rename over the old state: a crash
        // leaves either the old or the new state, never a torn one.
        string temp = stateFile + ".tmp";
        using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            buffer.Position = 0;
            buffer.CopyTo(f);
            f.Flush(flushToDisk: true);
        }
        File.Move(temp, stateFile, overwrite: true);
        FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(stateFile))!);
    }

    private static void FsyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        try
        {
            using var handle = File.OpenHandle(directory, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.None);
            RandomAccess.FlushToDisk(handle);
        }
        catch (IOException)
        {
            // Some file systems refuse to open or fsync a directory; the rename itself is done.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static void WriteNexus(Utf8JsonWriter w, ITNexus n)
    {
        w.WriteString("initiatorName", n.InitiatorName);
        w.WriteString("initiatorPort", n.InitiatorPortName);
        w.WriteString("targetName", n.TargetName);
        w.WriteString("targetPort", n.TargetPortName);
        w.WriteNumber("relativeTargetPortId", n.RelativeTargetPortId);
        w.WriteNumber("targetPortGroup", n.TargetPortGroup);
    }

    private void Load(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        Generation = root.GetProperty("generation").GetUInt32();
        Type = root.GetProperty("type").GetByte();
        foreach (var e in root.GetProperty("registrations").EnumerateArray())
        {
            var nexus = new ITNexus(
                e.GetProperty("initiatorName").GetString()!,
                e.GetProperty("initiatorPort").GetString()!,
                e.GetProperty("targetName").GetString()!,
                e.GetProperty("targetPort").GetString()!,
                e.GetProperty("relativeTargetPortId").GetUInt16(),
                e.GetProperty("targetPortGroup").GetUInt16());
            ulong key = ulong.Parse(e.GetProperty("key").GetString()!, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
            registrations.Add(new Registration(nexus, key));
            if (e.GetProperty("holder").GetBoolean())
            {
                Holder = nexus;
            }
        }
        Aptpl = true;
        if (Type != 0 && !IsAllRegistrants(Type) && Holder is null)
        {
            Type = 0;
        }
    }
}

/// <summary>PERSISTENT RESERVE IN/OUT (SPC-4 6.15, 6.16), RESERVE/RELEASE(6)/(10) (SPC-2 7.21-7.24).</summary>
internal static class ReservationCommands
{
    // ---- PERSISTENT RESERVE IN (SPC-4 6.15) --------------------------------------------
    //  byte 1: SERVICE ACTION   bytes 7-8: ALLOCATION LENGTH

    public static ValueTask<ScsiResponse> PersistentReserveIn(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        int sa = cdb[1] & 0x1F;
        int alloc = BinaryPrimitives.ReadUInt16BigEndian(cdb[7..]);
        var pr = unit.Reservations;
        var b = new ArrayBufferWriter(8 + 64 * Math.Max(1, pr.Registrations.Count) + 512);
        lock (pr.Gate)
        {
            switch (sa)
            {
                case 0: // READ KEYS (6.15.2)
                    b.U32(pr.Generation);
                    b.U32((uint)(8 * pr.Registrations.Count));
                    foreach (var r in pr.Registrations)
                    {
                        b.U64(r.Key);
                    }
                    break;
                case 1: // READ RESERVATION (6.15.3)
                    b.U32(pr.Generation);
                    b.U32(pr.Reserved ? 16u : 0u);
                    if (pr.Reserved)
                    {
                        // All-registrants reservations report key 0 (SPC-4 6.15.3.2).
                        b.U64(PersistentReservations.IsAllRegistrants(pr.Type) ? 0 : pr.HolderKey);
                        b.U32(0);
                        b.U8(0);
                        b.U8(pr.Type); // SCOPE 0h (LU_SCOPE) | TYPE
                        b.U16(0);
                    }
                    break;
                case 2: // REPORT CAPABILITIES (6.15.4)
                    b.U16(8);
                    // CRH=1 (RESERVE/RELEASE handled compatibly), SIP_C=0, ATP_C=0, PTPL_C.
                    b.U8((byte)(0x10 | (pr.CanPersist ? 0x01 : 0)));
                    // TMV=1, ALLOW COMMANDS 000b, PTPL_A.
                    b.U8((byte)(0x80 | (pr.Aptpl ? 0x01 : 0)));
                    // PERSISTENT RESERVATION TYPE MASK: WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX | EX_AC_AR.
                    b.U8(0x80 | 0x40 | 0x20 | 0x08 | 0x02);
                    b.U8(0x01);
                    b.U16(0);
                    break;
                case 3: // READ FULL STATUS (6.15.5)
                    b.U32(pr.Generation);
                    int lengthAt = b.Length;
                    b.U32(0);
                    foreach (var r in pr.Registrations)
                    {
                        bool holder = pr.IsHolder(r.Nexus);
                        b.U64(r.Key);
                        b.U32(0);
                        b.U8((byte)(holder ? 0x01 : 0)); // ALL_TG_PT=0 | R_HOLDER
                        b.U8(holder ? pr.Type : (byte)0);
                        b.U32(0);
                        b.U16(r.Nexus.RelativeTargetPortId);
                        int tidAt = b.Length;
                        b.U32(0);
                        int tid = WriteTransportId(b, r.Nexus.InitiatorPortName);
                        b.SetU32(tidAt, (uint)tid);
                    }
                    b.SetU32(lengthAt, (uint)(b.Length - 8));
                    break;
                default:
                    return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 4));
            }
        }
        return Responses.Done(SpcCommands.CopyOut(request, b.Written, alloc));
    }

    /// <summary>iSCSI TransportID, initiator port format (SPC-4 7.6.4.6, FORMAT CODE 01b).</summary>
    private static int WriteTransportId(ArrayBufferWriter b, string initiatorPort)
    {
        int start = b.Length;
        int count = Encoding.UTF8.GetByteCount(initiatorPort) + 1;
        int padded = (count + 3) & ~3;
        padded = Math.Max(padded, 20);
        b.U8(0x40 | 0x05);
        b.U8(0);
        b.U16((ushort)padded);
        var name = Encoding.UTF8.GetBytes(initiatorPort);
        b.Bytes(name);
        for (int i = name.Length; i < padded; i++)
        {
            b.U8(0);
        }
        return b.Length - start;
    }

    // ---- PERSISTENT RESERVE OUT (SPC-4 6.16) -------------------------------------------
    //  byte 1: SERVICE ACTION   byte 2: SCOPE(7:4) TYPE(3:0)   bytes 5-8: PARAMETER LIST LENGTH
    //  Parameters: 0-7 RESERVATION KEY  8-15 SERVICE ACTION RESERVATION KEY
    //              20: SPEC_I_PT(3) ALL_TG_PT(2) APTPL(0)

    private const int Register = 0, Reserve = 1, Release = 2, Clear = 3, Preempt = 4, PreemptAndAbort = 5, RegisterAndIgnore = 6, RegisterAndMove = 7;

    public static ValueTask<ScsiResponse> PersistentReserveOut(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        int sa = cdb[1] & 0x1F;
        int scope = cdb[2] >> 4;
        byte type = (byte)(cdb[2] & 0x0F);
        uint listLength = BinaryPrimitives.ReadUInt32BigEndian(cdb[5..]);
        var data = request.DataOut.Span;
        if (sa == RegisterAndMove ? listLength < 24 : listLength != 24)
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
        }
        if (data.Length < listLength)
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
        }
        ulong key = BinaryPrimitives.ReadUInt64BigEndian(data);
        ulong saKey = BinaryPrimitives.ReadUInt64BigEndian(data[8..]);
        var pr = unit.Reservations;
        var me = request.Nexus;
        var preempted = new List<ITNexus>();
        ScsiResponse response;
        lock (pr.Gate)
        {
            if (pr.LegacyHolder is not null && !NexusComparer.Instance.Equals(pr.LegacyHolder, me))
            {
                return Responses.Done(Conflict());
            }
            if (sa != RegisterAndMove)
            {
                if ((data[20] & 0x08) != 0)
                {
                    return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 20, 3)); // SIP_C=0
                }
                if ((data[20] & 0x04) != 0)
                {
                    return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 20, 2)); // ATP_C=0
                }
            }
            response = sa switch
            {
                Register or RegisterAndIgnore => DoRegister(request, unit, pr, me, key, saKey, sa == RegisterAndIgnore, (data[20] & 0x01) != 0),
                Reserve => DoReserve(request, unit, pr, me, key, scope, type),
                Release => DoRelease(request, unit, pr, me, key, scope, type),
                Clear => DoClear(request, unit, pr, me, key),
                Preempt or PreemptAndAbort => DoPreempt(request, unit, pr, me, key, saKey, scope, type, preempted),
                RegisterAndMove => DoRegisterAndMove(request, unit, pr, me, key, saKey, data[..(int)listLength]),
                _ => Responses.InvalidFieldInCdb(request, unit, 1, 4),
            };
            pr.UpdateActive();
            if (response.Status == ScsiStatus.Good && pr.CanPersist)
            {
                try
                {
                    pr.Persist(); // keeps the file while APTPL=1, removes it when APTPL=0
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "PERSISTENT RESERVE OUT (APTPL state)", ex);
                }
            }
        }
        if (sa == PreemptAndAbort && response.Status == ScsiStatus.Good)
        {
            // SPC-4 5.12.11.4.5: the tasks of every preempted I_T nexus are aborted.
            foreach (var n in preempted)
            {
                target.RequestTaskAbort(n, unit.Lun);
            }
        }
        return Responses.Done(response);
    }

    private static ScsiResponse Conflict() => new(ScsiStatus.ReservationConflict, 0, 0, -1);

    private static ScsiResponse DoRegister(ScsiRequest request, LogicalUnit unit, PersistentReservations pr, ITNexus me, ulong key, ulong saKey, bool ignore, bool aptpl)
    {
        // SPC-4 5.12.7.
        if (aptpl && !pr.CanPersist)
        {
            return Responses.InvalidFieldInParameterList(request, unit, 20, 0);
        }
        var mine = pr.Find(me);
        if (mine is null)
        {
            if (!ignore && key != 0)
            {
                return Conflict();
            }
            if (saKey != 0)
            {
                pr.Registrations.Add(new PersistentReservations.Registration(me, saKey));
            }
        }
        else
        {
            if (!ignore && key != mine.Key)
            {
                return Conflict();
            }
            if (saKey == 0)
            {
                Unregister(unit, pr, mine);
            }
            else
            {
                mine.Key = saKey;
            }
        }
        pr.Generation++;
        pr.Aptpl = aptpl;
        return Responses.Good(0, 24);
    }

    /// <summary>Removes a registration, releasing the reservation it held (SPC-4 5.12.11.2).</summary>
    private static void Unregister(LogicalUnit unit, PersistentReservations pr, PersistentReservations.Registration r)
    {
        pr.Registrations.Remove(r);
        if (!pr.Reserved)
        {
            return;
        }
        bool all = PersistentReservations.IsAllRegistrants(pr.Type);
        bool wasHolder = !all && pr.Holder is not null && NexusComparer.Instance.Equals(pr.Holder, r.Nexus);
        if (wasHolder || (all && pr.Registrations.Count == 0))
        {
            byte type = pr.Type;
            pr.Type = 0;
            pr.Holder = null;
            if (type is PersistentReservations.WriteExclusiveRegistrantsOnly or PersistentReservations.ExclusiveAccessRegistrantsOnly)
            {
                foreach (var other in pr.Registrations)
                {
                    unit.GetNexus(other.Nexus).Add(Asc.ReservationsReleased);
                }
            }
        }
    }

    private static ScsiResponse DoReserve(ScsiRequest request, LogicalUnit unit, PersistentReservations pr, ITNexus me, ulong key, int scope, byte type)
    {
        // SPC-4 5.12.9.
        var mine = pr.Find(me);
        if (mine is null || mine.Key != key)
        {
            return Conflict();
        }
        if (scope != 0)
        {
            return Responses.InvalidFieldInCdb(request, unit, 2, 7);
        }
        if (!PersistentReservations.IsValidType(type))
        {
            return Responses.InvalidFieldInCdb(request, unit, 2, 3);
        }
        if (pr.Reserved)
        {
            return pr.IsHolder(me) && pr.Type == type ? Responses.Good(0, 24) : Conflict();
        }
        pr.Type = type;
        pr.Holder = PersistentReservations.IsAllRegistrants(type) ? null : me;
        return Responses.Good(0, 24);
    }

    private static ScsiResponse DoRelease(ScsiRequest request, LogicalUnit unit, PersistentReservations pr, ITNexus me, ulong key, int scope, byte type)
    {
        // SPC-4 5.12.11.2.
        var mine = pr.Find(me);
        if (mine is null || mine.Key != key)
        {
            return Conflict();
        }
        if (!pr.Reserved || !pr.IsHolder(me))
        {
            return Responses.Good(0, 24);
        }
        if (scope != 0 || type != pr.Type)
        {
            return Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.InvalidReleaseOfPersistentReservation);
        }
        byte released = pr.Type;
        pr.Type = 0;
        pr.Holder = null;
        if (released is not (PersistentReservations.WriteExclusive or PersistentReservations.ExclusiveAccess))
        {
            foreach (var other in pr.Registrations)
            {
                if (!NexusComparer.Instance.Equals(other.Nexus, me))
                {
                    unit.GetNexus(other.Nexus).Add(Asc.ReservationsReleased);
                }
            }
        }
        return Responses.Good(0, 24);
    }

    private static ScsiResponse DoClear(ScsiRequest request, LogicalUnit unit, PersistentReservations pr, ITNexus me, ulong key)
    {
        // SPC-4 5.12.11.3.
        var mine = pr.Find(me);
        if (mine is null || mine.Key != key)
        {
            return Conflict();
        }
        foreach (var other in pr.Registrations)
        {
            if (!NexusComparer.Instance.Equals(other.Nexus, me))
            {
                unit.GetNexus(other.Nexus).Add(Asc.ReservationsPreempted);
            }
        }
        pr.Registrations.Clear();
        pr.Type = 0;
        pr.Holder = null;
        pr.Generation++;
        return Responses.Good(0, 24);
    }

    private static ScsiResponse DoPreempt(ScsiRequest request, LogicalUnit unit, PersistentReservations pr, ITNexus me, ulong key, ulong saKey, int scope, byte type, List<ITNexus> preempted)
    {
        // SPC-4 5.12.11.4.
        var mine = pr.Find(me);
        if (mine is null || mine.Key != key)
        {
            return Conflict();
        }
        bool allRegistrants = pr.Reserved && PersistentReservations.IsAllRegistrants(pr.Type);
        bool takeReservation = pr.Reserved && (allRegistrants ? saKey == 0 : saKey == pr.HolderKey);
        if (takeReservation)
        {
            if (scope != 0)
            {
                return Responses.InvalidFieldInCdb(request, unit, 2, 7);
            }
            if (!PersistentReservations.IsValidType(type))
            {
                return Responses.InvalidFieldInCdb(request, unit, 2, 3);
            }
        }
        else if (saKey == 0)
        {
            return Responses.InvalidFieldInParameterList(request, unit, 8);
        }
        int removed = 0;
        for (int i = pr.Registrations.Count - 1; i >= 0; i--)
        {
            var r = pr.Registrations[i];
            if (NexusComparer.Instance.Equals(r.Nexus, me))
            {
                continue;
            }
            if ((allRegistrants && takeReservation) || r.Key == saKey)
            {
                pr.Registrations.RemoveAt(i);
                preempted.Add(r.Nexus);
                unit.GetNexus(r.Nexus).Add(Asc.RegistrationsPreempted);
                removed++;
            }
        }
        if (!takeReservation && removed == 0 && saKey != mine.Key)
        {
            return Conflict();
        }
        if (takeReservation)
        {
            byte old = pr.Type;
            pr.Type = type;
            pr.Holder = PersistentReservations.IsAllRegistrants(type) ? null : me;
            if (old != type)
            {
                // SPC-4 5.12.11.4.3: a changed type is a released reservation for the registrants left.
                foreach (var other in pr.Registrations)
                {
                    if (!NexusComparer.Instance.Equals(other.Nexus, me))
                    {
                        unit.GetNexus(other.Nexus).Add(Asc.ReservationsReleased);
                    }
                }
            }
        }
        pr.Generation++;
        return Responses.Good(0, 24);
    }

    private static ScsiResponse DoRegisterAndMove(ScsiRequest request, LogicalUnit unit, PersistentReservations pr, ITNexus me, ulong key, ulong saKey, ReadOnlySpan<byte> data)
    {
        // SPC-4 5.12.8. Parameters: 17 UNREG(1) APTPL(0)  18-19 RELATIVE TARGET PORT IDENTIFIER
        //  20-23 TRANSPORTID PARAMETER DATA LENGTH  24.. TransportID
        var mine = pr.Find(me);
        if (mine is null)
        {
            return Conflict();
        }
        if (mine.Key != key || !pr.Reserved || !pr.IsHolder(me) || PersistentReservations.IsAllRegistrants(pr.Type))
        {
            return Conflict();
        }
        if (saKey == 0)
        {
            return Responses.InvalidFieldInParameterList(request, unit, 8);
        }
        bool aptpl = (data[17] & 0x01) != 0;
        if (aptpl && !pr.CanPersist)
        {
            return Responses.InvalidFieldInParameterList(request, unit, 17, 0);
        }
        ushort port = BinaryPrimitives.ReadUInt16BigEndian(data[18..]);
        uint tidLength = BinaryPrimitives.ReadUInt32BigEndian(data[20..]);
        if (24 + (long)tidLength > data.Length || tidLength < 4)
        {
            return Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError);
        }
        var tid = data.Slice(24, (int)tidLength);
        if ((tid[0] & 0x0F) != 0x05 || (tid[0] >> 6) != 1)
        {
            return Responses.InvalidFieldInParameterList(request, unit, 24);
        }
        int nameLength = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(tid[2..]), tid.Length - 4);
        var nameBytes = tid.Slice(4, nameLength);
        int nul = nameBytes.IndexOf((byte)0);
        string portName = Encoding.UTF8.GetString(nul >= 0 ? nameBytes[..nul] : nameBytes);
        int separator = portName.IndexOf(",i,", StringComparison.OrdinalIgnoreCase);
        if (separator <= 0 || port != me.RelativeTargetPortId)
        {
            return Responses.InvalidFieldInParameterList(request, unit, separator <= 0 ? 24 : 18);
        }
        var destination = new ITNexus(portName[..separator], portName, me.TargetName, me.TargetPortName, me.RelativeTargetPortId, me.TargetPortGroup);
        if (NexusComparer.Instance.Equals(destination, me))
        {
            return Responses.InvalidFieldInParameterList(request, unit, 24);
        }
        var theirs = pr.Find(destination);
        if (theirs is null)
        {
            pr.Registrations.Add(new PersistentReservations.Registration(destination, saKey));
        }
        else
        {
            theirs.Key = saKey;
            destination = theirs.Nexus;
        }
        pr.Holder = destination;
        if ((data[17] & 0x02) != 0)
        {
            pr.Registrations.Remove(mine);
        }
        pr.Generation++;
        pr.Aptpl = aptpl;
        return Responses.Good(0, data.Length);
    }

    // ---- RESERVE(6)/(10), RELEASE(6)/(10) (SPC-2 7.21-7.24; SPC-4 5.12.? CRH=1) ----------

    public static ValueTask<ScsiResponse> ReserveLegacy(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var pr = lu!.Reservations;
        lock (pr.Gate)
        {
            // With a persistent reservation in place RESERVE conflicts (SPC-4 5.12.3, CRH=1:
            // only a registered holder would get GOOD without effect; keep it strict).
            if (pr.Reserved && !pr.IsHolder(request.Nexus))
            {
                return Responses.Done(Conflict());
            }
            if (pr.LegacyHolder is not null && !NexusComparer.Instance.Equals(pr.LegacyHolder, request.Nexus))
            {
                return Responses.Done(Conflict());
            }
            if (!pr.Reserved)
            {
                pr.LegacyHolder = request.Nexus;
            }
            pr.UpdateActive();
        }
        return Responses.Done(Responses.Good(0, -1));
    }

    public static ValueTask<ScsiResponse> ReleaseLegacy(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var pr = lu!.Reservations;
        lock (pr.Gate)
        {
            // Releasing a reservation one does not hold is GOOD without effect (SPC-2 7.23).
            if (pr.LegacyHolder is not null && NexusComparer.Instance.Equals(pr.LegacyHolder, request.Nexus))
            {
                pr.LegacyHolder = null;
            }
            pr.UpdateActive();
        }
        return Responses.Done(Responses.Good(0, -1));
    }

    /// <summary>Small big-endian builder for parameter data whose size depends on the registrations.</summary>
    private sealed class ArrayBufferWriter(int capacity)
    {
        private byte[] buffer = new byte[capacity];
        public int Length { get; private set; }
        public ReadOnlySpan<byte> Written => buffer.AsSpan(0, Length);

        private Span<byte> Take(int n)
        {
            if (Length + n > buffer.Length)
            {
                Array.Resize(ref buffer, Math.Max(buffer.Length * 2, Length + n));
            }
            var s = buffer.AsSpan(Length, n);
            Length += n;
            return s;
        }

        public void U8(byte v) => Take(1)[0] = v;
        public void U16(ushort v) => BinaryPrimitives.WriteUInt16BigEndian(Take(2), v);
        public void U32(uint v) => BinaryPrimitives.WriteUInt32BigEndian(Take(4), v);
        public void U64(ulong v) => BinaryPrimitives.WriteUInt64BigEndian(Take(8), v);
        public void Bytes(ReadOnlySpan<byte> v) => v.CopyTo(Take(v.Length));
        public void SetU32(int at, uint v) => BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(at), v);
    }
}
