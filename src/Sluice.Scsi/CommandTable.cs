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
}

/// <summary>
/// One supported command: opcode and service action, CDB length, handler, and the CDB usage
/// data (SPC-4 6.35.3: a one bit for every bit the device server looks at). Bytes 1..n-2 of
/// an incoming CDB are checked against the usage data; a set reserved bit is INVALID FIELD IN
/// CDB with a field pointer. The CONTROL byte is checked separately (NACA/LINK, SAM-5 5.2).
/// The same table will generate REPORT SUPPORTED OPERATION CODES data.
/// </summary>
internal sealed class CommandDescriptor(byte opcode, int serviceAction, string name, CommandFlags flags, byte[] usage, CommandHandler handler)
{
    public byte Opcode { get; } = opcode;
    /// <summary>-1 when the opcode has no service action.</summary>
    public int ServiceAction { get; } = serviceAction;
    public string Name { get; } = name;
    public CommandFlags Flags { get; } = flags;
    public byte[] Usage { get; } = usage;
    public int CdbLength => Usage.Length;
    public CommandHandler Handler { get; } = handler;

    /// <summary>Returns the first CDB byte/bit that sets a bit the usage data marks unused, or -1.</summary>
    public int FindReservedBit(ReadOnlySpan<byte> cdb, out int bit)
    {
        for (int i = 1; i < Usage.Length - 1; i++)
        {
            int bad = cdb[i] & ~Usage[i];
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
    private static readonly CommandDescriptor[] ServiceActionIn16;
    private static readonly List<CommandDescriptor> AllCommands = [];

    public static IReadOnlyList<CommandDescriptor> All => AllCommands;

    static CommandTable()
    {
        const CommandFlags Spc = CommandFlags.AnyLun | CommandFlags.IgnoresUnitAttention | CommandFlags.DataIn;
        const CommandFlags Medium = CommandFlags.NeedsMedium;
        const CommandFlags In = CommandFlags.NeedsMedium | CommandFlags.DataIn;
        const CommandFlags Out = CommandFlags.NeedsMedium | CommandFlags.DataOut;

        // SPC-4 primary commands.
        Add(0x00, "TEST UNIT READY", Medium, [F, 0, 0, 0, 0, 0], SpcCommands.TestUnitReady);
        Add(0x03, "REQUEST SENSE", Spc, [F, 0x01, 0, 0, F, 0], SpcCommands.RequestSense);
        Add(0x12, "INQUIRY", Spc, [F, 0x01, F, F, F, 0], SpcCommands.Inquiry);
        Add(0x15, "MODE SELECT(6)", CommandFlags.DataOut, [F, 0x11, 0, 0, F, 0], SpcCommands.ModeSelect);
        Add(0x1A, "MODE SENSE(6)", CommandFlags.DataIn, [F, 0x08, F, F, F, 0], SpcCommands.ModeSense);
        Add(0x1B, "START STOP UNIT", CommandFlags.None, [F, 0x01, 0, 0x0F, 0xF7, 0], SpcCommands.StartStopUnit);
        Add(0x1E, "PREVENT ALLOW MEDIUM REMOVAL", CommandFlags.None, [F, 0, 0, 0, 0x03, 0], SpcCommands.PreventAllowMediumRemoval);
        Add(0x55, "MODE SELECT(10)", CommandFlags.DataOut, [F, 0x11, 0, 0, 0, 0, 0, F, F, 0], SpcCommands.ModeSelect);
        Add(0x5A, "MODE SENSE(10)", CommandFlags.DataIn, [F, 0x18, F, F, 0, 0, 0, F, F, 0], SpcCommands.ModeSense);
        Add(0xA0, "REPORT LUNS", Spc, [F, 0, F, 0, 0, 0, F, F, F, F, 0, 0], SpcCommands.ReportLuns);

        // SBC-3 block commands.
        Add(0x08, "READ(6)", In, [F, 0x1F, F, F, F, 0], SbcCommands.Read);
        Add(0x0A, "WRITE(6)", Out, [F, 0x1F, F, F, F, 0], SbcCommands.Write);
        Add(0x25, "READ CAPACITY(10)", In, [F, 0, F, F, F, F, 0, 0, 0x01, 0], SbcCommands.ReadCapacity10);
        Add(0x28, "READ(10)", In, [F, 0xFE, F, F, F, F, G, F, F, 0], SbcCommands.Read);
        Add(0x2A, "WRITE(10)", Out, [F, 0xFA, F, F, F, F, G, F, F, 0], SbcCommands.Write);
        Add(0x2E, "WRITE AND VERIFY(10)", Out, [F, 0xF6, F, F, F, F, G, F, F, 0], SbcCommands.WriteAndVerify);
        Add(0x2F, "VERIFY(10)", Out, [F, 0xF6, F, F, F, F, G, F, F, 0], SbcCommands.Verify);
        Add(0x34, "PRE-FETCH(10)", Medium, [F, 0x02, F, F, F, F, G, F, F, 0], SbcCommands.PreFetch);
        Add(0x35, "SYNCHRONIZE CACHE(10)", Medium, [F, 0x06, F, F, F, F, G, F, F, 0], SbcCommands.SynchronizeCache);
        Add(0x88, "READ(16)", In, [F, 0xFE, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Read);
        Add(0x8A, "WRITE(16)", Out, [F, 0xFA, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Write);
        Add(0x8E, "WRITE AND VERIFY(16)", Out, [F, 0xF6, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.WriteAndVerify);
        Add(0x8F, "VERIFY(16)", Out, [F, 0xF6, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Verify);
        Add(0x90, "PRE-FETCH(16)", Medium, [F, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.PreFetch);
        Add(0x91, "SYNCHRONIZE CACHE(16)", Medium, [F, 0x06, F, F, F, F, F, F, F, F, F, F, F, F, G, 0], SbcCommands.SynchronizeCache);
        Add(0xA8, "READ(12)", In, [F, 0xFE, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Read);
        Add(0xAA, "WRITE(12)", Out, [F, 0xFA, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Write);
        Add(0xAE, "WRITE AND VERIFY(12)", Out, [F, 0xF6, F, F, F, F, F, F, F, F, G, 0], SbcCommands.WriteAndVerify);
        Add(0xAF, "VERIFY(12)", Out, [F, 0xF6, F, F, F, F, F, F, F, F, G, 0], SbcCommands.Verify);

        // SERVICE ACTION IN(16) (9Eh): READ CAPACITY(16) is service action 10h (SBC-3 5.16).
        ServiceActionIn16 =
        [
            Make(0x9E, 0x10, "READ CAPACITY(16)", In, [F, 0x1F, F, F, F, F, F, F, F, F, F, F, F, F, 0x01, 0], SbcCommands.ReadCapacity16),
        ];
        AllCommands.AddRange(ServiceActionIn16);
    }

    private static CommandDescriptor Make(byte opcode, int sa, string name, CommandFlags flags, byte[] usage, CommandHandler handler)
    {
        if (sa >= 0)
        {
            usage[1] = (byte)(usage[1] | 0x1F);
        }
        return new CommandDescriptor(opcode, sa, name, flags, usage, handler);
    }

    private static void Add(byte opcode, string name, CommandFlags flags, byte[] usage, CommandHandler handler)
    {
        var d = Make(opcode, -1, name, flags, usage, handler);
        ByOpcode[opcode] = d;
        AllCommands.Add(d);
    }

    /// <summary>True when the opcode uses a SERVICE ACTION field this table dispatches on.</summary>
    public static bool HasServiceActions(byte opcode) => opcode == 0x9E;

    /// <summary>Finds the descriptor for a CDB; null for an unsupported opcode or service action.</summary>
    public static CommandDescriptor? Lookup(ReadOnlySpan<byte> cdb)
    {
        byte op = cdb[0];
        if (op == 0x9E)
        {
            if (cdb.Length < 2)
            {
                return null;
            }
            int sa = cdb[1] & 0x1F;
            foreach (var d in ServiceActionIn16)
            {
                if (d.ServiceAction == sa)
                {
                    return d;
                }
            }
            return null;
        }
        return ByOpcode[op];
    }
}
