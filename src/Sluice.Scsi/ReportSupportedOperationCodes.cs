using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>
/// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35), generated from <see cref="CommandTable"/> so
/// that what is advertised (opcode, service action, CDB length, usage data) is exactly what the
/// dispatcher accepts for this logical unit.
/// </summary>
internal static class ReportSupportedOperationCodes
{
    //  byte 1: SERVICE ACTION (0Ch)   byte 2: RCTD(7) REPORTING OPTIONS(2:0)
    //  byte 3: REQUESTED OPERATION CODE   bytes 4-5: REQUESTED SERVICE ACTION
    //  bytes 6-9: ALLOCATION LENGTH

    private const int TimeoutsDescriptorLength = 12;

    public static ValueTask<ScsiResponse> Execute(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        bool rctd = (cdb[2] & 0x80) != 0;
        int options = cdb[2] & 0x07;
        byte opcode = cdb[3];
        int serviceAction = BinaryPrimitives.ReadUInt16BigEndian(cdb[4..]);
        uint alloc = BinaryPrimitives.ReadUInt32BigEndian(cdb[6..]);
        int allocation = (int)Math.Min(alloc, int.MaxValue);

        if (options == 0)
        {
            return Responses.Done(AllCommands(request, unit, rctd, allocation));
        }
        CommandDescriptor? d;
        switch (options)
        {
            case 1:
                // 001b: the opcode alone; an opcode with service actions is an error (SPC-4 6.35.2).
                if (CommandTable.HasServiceActions(opcode))
                {
                    return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 3));
                }
                d = CommandTable.ForOpcode(opcode);
                break;
            case 2:
                // 010b: opcode and service action; an opcode without service actions is an error.
                if (!CommandTable.HasServiceActions(opcode))
                {
                    return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 3));
                }
                d = CommandTable.ForServiceAction(opcode, serviceAction);
                break;
            case 3:
                // 011b: either kind; for an opcode without service actions the REQUESTED
                // SERVICE ACTION must be zero for the command to be reported as supported.
                d = CommandTable.HasServiceActions(opcode)
                    ? CommandTable.ForServiceAction(opcode, serviceAction)
                    : serviceAction == 0 ? CommandTable.ForOpcode(opcode) : null;
                break;
            default:
                return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 2, 2));
        }
        if (d is not null && !d.IsAvailable(unit))
        {
            d = null;
        }
        return Responses.Done(OneCommand(request, d, rctd, allocation));
    }

    private static ScsiResponse AllCommands(ScsiRequest request, LogicalUnit unit, bool rctd, int allocation)
    {
        // All_commands parameter data (SPC-4 6.35.2, Table 232): COMMAND DATA LENGTH, then one
        // command descriptor per command (Table 233), each followed by a command timeouts
        // descriptor when RCTD=1.
        //  0: OPERATION CODE  2-3: SERVICE ACTION  5: CTDP(1) SERVACTV(0)  6-7: CDB LENGTH
        int each = 8 + (rctd ? TimeoutsDescriptorLength : 0);
        var all = CommandTable.All;
        int count = 0;
        foreach (var d in all)
        {
            if (d.IsAvailable(unit))
            {
                count++;
            }
        }
        int total = 4 + (count * each);
        var dest = request.DataIn.Span;
        int limit = Math.Min(Math.Min(allocation, dest.Length), total);
        Span<byte> entry = stackalloc byte[8 + TimeoutsDescriptorLength];
        BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)(total - 4));
        Put(dest, 0, entry[..4], limit);
        int p = 4;
        foreach (var d in all)
        {
            if (!d.IsAvailable(unit))
            {
                continue;
            }
            entry.Clear();
            entry[0] = d.Opcode;
            if (d.ServiceAction >= 0)
            {
                BinaryPrimitives.WriteUInt16BigEndian(entry[2..], (ushort)d.ServiceAction);
                entry[5] = 0x01;
            }
            if (rctd)
            {
                entry[5] |= 0x02;
                WriteTimeouts(entry[8..], d);
            }
            BinaryPrimitives.WriteUInt16BigEndian(entry[6..], (ushort)d.CdbLength);
            Put(dest, p, entry[..each], limit);
            p += each;
        }
        return Responses.Good(limit, -1);
    }

    private static ScsiResponse OneCommand(ScsiRequest request, CommandDescriptor? d, bool rctd, int allocation)
    {
        // One_command parameter data (SPC-4 6.35.3, Table 235):
        //  1: CTDP(7) SUPPORT(2:0)  2-3: CDB SIZE  4..: CDB USAGE DATA, then timeouts descriptor.
        Span<byte> b = stackalloc byte[4 + 32 + TimeoutsDescriptorLength];
        b.Clear();
        int length = 4;
        if (d is null)
        {
            b[1] = 0x01; // SUPPORT 001b: not supported
        }
        else
        {
            b[1] = 0x03; // SUPPORT 011b: supported in conformance with a SCSI standard
            BinaryPrimitives.WriteUInt16BigEndian(b[2..], (ushort)d.CdbLength);
            d.Usage.CopyTo(b[4..]);
            // The CONTROL byte's usage: NACA and LINK are not supported, only the vendor bits
            // would be, and they are not looked at either.
            b[4 + d.CdbLength - 1] = 0;
            length = 4 + d.CdbLength;
            if (rctd)
            {
                b[1] |= 0x80;
                WriteTimeouts(b[length..], d);
                length += TimeoutsDescriptorLength;
            }
        }
        return SpcCommands.CopyOut(request, b[..length], allocation);
    }

    private static void WriteTimeouts(Span<byte> t, CommandDescriptor d)
    {
        // Command timeouts descriptor (SPC-4 6.35.4, Table 237): DESCRIPTOR LENGTH 000Ah,
        // NOMINAL COMMAND PROCESSING TIMEOUT and RECOMMENDED COMMAND TIMEOUT in seconds.
        BinaryPrimitives.WriteUInt16BigEndian(t, 0x000A);
        t[2] = 0;
        t[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], 1);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], d.TimeoutSeconds);
    }

    private static void Put(Span<byte> dest, int offset, ReadOnlySpan<byte> src, int limit)
    {
        int n = Math.Min(src.Length, limit - offset);
        if (n > 0)
        {
            src[..n].CopyTo(dest[offset..]);
        }
    }
}
