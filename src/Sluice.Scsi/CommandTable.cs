namespace Sluice.Scsi;

internal delegate ValueTask<ScsiResponse> CommandHandler(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken);

[Flags]
internal enum CommandFlags
{
    None = 0,
    /// <summary>Runs (and is answered) for a LUN that does not exist (SPC-4 6.6.2, 6.33, 6.39).</summary>
    AnyLun = 1,
    /// <summary>Neither blocked by nor consumes a pending unit attention (SAM-5 5.14).</summary>
    IgnoresUnitAttention = 2,
    /// <summary>Needs the medium loaded; NOT READY / MEDIUM NOT PRESENT otherwise (SBC-3 4.4).</summary>
    NeedsMedium = 4,
    DataIn = 8,
    DataOut = 16,
    /// <summary>Offered only when the LU is thin provisioned (SBC-3 4.7.3: LBPU/LBPWS).</summary>
    NeedsThin = 32,
    /// <summary>Never RESERVATION CONFLICT under a persistent reservation (SPC-4 5.12.1 Table 46 "Allowed").</summary>
    ReservationAllowed = 64,
    /// <summary>Reads the medium: conflicts only with exclusive-access reservation types.</summary>
    ReservationRead = 128,
}

/// <summary>
/// One supported command: opcode and service action, CDB length, handler, and the CDB usage
/// data (SPC-4 6.35.3: a one bit for every bit the device server looks at). Bytes 1..n-2 of
/// an incoming CDB are checked against the usage data; a set reserved bit is INVALID FIELD IN
/// CDB with a field pointer. The CONTROL byte is checked separately (NACA/LINK, SAM-5 5.2).
/// The same table will generate REPORT SUPPORTED OPERATION CODES data.
/// </summary>
internal sealed class CommandDescriptor(byte opcode, int serviceAction, string name, CommandFlags flags, byte[] usage, CommandHandler handler, uint timeoutSeconds)
{
    public byte Opcode { get; } = opcode;
    /// <summary>-1 when the opcode has no service action.</summary>
    public int ServiceAction { get; } = serviceAction;
    public string Name { get; } = name;
    public CommandFlags Flags { get; } = flags;
    public byte[] Usage { get; } = usage;
    public int CdbLength => Usage.Length;
    public CommandHandler Handler { get; } = handler;

    /// <summary>RECOMMENDED COMMAND TIMEOUT of the command timeouts descriptor (SPC-4 6.35.4).</summary>
    public uint TimeoutSeconds { get; } = timeoutSeconds;

    /// <summary>Whether <paramref name="lu"/> offers this command; RSOC reports exactly these.</summary>
    public bool IsAvailable(LogicalUnit lu) => (Flags & CommandFlags.NeedsThin) == 0 || lu.ThinProvisioned;

    /// <summary>Returns the first CDB byte/bit that sets a bit the usage data marks unused, or -1.</summary>
    public int FindReservedBit(ReadOnlySpan<byte> cdb, out int bit)
    {
        for (int i = 1; i < Usage.Length - 1; i++)
        {
            // The SERVICE ACTION field was matched by the lookup; its usage byte holds the value.
            int used = i == 1 && ServiceAction >= 0 ? Usage[i] | 0x1F : Usage[i];
            int bad = cdb[i] & ~used;
            if (bad != 0)
            {
                bit = 31 - int.LeadingZeroCount(bad);
                return i;
            }
        }
        bit = -1;
        return -1;
    }
}

internal static class CommandTable
{
    private const byte G = 0x3F; // GROUP NUMBER (SBC-3 4.21, widened to six bits by SBC-4)
    private const byte F = 0xFF;

    private static readonly CommandDescriptor?[] ByOpcode = new CommandDescriptor?[256];
    /// <summary>Per opcode, the commands selected by a SERVICE ACTION in byte 1 bits 4:0.</summary>
    private static readonly CommandDescriptor?[]?[] ByServiceAction = new CommandDescriptor?[]?[256];
    private static readonly List<CommandDescriptor> AllCommands = [];

    public static IReadOnlyList<CommandDescriptor> All => AllCommands;

    static CommandTable()
    {
        const CommandFlags Spc = CommandFlags.AnyLun | CommandFlags.IgnoresUnitAttention | CommandFlags.DataIn | CommandFlags.ReservationAllowed;
        const CommandFlags Medium = CommandFlags.NeedsMedium;
        const CommandFlags In = CommandFlags.NeedsMedium | CommandFlags.DataIn | CommandFlags.ReservationRead;
        const CommandFlags Out = CommandFlags.NeedsMedium | CommandFlags.DataOut;
        const CommandFlags Allowed = CommandFlags.ReservationAllowed;
        const CommandFlags Read = CommandFlags.ReservationRead;

        // SPC-4 primary commands.
        Add(0x00, "TEST UNIT READY", Medium | Allowed, [F, 0, 0, 0, 0, 0], SpcCommands.TestUnitReady);
        Add(0x03, "REQUEST SENSE", Spc, [F, 0x01, 0, 0, F, 0], SpcCommands.RequestSense);
        Add(0x12, "INQUIRY", Spc, [F, 0x01, F, F, F, 0], SpcCommands.Inquiry);
        Add(0x15, "MODE SELECT(6)", CommandFlags.DataOut, [F, 0x11, 0, 0, F, 0], SpcCommands.ModeSelect);
        Add(0x1A, "MODE SENSE(6)", CommandFlags.DataIn | Read, [F, 0x08, F, F, F, 0], SpcCommands.ModeSense);
        Add(0x1B, "START STOP UNIT", CommandFlags.None, [F, 0x01, 0, 0x0F, 0xF7, 0], SpcCommands.StartStopUnit);
        Add(0x1E, "PREVENT ALLOW MEDIUM REMOVAL", CommandFlags.None, [F, 0, 0, 0, 0x03, 0], SpcCommands.PreventAllowMediumRemoval);
        Add(0x55, "MODE SELECT(10)", CommandFlags.DataOut, [F, 0x11, 0, 0, 0, 0, 0, F, F, 0], SpcCommands.ModeSelect);
        Add(0x5A, "MODE SENSE(10)", CommandFlags.DataIn | Read, [F, 0x18, F, F, 0, 0, 0, F, F, 0], SpcCommands.ModeSense);
        Add(0xA0, "REPORT LUNS", Spc, [F, 0, F, 0, 0, 0, F, F, F, F, 0, 0], SpcCommands.ReportLuns);

        // SBC-3 block commands.
        Add(0x08, "READ(6)", In, [F, 0x1F, F, F, F, 0], SbcCommands.Read);
        Add(0x0A, "WRITE(6)", Out, [F, 0x1F, F, F, F, 0], SbcCommands.Write);
        Add(0x25, "READ CAPACITY(10)", In | Allowed, [F, 0, F, F, F, F, 0, 0, 0x01, 0], SbcCommands.ReadCapacity10);
        Add(0x28, "READ(10)", In, [F, 0xFE, F, F, F, F, G, F, F, 0], SbcCommands.Read);
        Add(0x2A, "WRITE(10)", Out, [F, 0xFA, F, F, F, F, G, F, F, 0], SbcCommands.Write);
        Add(0x2E, "WRITE AND VERIFY(10)", Out, [F, 0xF6, F, F, F, F, G, F, F, 0], SbcCommands.WriteAndVerify);
        Add(0x2F, "VERIFY(10)", Out | Read, [F, 0xF6, F, F, F, F, G, F, F, 0], SbcCommands.Verify);
        Add(0x34, "PRE-FETCH(10)", Medium | Read, [F, 0x02, F, F, F, F, G, F, F, 0], SbcCommands.PreFetch);
        Add(0x35, "SYNCHRONIZE CACHE(10)", Medium, [F, 0x06, F, F, F, F, G, F, F, 0], SbcCommands.SynchronizeCache);
        Add(0x88, "READ(16)", In, [F, 0xFE, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Read);
        Add(0x8A, "WRITE(16)", Out, [F, 0xFA, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Write);
        Add(0x8E, "WRITE AND VERIFY(16)", Out, [F, 0xF6, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.WriteAndVerify);
        Add(0x8F, "VERIFY(16)", Out | Read, [F, 0xF6, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Verify);
        Add(0x90, "PRE-FETCH(16)", Medium | Read, [F, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.PreFetch);
        Add(0x91, "SYNCHRONIZE CACHE(16)", Medium, [F, 0x06, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.SynchronizeCache);
        Add(0xA8, "READ(12)", In, [F, 0xFE, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Read);
        Add(0xAA, "WRITE(12)", Out, [F, 0xFA, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Write);
        Add(0xAE, "WRITE AND VERIFY(12)", Out, [F, 0xF6, F, F, F, F, F, F, F, F, G, 0], SbcCommands.WriteAndVerify);
        Add(0xAF, "VERIFY(12)", Out | Read, [F, 0xF6, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Verify);

        // FORMAT UNIT (SBC-3 5.3): no protection information, no defect list; zeros the medium.
        Add(0x04, "FORMAT UNIT", Medium | CommandFlags.DataOut, [F, 0xFF, 0, 0, 0, 0], FormatCommands.FormatUnit, 3600);

        // SANITIZE (SBC-3 5.27): OVERWRITE, BLOCK ERASE (thin LUs), EXIT FAILURE MODE.
        AddSa(SanitizeCommands.Opcode, SanitizeCommands.Overwrite, "SANITIZE / OVERWRITE", Out, [F, 0xA0, 0, 0, 0, 0, 0, F, F, 0], SanitizeCommands.Sanitize, 3600);
        AddSa(SanitizeCommands.Opcode, SanitizeCommands.BlockErase, "SANITIZE / BLOCK ERASE", Out | CommandFlags.NeedsThin, [F, 0xA0, 0, 0, 0, 0, 0, F, F, 0], SanitizeCommands.Sanitize, 3600);
        AddSa(SanitizeCommands.Opcode, SanitizeCommands.ExitFailureMode, "SANITIZE / EXIT FAILURE MODE", Out, [F, 0xA0, 0, 0, 0, 0, 0, F, F, 0], SanitizeCommands.Sanitize);

        // Defect data (SBC-3 5.11, 5.12): both lists are empty.
        Add(0x37, "READ DEFECT DATA(10)", In, [F, 0, 0x1F, 0, 0, 0, 0, F, F, 0], DefectCommands.ReadDefectData);
        Add(0xB7, "READ DEFECT DATA(12)", In, [F, 0x1F, F, F, F, F, F, F, F, F, 0, 0], DefectCommands.ReadDefectData);

        // Atomic read-modify-write commands (RangeLock exclusive holders).
        Add(0x89, "COMPARE AND WRITE", Out, [F, 0xFA, F, F, F, F, F, F, F, F, 0, 0, 0, F, G, 0], AtomicCommands.CompareAndWrite);
        Add(0x8B, "ORWRITE(16)", Out, [F, 0xFA, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], AtomicCommands.OrWrite);
        Add(0x9C, "WRITE ATOMIC(16)", Out, [F, 0xF8, F, F, F, F, F, F, F, F, 0, 0, F, F, G, 0], AtomicCommands.WriteAtomic);

        // Logical block provisioning (SBC-3 4.7). ANCHOR is not supported (ANC_SUP=0), so its
        // bit is reserved here and rejected by the usage check.
        Add(0x41, "WRITE SAME(10)", Out, [F, 0xE8, F, F, F, F, G, F, F, 0], ProvisioningCommands.WriteSame, 120);
        Add(0x42, "UNMAP", Out | CommandFlags.NeedsThin, [F, 0, 0, 0, 0, 0, G, F, F, 0], ProvisioningCommands.Unmap, 120);
        Add(0x93, "WRITE SAME(16)", Out, [F, 0xE9, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], ProvisioningCommands.WriteSame, 120);

        // SERVICE ACTION IN(16) (9Eh): READ CAPACITY(16) is service action 10h (SBC-3 5.16),
        // GET LBA STATUS 12h (SBC-3 5.4).
        AddSa(0x9E, 0x10, "READ CAPACITY(16)", In | Allowed, [F, 0, F, F, F, F, F, F, F, F, F, F, F, F, 0x01, 0], SbcCommands.ReadCapacity16);
        AddSa(0x9E, 0x12, "GET LBA STATUS", In, [F, 0, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0], ProvisioningCommands.GetLbaStatus);

        // MAINTENANCE IN (A3h): REPORT SUPPORTED OPERATION CODES is service action 0Ch (SPC-4 6.35).
        // REPORT TARGET PORT GROUPS is 0Ah (SPC-4 6.36): implicit ALUA, TPGS=01b.
        AddSa(0xA3, 0x0A, "REPORT TARGET PORT GROUPS", CommandFlags.DataIn | Allowed, [F, 0xE0, 0, 0, 0, 0, F, F, F, F, 0, 0], AluaCommands.ReportTargetPortGroups);
        AddSa(0xA3, 0x0C, "REPORT SUPPORTED OPERATION CODES", CommandFlags.DataIn | Allowed, [F, 0, 0x87, F, F, F, F, F, F, F, 0, 0], ReportSupportedOperationCodes.Execute);

        // Third-party copy (SPC-4 6.4, 6.18): EXTENDED COPY(LID1) and RECEIVE COPY RESULTS with
        // COPY STATUS, OPERATING PARAMETERS and FAILED SEGMENT DETAILS (no RECEIVE DATA: no
        // inline or embedded data output). Both conflict with any reservation (SPC-4 Table 46).
        AddSa(ExtendedCopyCommands.ExtendedCopyOpcode, 0x00, "EXTENDED COPY(LID1)", CommandFlags.DataOut, [F, 0, 0, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0], ExtendedCopyCommands.ExtendedCopy, 600);
        AddSa(ExtendedCopyCommands.ReceiveCopyResultsOpcode, ExtendedCopyCommands.CopyStatus, "RECEIVE COPY RESULTS / COPY STATUS", CommandFlags.DataIn, [F, 0, F, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0], ExtendedCopyCommands.ReceiveCopyResults);
        AddSa(ExtendedCopyCommands.ReceiveCopyResultsOpcode, ExtendedCopyCommands.OperatingParameters, "RECEIVE COPY RESULTS / OPERATING PARAMETERS", CommandFlags.DataIn, [F, 0, F, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0], ExtendedCopyCommands.ReceiveCopyResults);
        AddSa(ExtendedCopyCommands.ReceiveCopyResultsOpcode, ExtendedCopyCommands.FailedSegmentDetails, "RECEIVE COPY RESULTS / FAILED SEGMENT DETAILS", CommandFlags.DataIn, [F, 0, F, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0], ExtendedCopyCommands.ReceiveCopyResults);

        // Reservations (SPC-4 6.15, 6.16; SPC-2 7.21-7.24). The handlers apply their own rules.
        for (int sa = 0; sa <= 3; sa++)
        {
            AddSa(0x5E, sa, PrInNames[sa], CommandFlags.DataIn | Allowed, [F, 0, 0, 0, 0, 0, 0, F, F, 0], ReservationCommands.PersistentReserveIn);
        }
        for (int sa = 0; sa <= 7; sa++)
        {
            AddSa(0x5F, sa, PrOutNames[sa], CommandFlags.DataOut | Allowed, [F, 0, F, 0, 0, F, F, F, F, 0], ReservationCommands.PersistentReserveOut);
        }
        Add(0x16, "RESERVE(6)", Allowed, [F, 0, 0, 0, 0, 0], ReservationCommands.ReserveLegacy);
        Add(0x17, "RELEASE(6)", Allowed, [F, 0, 0, 0, 0, 0], ReservationCommands.ReleaseLegacy);
        Add(0x56, "RESERVE(10)", Allowed, [F, 0, 0, 0, 0, 0, 0, 0, 0, 0], ReservationCommands.ReserveLegacy);
        Add(0x57, "RELEASE(10)", Allowed, [F, 0, 0, 0, 0, 0, 0, 0, 0, 0], ReservationCommands.ReleaseLegacy);

        AllCommands.Sort(static (a, b) => a.Opcode != b.Opcode ? a.Opcode.CompareTo(b.Opcode) : a.ServiceAction.CompareTo(b.ServiceAction));
    }

    private const uint DefaultTimeoutSeconds = 30;

    private static readonly string[] PrInNames = ["PERSISTENT RESERVE IN / READ KEYS", "PERSISTENT RESERVE IN / READ RESERVATION", "PERSISTENT RESERVE IN / REPORT CAPABILITIES", "PERSISTENT RESERVE IN / READ FULL STATUS"];
    private static readonly string[] PrOutNames = ["PERSISTENT RESERVE OUT / REGISTER", "PERSISTENT RESERVE OUT / RESERVE", "PERSISTENT RESERVE OUT / RELEASE", "PERSISTENT RESERVE OUT / CLEAR", "PERSISTENT RESERVE OUT / PREEMPT", "PERSISTENT RESERVE OUT / PREEMPT AND ABORT", "PERSISTENT RESERVE OUT / REGISTER AND IGNORE EXISTING KEY", "PERSISTENT RESERVE OUT / REGISTER AND MOVE"];

    private static void Add(byte opcode, string name, CommandFlags flags, byte[] usage, CommandHandler handler, uint timeout = DefaultTimeoutSeconds)
    {
        usage[0] = opcode;
        var d = new CommandDescriptor(opcode, -1, name, flags, usage, handler, timeout);
        ByOpcode[opcode] = d;
        AllCommands.Add(d);
    }

    private static void AddSa(byte opcode, int sa, string name, CommandFlags flags, byte[] usage, CommandHandler handler, uint timeout = DefaultTimeoutSeconds)
    {
        // The dispatcher checks the SERVICE ACTION field itself; the usage data carries the
        // service action's value there, as REPORT SUPPORTED OPERATION CODES returns it (SPC-4 6.35.3).
        usage[0] = opcode;
        usage[1] = (byte)((usage[1] & 0xE0) | sa);
        var d = new CommandDescriptor(opcode, sa, name, flags, usage, handler, timeout);
        var table = ByServiceAction[opcode] ??= new CommandDescriptor?[32];
        table[sa] = d;
        AllCommands.Add(d);
    }

    /// <summary>True when the opcode uses a SERVICE ACTION field this table dispatches on.</summary>
    public static bool HasServiceActions(byte opcode) => ByServiceAction[opcode] is not null;

    /// <summary>The descriptor for an opcode without service actions.</summary>
    public static CommandDescriptor? ForOpcode(byte opcode) => ByOpcode[opcode];

    /// <summary>The descriptor for an opcode and service action.</summary>
    public static CommandDescriptor? ForServiceAction(byte opcode, int serviceAction) =>
        serviceAction is >= 0 and < 32 ? ByServiceAction[opcode]?[serviceAction] : null;

    /// <summary>Finds the descriptor for a CDB; null for an unsupported opcode or service action.</summary>
    public static CommandDescriptor? Lookup(ReadOnlySpan<byte> cdb)
    {
        byte op = cdb[0];
        var table = ByServiceAction[op];
        if (table is null)
        {
            return ByOpcode[op];
        }
        return cdb.Length < 2 ? null : table[cdb[1] & 0x1F];
    }
}
