using System.Buffers.Binary;
using System.Text;

namespace Sluice.Scsi;

/// <summary>SPC-4 primary commands for a direct-access logical unit.</summary>
internal static class SpcCommands
{
    private const byte PeripheralDirectAccess = 0x00;
    /// <summary>SPC-4 6.6.2: peripheral qualifier 011b, device type 1Fh — no LU at this LUN.</summary>
    private const byte PeripheralNoUnit = 0x7F;

    // ---- TEST UNIT READY (SPC-4 6.47) -------------------------------------------------

    public static ValueTask<ScsiResponse> TestUnitReady(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken) =>
        Responses.Done(Responses.Good(0, -1)); // medium presence was checked by the dispatcher

    // ---- REQUEST SENSE (SPC-4 6.39) ---------------------------------------------------
    //  byte 1: DESC (bit 0)   byte 4: ALLOCATION LENGTH

    public static ValueTask<ScsiResponse> RequestSense(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var cdb = request.Cdb.Span;
        bool desc = (cdb[1] & 0x01) != 0;
        int alloc = cdb[4];
        Span<byte> sense = stackalloc byte[32];
        int n;
        if (lu is null)
        {
            n = SenseBuilder.Write(sense, desc, SenseKey.IllegalRequest, Asc.LogicalUnitNotSupported);
        }
        else if (nexus is not null && nexus.TryTake(out ushort ua))
        {
            // Reporting a unit attention through REQUEST SENSE clears it (SAM-5 5.14).
            n = SenseBuilder.Write(sense, desc, SenseKey.UnitAttention, ua);
        }
        else if (lu.BackgroundOperation is ushort busy and not 0)
        {
            n = SenseBuilder.Write(sense, desc, SenseKey.NotReady, busy);
        }
        else if (!lu.MediumPresent)
        {
            n = SenseBuilder.Write(sense, desc, SenseKey.NotReady, Asc.MediumNotPresent);
        }
        else
        {
            n = SenseBuilder.Write(sense, desc, SenseKey.NoSense, 0);
        }
        return Responses.Done(CopyOut(request, sense[..n], alloc));
    }

    // ---- INQUIRY (SPC-4 6.6) ----------------------------------------------------------
    //  byte 1: EVPD (bit 0)   byte 2: PAGE CODE   bytes 3-4: ALLOCATION LENGTH

    public static ValueTask<ScsiResponse> Inquiry(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var cdb = request.Cdb.Span;
        bool evpd = (cdb[1] & 0x01) != 0;
        byte page = cdb[2];
        int alloc = BinaryPrimitives.ReadUInt16BigEndian(cdb[3..]);
        if (!evpd && page != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, lu, 2));
        }
        Span<byte> buffer = stackalloc byte[1024];
        buffer.Clear();
        int length;
        if (!evpd)
        {
            length = StandardInquiry(buffer, lu);
        }
        else if (lu is null)
        {
            return Responses.Done(Responses.Check(request, null, SenseKey.IllegalRequest, Asc.LogicalUnitNotSupported));
        }
        else
        {
            length = page switch
            {
                0x00 => SupportedVpdPages(buffer),
                0x80 => UnitSerialNumber(buffer, lu, request.Nexus),
                0x83 => DeviceIdentification(buffer, lu, request.Nexus),
                0x8F => ThirdPartyCopy(buffer, lu),
                0xB0 => BlockLimits(buffer, lu),
                0xB1 => BlockDeviceCharacteristics(buffer, lu),
                0xB2 => LogicalBlockProvisioning(buffer, lu),
                _ => -1,
            };
            if (length < 0)
            {
                return Responses.Done(Responses.InvalidFieldInCdb(request, lu, 2));
            }
        }
        return Responses.Done(CopyOut(request, buffer[..length], alloc));
    }

    private static ReadOnlySpan<byte> VpdPages => [0x00, 0x80, 0x83, 0x8F, 0xB0, 0xB1, 0xB2];

    private static int StandardInquiry(Span<byte> b, LogicalUnit? lu)
    {
        //  0: PERIPHERAL QUALIFIER | DEVICE TYPE   1: RMB   2: VERSION (06h = SPC-4)
        //  3: NORMACA | HISUP | RESPONSE DATA FORMAT (2)   4: ADDITIONAL LENGTH
        //  5: SCCS ACC TPGS 3PC PROTECT   6: ENCSERV MULTIP   7: CMDQUE
        //  8-15 T10 VENDOR ID  16-31 PRODUCT ID  32-35 REVISION  58-73 VERSION DESCRIPTORS
        const int Length = 96;
        b[0] = lu is null ? PeripheralNoUnit : PeripheralDirectAccess;
        b[1] = (byte)(lu is { Removable: true } ? 0x80 : 0);
        b[2] = 0x06;
        b[3] = 0x12; // HISUP=1 (hierarchical LUNs in REPORT LUNS), RESPONSE DATA FORMAT=2
        b[4] = Length - 5;
        // TPGS=01b: implicit ALUA (REPORT TARGET PORT GROUPS; VPD 83h target port group).
        // 3PC=1: third-party copy (EXTENDED COPY, RECEIVE COPY RESULTS, VPD 8Fh).
        b[5] = 0x10 | 0x08;
        b[7] = 0x02; // CMDQUE: full task management model
        var options = lu?.Options;
        Ascii(b.Slice(8, 8), options?.Vendor ?? "SLUICE");
        Ascii(b.Slice(16, 16), options?.Product ?? "Sluice disk");
        Ascii(b.Slice(32, 4), options?.Revision ?? "0001");
        // Version descriptors (SPC-4 Table 146): SAM-5, iSCSI, SPC-4, SBC-3.
        BinaryPrimitives.WriteUInt16BigEndian(b[58..], 0x00A0);
        BinaryPrimitives.WriteUInt16BigEndian(b[60..], 0x0960);
        BinaryPrimitives.WriteUInt16BigEndian(b[62..], 0x0460);
        BinaryPrimitives.WriteUInt16BigEndian(b[64..], 0x04C0);
        return Length;
    }

    private static int SupportedVpdPages(Span<byte> b)
    {
        b[1] = 0x00;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], (ushort)VpdPages.Length);
        VpdPages.CopyTo(b[4..]);
        return 4 + VpdPages.Length;
    }

    private static int UnitSerialNumber(Span<byte> b, LogicalUnit lu, ITNexus nexus)
    {
        b[1] = 0x80;
        string serial = SerialNumber(lu, nexus);
        int n = Math.Min(serial.Length, 252);
        Ascii(b.Slice(4, n), serial);
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], (ushort)n);
        return 4 + n;
    }

    private static int ThirdPartyCopy(Span<byte> b, LogicalUnit lu)
    {
        // SPC-4 7.8.17: page header, then the third-party copy descriptors.
        b[1] = 0x8F;
        int n = ExtendedCopyCommands.ThirdPartyCopyDescriptors(b[4..], lu);
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], (ushort)n);
        return 4 + n;
    }

    internal static ulong NaaIdentifier(LogicalUnit lu, ITNexus nexus) => NaaIdentifier(lu, nexus.TargetName);

    /// <summary>
    /// The 16-byte NAA IEEE Registered Extended designator VPD page 83h reports for
    /// <paramref name="lu"/> of target <paramref name="targetName"/>.
    /// </summary>
    internal static void NaaDesignator(LogicalUnit lu, string targetName, Span<byte> destination)
    {
        ulong naa = NaaIdentifier(lu, targetName);
        BinaryPrimitives.WriteUInt64BigEndian(destination, (0x6UL << 60) | (naa >> 4));
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], naa);
    }

    internal static ulong NaaIdentifier(LogicalUnit lu, string targetName)
    {
        if (lu.Options.NaaIdentifier is ulong configured)
        {
            return configured;
        }
        // FNV-1a over target name and LUN: stable across restarts for the same configuration.
        ulong h = 14695981039346656037UL;
        foreach (char c in targetName)
        {
            h = (h ^ c) * 1099511628211UL;
        }
        for (int i = 0; i < 8; i++)
        {
            h = (h ^ (byte)(lu.Lun >> (8 * i))) * 1099511628211UL;
        }
        return h;
    }

    private static string SerialNumber(LogicalUnit lu, ITNexus nexus) =>
        lu.Options.SerialNumber ?? NaaIdentifier(lu, nexus).ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    private static int DeviceIdentification(Span<byte> b, LogicalUnit lu, ITNexus nexus)
    {
        // SPC-4 7.8.6. Designation descriptor header:
        //  0: PROTOCOL IDENTIFIER | CODE SET   1: PIV | ASSOCIATION | DESIGNATOR TYPE   3: LENGTH
        const byte ProtocolIscsi = 0x05;
        b[1] = 0x83;
        int p = 4;

        // NAA IEEE Registered Extended (NAA 6, SPC-4 7.8.6.6.5), associated with the LU.
        // The configured identifier supplies the IEEE COMPANY ID + VENDOR SPECIFIC IDENTIFIER
        // (the 60 bits after the NAA nibble) and the VENDOR SPECIFIC IDENTIFIER EXTENSION.
        b[p] = 0x01; // binary
        b[p + 1] = 0x03; // LU, NAA
        b[p + 3] = 16;
        NaaDesignator(lu, nexus.TargetName, b.Slice(p + 4, 16));
        p += 20;

        // T10 vendor ID based (type 1): vendor + serial, ASCII.
        string serial = SerialNumber(lu, nexus);
        int serialLength = Math.Min(serial.Length, 64);
        b[p] = 0x02;
        b[p + 1] = 0x01;
        b[p + 3] = (byte)(8 + serialLength);
        Ascii(b.Slice(p + 4, 8), lu.Options.Vendor);
        Ascii(b.Slice(p + 12, serialLength), serial);
        p += 4 + 8 + serialLength;

        // Relative target port identifier (type 4), associated with the target port.
        b[p] = (ProtocolIscsi << 4) | 0x01;
        b[p + 1] = 0x80 | 0x10 | 0x04;
        b[p + 3] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 6)..], nexus.RelativeTargetPortId);
        p += 8;

        // Target port group (type 5).
        b[p] = (ProtocolIscsi << 4) | 0x01;
        b[p + 1] = 0x80 | 0x10 | 0x05;
        b[p + 3] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 6)..], nexus.TargetPortGroup);
        p += 8;

        // SCSI name strings (type 8, UTF-8, null-terminated, padded to a multiple of 4):
        // the target port ("iqn...,t,0x0001", association 01b) and the target device (10b).
        p += NameString(b[p..], nexus.TargetPortName, 0x10);
        p += NameString(b[p..], nexus.TargetName, 0x20);

        BinaryPrimitives.WriteUInt16BigEndian(b[2..], (ushort)(p - 4));
        return p;

        static int NameString(Span<byte> d, string name, byte association)
        {
            int max = 252; // keep each designator within its one-byte length
            int count = Math.Min(Encoding.UTF8.GetByteCount(name), max - 1);
            int padded = (count + 1 + 3) & ~3;
            d[0] = (ProtocolIscsi << 4) | 0x03;
            d[1] = (byte)(0x80 | association | 0x08);
            d[3] = (byte)padded;
            var body = d.Slice(4, padded);
            body.Clear();
            Encoding.UTF8.GetBytes(name.AsSpan(0, Math.Min(name.Length, count)), body);
            return 4 + padded;
        }
    }

    private static int BlockLimits(Span<byte> b, LogicalUnit lu)
    {
        // SBC-3 6.5.3, page length 3Ch.
        b[1] = 0xB0;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], 0x3C);
        b[5] = lu.MaxCompareAndWriteBlocks;                                   // MAXIMUM COMPARE AND WRITE LENGTH
        BinaryPrimitives.WriteUInt16BigEndian(b[6..], 1);                     // OPTIMAL TRANSFER LENGTH GRANULARITY
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], lu.MaxTransferBlocks); // MAXIMUM TRANSFER LENGTH
        BinaryPrimitives.WriteUInt32BigEndian(b[12..], lu.MaxTransferBlocks); // OPTIMAL TRANSFER LENGTH
        if (lu.ThinProvisioned)
        {
            BinaryPrimitives.WriteUInt32BigEndian(b[20..], lu.MaxUnmapBlocks);               // MAXIMUM UNMAP LBA COUNT
            BinaryPrimitives.WriteUInt32BigEndian(b[24..], LogicalUnit.MaxUnmapDescriptors); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
            BinaryPrimitives.WriteUInt32BigEndian(b[28..], lu.UnmapGranularityBlocks);       // OPTIMAL UNMAP GRANULARITY
            b[32] = 0x80;                                                                    // UGAVALID, UNMAP GRANULARITY ALIGNMENT 0
        }
        // WSNZ=0: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 means "to the last LBA", within
        // MAXIMUM WRITE SAME LENGTH.
        BinaryPrimitives.WriteUInt64BigEndian(b[36..], lu.MaxWriteSameBlocks);              // MAXIMUM WRITE SAME LENGTH
        // WRITE ATOMIC(16) (SBC-4 6.6.4): any aligned LBA, any length up to the maximum, no
        // atomic boundaries (MAXIMUM ATOMIC BOUNDARY SIZE 0).
        BinaryPrimitives.WriteUInt32BigEndian(b[44..], lu.MaxAtomicBlocks);                 // MAXIMUM ATOMIC TRANSFER LENGTH
        BinaryPrimitives.WriteUInt32BigEndian(b[48..], 1);                                  // ATOMIC ALIGNMENT
        BinaryPrimitives.WriteUInt32BigEndian(b[52..], 1);                                  // ATOMIC TRANSFER LENGTH GRANULARITY
        return 0x40;
    }

    private static int BlockDeviceCharacteristics(Span<byte> b, LogicalUnit lu)
    {
        // SBC-3 6.5.2: MEDIUM ROTATION RATE 0001h = non-rotating medium.
        b[1] = 0xB1;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], 0x3C);
        BinaryPrimitives.WriteUInt16BigEndian(b[4..], 0x0001);
        // byte 7: WABEREQ(7:6) WACEREQ(5:4). SANITIZE BLOCK ERASE is offered on thin LUs only,
        // and a read after it succeeds with zeros (WABEREQ 01b); CRYPTOGRAPHIC ERASE is not
        // supported (WACEREQ 00b).
        b[7] = (byte)(lu.ThinProvisioned ? 0x40 : 0x00);
        return 0x40;
    }

    private static int LogicalBlockProvisioning(Span<byte> b, LogicalUnit lu)
    {
        // SBC-3 6.5.4. byte 4: THRESHOLD EXPONENT
        //  byte 5: LBPU(7) LBPWS(6) LBPWS10(5) LBPRZ(2) ANC_SUP(1) DP(0)
        //  byte 6: PROVISIONING TYPE(2:0): 000b fully provisioned, 010b thin provisioned
        b[1] = 0xB2;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], 0x0004);
        if (lu.ThinProvisioned)
        {
            // UNMAP, WRITE SAME(16) and WRITE SAME(10) with UNMAP=1 deallocate; deallocated
            // blocks read as zeros. No anchored state (ANC_SUP=0), no threshold events.
            b[5] = 0x80 | 0x40 | 0x20 | 0x04;
            b[6] = 0x02;
        }
        return 8;
    }

    // ---- REPORT LUNS (SPC-4 6.33) -----------------------------------------------------
    //  byte 2: SELECT REPORT   bytes 6-9: ALLOCATION LENGTH

    public static ValueTask<ScsiResponse> ReportLuns(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var cdb = request.Cdb.Span;
        byte select = cdb[2];
        uint alloc = BinaryPrimitives.ReadUInt32BigEndian(cdb[6..]);
        if (select > 2)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, lu, 2));
        }
        if (alloc < 16)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, lu, 6));
        }
        // SELECT REPORT 01h lists only well-known LUs, of which there are none.
        var units = target.Units;
        int count = select == 1 ? 0 : units.Count;
        int total = 8 + (8 * count);
        var dest = request.DataIn.Span;
        int limit = (int)Math.Min(Math.Min(alloc, (uint)dest.Length), (uint)total);
        Span<byte> entry = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)(8 * count));
        BinaryPrimitives.WriteUInt32BigEndian(entry[4..], 0);
        Put(dest, 0, entry, limit);
        for (int i = 0; i < count; i++)
        {
            LunAddressing.Write(entry, units[i].Lun);
            Put(dest, 8 + (8 * i), entry, limit);
        }
        return Responses.Done(Responses.Good(limit, -1));

        static void Put(Span<byte> dest, int offset, ReadOnlySpan<byte> src, int limit)
        {
            int n = Math.Min(src.Length, limit - offset);
            if (n > 0)
            {
                src[..n].CopyTo(dest[offset..]);
            }
        }
    }

    // ---- MODE SENSE(6)/(10) (SPC-4 6.11, 6.12) ---------------------------------------
    //  (6)  byte 1: DBD(3)            byte 2: PC(7:6) PAGE CODE(5:0)  byte 3: SUBPAGE  byte 4: ALLOC
    //  (10) byte 1: LLBAA(4) DBD(3)   byte 2, 3 as above              bytes 7-8: ALLOC

    public static ValueTask<ScsiResponse> ModeSense(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        bool ten = cdb[0] == 0x5A;
        bool dbd = (cdb[1] & 0x08) != 0;
        bool llbaa = ten && (cdb[1] & 0x10) != 0;
        int pc = cdb[2] >> 6;
        byte page = (byte)(cdb[2] & 0x3F);
        byte subpage = cdb[3];
        int alloc = ten ? BinaryPrimitives.ReadUInt16BigEndian(cdb[7..]) : cdb[4];

        if (pc == 3)
        {
            return Responses.Done(Responses.Check(request, unit.DescriptorSense, SenseKey.IllegalRequest, Asc.SavingParametersNotSupported, new FieldPointer(2, 7, true)));
        }
        if (page != ModePages.AllPages && !ModePages.IsSupported(page))
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 2, 5));
        }
        // No subpages are implemented: subpage 00h, or FFh ("all subpages") which then
        // returns just the subpage-0 page(s).
        if (subpage != 0x00 && subpage != 0xFF)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 3));
        }

        Span<byte> b = stackalloc byte[256];
        b.Clear();
        int header = ten ? 8 : 4;
        int p = header;
        // Device-specific parameter (SBC-3 6.4.1): WP, and DPOFUA=1 (DPO and FUA honoured).
        byte deviceSpecific = (byte)((unit.WriteProtected ? 0x80 : 0) | 0x10);
        int blockDescriptorLength = 0;
        if (!dbd)
        {
            bool changeable = pc == 1;
            ulong blocks = changeable ? 0 : (ulong)unit.BlockCount;
            uint blockLength = changeable ? 0 : (uint)unit.BlockSize;
            if (llbaa)
            {
                // Long LBA block descriptor (SBC-3 6.4.2.3).
                BinaryPrimitives.WriteUInt64BigEndian(b[p..], blocks);
                BinaryPrimitives.WriteUInt32BigEndian(b[(p + 12)..], blockLength);
                blockDescriptorLength = 16;
            }
            else
            {
                // Short LBA block descriptor (SBC-3 6.4.2.2); FFFFFFFFh when it does not fit.
                BinaryPrimitives.WriteUInt32BigEndian(b[p..], blocks > uint.MaxValue ? uint.MaxValue : (uint)blocks);
                BinaryPrimitives.WriteUInt32BigEndian(b[(p + 4)..], blockLength & 0x00FF_FFFF);
                blockDescriptorLength = 8;
            }
            p += blockDescriptorLength;
        }
        lock (unit.ModeGate)
        {
            if (page == ModePages.AllPages)
            {
                foreach (byte code in ModePages.All)
                {
                    ModePages.Copy(unit, code, pc, b[p..]);
                    p += ModePages.Length(code);
                }
            }
            else
            {
                ModePages.Copy(unit, page, pc, b[p..]);
                p += ModePages.Length(page);
            }
        }
        if (ten)
        {
            BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)(p - 2));
            b[3] = deviceSpecific;
            b[4] = (byte)(llbaa && !dbd ? 0x01 : 0); // LONGLBA
            BinaryPrimitives.WriteUInt16BigEndian(b[6..], (ushort)blockDescriptorLength);
        }
        else
        {
            b[0] = (byte)(p - 1);
            b[2] = deviceSpecific;
            b[3] = (byte)blockDescriptorLength;
        }
        return Responses.Done(CopyOut(request, b[..p], alloc));
    }

    // ---- MODE SELECT(6)/(10) (SPC-4 6.9, 6.10) ---------------------------------------
    //  (6)  byte 1: PF(4) SP(0)   byte 4: PARAMETER LIST LENGTH
    //  (10) byte 1: PF(4) SP(0)   bytes 7-8: PARAMETER LIST LENGTH

    public static ValueTask<ScsiResponse> ModeSelect(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        bool ten = cdb[0] == 0x55;
        int listLength = ten ? BinaryPrimitives.ReadUInt16BigEndian(cdb[7..]) : cdb[4];
        if ((cdb[1] & 0x01) != 0)
        {
            // SP=1: this device server has no saved pages.
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 0));
        }
        if (listLength == 0)
        {
            return Responses.Done(Responses.Good(0, 0));
        }
        if ((cdb[1] & 0x10) == 0)
        {
            // PF=0 would mean vendor-specific page formats; only SPC-4 pages are understood.
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 4));
        }
        var data = request.DataOut.Span;
        int header = ten ? 8 : 4;
        if (data.Length < listLength || listLength < header)
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
        }
        data = data[..listLength];
        int bdl = ten ? BinaryPrimitives.ReadUInt16BigEndian(data[6..]) : data[3];
        bool longLba = ten && (data[4] & 0x01) != 0;
        if (header + bdl > listLength)
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
        }
        if (bdl != 0)
        {
            int expected = longLba ? 16 : 8;
            if (bdl != expected)
            {
                return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, ten ? 6 : 3));
            }
            // The block length cannot change (SBC-3 6.4.2); zero means "unchanged".
            int lengthOffset = header + (longLba ? 12 : 5);
            uint blockLength = longLba
                ? BinaryPrimitives.ReadUInt32BigEndian(data[lengthOffset..])
                : (uint)((data[lengthOffset] << 16) | (data[lengthOffset + 1] << 8) | data[lengthOffset + 2]);
            if (blockLength != 0 && blockLength != (uint)unit.BlockSize)
            {
                return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, lengthOffset));
            }
        }

        int first = header + bdl;
        bool changed = false;
        lock (unit.ModeGate)
        {
            // Pass 1 validates every page, pass 2 applies: a bad list changes nothing (SPC-4 6.9).
            for (int pass = 0; pass < 2; pass++)
            {
                int p = first;
                while (p < listLength)
                {
                    if (p + 2 > listLength)
                    {
                        return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
                    }
                    byte code = (byte)(data[p] & 0x3F);
                    if ((data[p] & 0x80) != 0)
                    {
                        return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, p, 7)); // PS is reserved in MODE SELECT
                    }
                    if ((data[p] & 0x40) != 0 || !ModePages.IsSupported(code))
                    {
                        return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, p, (data[p] & 0x40) != 0 ? 6 : 5));
                    }
                    int length = ModePages.Length(code);
                    if (data[p + 1] != length - 2)
                    {
                        return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, p + 1));
                    }
                    if (p + length > listLength)
                    {
                        return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
                    }
                    var incoming = data.Slice(p, length);
                    var current = ModePages.Current(unit, code);
                    var changeable = ModePages.Changeable(code);
                    for (int i = 2; i < length; i++)
                    {
                        int fixedBits = (incoming[i] ^ current[i]) & ~changeable[i];
                        if (fixedBits != 0)
                        {
                            return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, p + i, 31 - int.LeadingZeroCount(fixedBits)));
                        }
                        if (pass == 1)
                        {
                            byte next = (byte)((current[i] & ~changeable[i]) | (incoming[i] & changeable[i]));
                            changed |= next != current[i];
                            current[i] = next;
                        }
                    }
                    p += length;
                }
            }
            unit.ApplyModePages();
        }
        if (changed)
        {
            // SPC-4 7.5.? / SAM-5 5.14: other I_T nexuses learn of it by MODE PARAMETERS CHANGED.
            unit.RaiseUnitAttention(Asc.ModeParametersChanged, except: request.Nexus);
        }
        return Responses.Done(Responses.Good(0, listLength));
    }

    // ---- START STOP UNIT (SBC-3 5.25) --------------------------------------------------
    //  byte 1: IMMED(0)  byte 3: POWER CONDITION MODIFIER  byte 4: POWER CONDITION(7:4) NO_FLUSH(2) LOEJ(1) START(0)

    public static ValueTask<ScsiResponse> StartStopUnit(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        int powerCondition = cdb[4] >> 4;
        bool noFlush = (cdb[4] & 0x04) != 0;
        bool loej = (cdb[4] & 0x02) != 0;
        bool start = (cdb[4] & 0x01) != 0;
        if (powerCondition != 0)
        {
            // SBC-3 5.25: with a POWER CONDITION other than START_VALID the START and LOEJ bits
            // are ignored. There are no power conditions to enter, so nothing changes.
            return Responses.Done(Responses.Good(0, -1));
        }
        if (loej)
        {
            if (!unit.Removable)
            {
                return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 4, 1));
            }
            // SPC-4 6.13 / SBC-3 5.25: while any nexus prevents removal, neither eject nor
            // load is allowed (libiscsi PreventAllow.Eject expects both to fail).
            if (unit.RemovalPrevented)
            {
                return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.MediumRemovalPrevented));
            }
        }
        bool flush = !start && !noFlush && unit.MediumPresent;
        if (!flush)
        {
            Finish(unit, loej, start);
            return Responses.Done(Responses.Good(0, -1));
        }
        return StopAsync(target, unit, request, loej, cancellationToken);

        static void Finish(LogicalUnit unit, bool loej, bool start)
        {
            // A stopped (LOEJ=0, START=0) unit stays ready: there is no spindle, and libiscsi's
            // StartStopUnit.NoLoej expects TEST UNIT READY to keep succeeding.
            if (loej)
            {
                unit.MediumPresent = start;
            }
        }

        static async ValueTask<ScsiResponse> StopAsync(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, bool loej, CancellationToken cancellationToken)
        {
            try
            {
                // Stopping or ejecting writes back the cache first unless NO_FLUSH=1.
                await unit.Device.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "START STOP UNIT", ex);
                return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
            }
            Finish(unit, loej, start: false);
            return Responses.Good(0, -1);
        }
    }

    // ---- PREVENT ALLOW MEDIUM REMOVAL (SPC-4 6.13) -----------------------------------
    //  byte 4: PREVENT(1:0)

    public static ValueTask<ScsiResponse> PreventAllowMediumRemoval(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        int prevent = request.Cdb.Span[4] & 0x03;
        if (prevent > 1)
        {
            // 10b and 11b are obsolete (medium changer) values.
            return Responses.Done(Responses.InvalidFieldInCdb(request, lu, 4, 1));
        }
        // Recorded per I_T nexus (SPC-4 6.13). For a non-removable LU the state is kept but
        // has no effect: its medium cannot be removed anyway.
        nexus!.Prevent = prevent == 1;
        return Responses.Done(Responses.Good(0, -1));
    }

    // ---- helpers ----------------------------------------------------------------------

    /// <summary>
    /// Copies parameter data truncated to the allocation length and to the initiator's
    /// buffer (SPC-4 4.2.5.6); the transfer length is left to the transport (-1).
    /// </summary>
    internal static ScsiResponse CopyOut(ScsiRequest request, ReadOnlySpan<byte> data, int allocationLength)
    {
        var dest = request.DataIn.Span;
        int n = Math.Min(Math.Min(data.Length, allocationLength), dest.Length);
        data[..n].CopyTo(dest);
        return Responses.Good(n, -1);
    }

    private static void Ascii(Span<byte> destination, string text)
    {
        // SPC-4 4.3.1: printable ASCII (20h-7Eh), left aligned, space padded.
        destination.Fill((byte)' ');
        int n = Math.Min(destination.Length, text.Length);
        for (int i = 0; i < n; i++)
        {
            char c = text[i];
            destination[i] = c is >= ' ' and <= '~' ? (byte)c : (byte)'?';
        }
    }
}
