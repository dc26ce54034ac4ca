using System.Buffers.Binary;
using System.Text;

namespace Sluice.Initiator;

/// <summary>A range of logical blocks.</summary>
/// <param name="Lba">First block.</param>
/// <param name="Blocks">Number of blocks.</param>
public readonly record struct BlockRange(long Lba, long Blocks);

/// <summary>One LBA status descriptor of GET LBA STATUS (SBC-3 §5.7.3).</summary>
/// <param name="Lba">First block the descriptor covers.</param>
/// <param name="Blocks">Number of blocks it covers.</param>
/// <param name="ProvisioningStatus">0 mapped, 1 deallocated, 2 anchored.</param>
public readonly record struct LbaStatus(long Lba, long Blocks, int ProvisioningStatus)
{
    /// <summary>PROVISIONING STATUS 1: deallocated (reads zeros when the unit reports LBPRZ).</summary>
    public bool Deallocated => ProvisioningStatus == 1;
}

/// <summary>READ CAPACITY data (SBC-3 §5.15, §5.16).</summary>
/// <param name="BlockCount">Number of logical blocks.</param>
/// <param name="BlockSize">Logical block length in bytes.</param>
/// <param name="PhysicalBlockExponent">Logical blocks per physical block, as a power of two.</param>
/// <param name="ThinProvisioned">LBPME: the unit supports logical block provisioning management (UNMAP).</param>
/// <param name="ReadsZerosAfterUnmap">LBPRZ: unmapped blocks read as zeros.</param>
public sealed record Capacity(long BlockCount, int BlockSize, int PhysicalBlockExponent, bool ThinProvisioned, bool ReadsZerosAfterUnmap)
{
    /// <summary>Capacity in bytes.</summary>
    public long Bytes => BlockCount * BlockSize;

    internal static Capacity Parse10(ReadOnlySpan<byte> d) =>
        new((long)BinaryPrimitives.ReadUInt32BigEndian(d) + 1, (int)BinaryPrimitives.ReadUInt32BigEndian(d[4..]), 0, false, false);

    internal static Capacity Parse16(ReadOnlySpan<byte> d) =>
        new((long)BinaryPrimitives.ReadUInt64BigEndian(d) + 1, (int)BinaryPrimitives.ReadUInt32BigEndian(d[8..]),
            d[13] & 0x0f, (d[14] & 0x80) != 0, (d[14] & 0x40) != 0);
}

/// <summary>Standard INQUIRY data (SPC-4 §6.6.2).</summary>
/// <param name="PeripheralQualifier">0 = a unit is connected at this LUN.</param>
/// <param name="DeviceType">Peripheral device type (0 = direct-access block device, 0x0c = storage array controller).</param>
/// <param name="Removable">RMB bit.</param>
/// <param name="Version">SPC version claimed.</param>
/// <param name="Vendor">T10 vendor identification.</param>
/// <param name="Product">Product identification.</param>
/// <param name="Revision">Product revision level.</param>
/// <param name="ThirdPartyCopy">3PC bit: EXTENDED COPY supported.</param>
public sealed record StandardInquiry(int PeripheralQualifier, int DeviceType, bool Removable, int Version,
    string Vendor, string Product, string Revision, bool ThirdPartyCopy)
{
    /// <summary>Decodes standard INQUIRY data (at least 36 bytes).</summary>
    public static StandardInquiry Parse(ReadOnlySpan<byte> d)
    {
        if (d.Length < 36)
        {
            throw new FormatException($"standard INQUIRY data is {d.Length} bytes, fewer than 36");
        }

        return new StandardInquiry(d[0] >> 5, d[0] & 0x1f, (d[1] & 0x80) != 0, d[2],
            Ascii(d[8..16]), Ascii(d[16..32]), Ascii(d[32..36]), (d[5] & 0x08) != 0);
    }

    /// <summary>Name of a peripheral device type.</summary>
    public static string DescribeDeviceType(int type) => type switch
    {
        0x00 => "Direct-access block device",
        0x01 => "Sequential-access device",
        0x05 => "CD/DVD device",
        0x07 => "Optical memory device",
        0x08 => "Media changer",
        0x0c => "Storage array controller",
        0x0d => "Enclosure services device",
        0x1f => "Unknown or no device type",
        _ => "Device type 0x" + type.ToString("x2", System.Globalization.CultureInfo.InvariantCulture),
    };

    internal static string Ascii(ReadOnlySpan<byte> d) => Encoding.ASCII.GetString(d).TrimEnd(' ', '\0');
}

/// <summary>Block Limits VPD page B0h (SBC-3 §6.5.3).</summary>
/// <param name="MaxTransferBlocks">MAXIMUM TRANSFER LENGTH, 0 = not reported.</param>
/// <param name="OptimalTransferBlocks">OPTIMAL TRANSFER LENGTH.</param>
/// <param name="MaxUnmapBlocks">MAXIMUM UNMAP LBA COUNT.</param>
/// <param name="MaxUnmapDescriptors">MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.</param>
/// <param name="MaxWriteSameBlocks">MAXIMUM WRITE SAME LENGTH.</param>
/// <param name="MaxCompareAndWriteBlocks">MAXIMUM COMPARE AND WRITE LENGTH.</param>
public sealed record BlockLimits(long MaxTransferBlocks, long OptimalTransferBlocks, long MaxUnmapBlocks, long MaxUnmapDescriptors,
    long MaxWriteSameBlocks, int MaxCompareAndWriteBlocks)
{
    /// <summary>Decodes the page (with its 4-byte header).</summary>
    public static BlockLimits Parse(ReadOnlySpan<byte> d)
    {
        return new BlockLimits(U32(d, 8), U32(d, 12), U32(d, 20), U32(d, 24), (long)Math.Min(U64(d, 36), long.MaxValue), d.Length > 5 ? d[5] : 0);
    }

    private static uint U32(ReadOnlySpan<byte> d, int o) => d.Length >= o + 4 ? BinaryPrimitives.ReadUInt32BigEndian(d[o..]) : 0;

    private static ulong U64(ReadOnlySpan<byte> d, int o) => d.Length >= o + 8 ? BinaryPrimitives.ReadUInt64BigEndian(d[o..]) : 0;
}

/// <summary>Logical Block Provisioning VPD page B2h (SBC-3 §6.5.4).</summary>
/// <param name="Unmap">LBPU: UNMAP is supported.</param>
/// <param name="WriteSame16Unmap">LBPWS: WRITE SAME(16) with UNMAP is supported.</param>
/// <param name="WriteSame10Unmap">LBPWS10: WRITE SAME(10) with UNMAP is supported.</param>
/// <param name="ReadZeros">LBPRZ: unmapped blocks read as zeros.</param>
/// <param name="ProvisioningType">0 = not reported/full, 1 = resource provisioned, 2 = thin.</param>
public sealed record LogicalBlockProvisioning(bool Unmap, bool WriteSame16Unmap, bool WriteSame10Unmap, bool ReadZeros, int ProvisioningType)
{
    /// <summary>Decodes the page (with its 4-byte header).</summary>
    public static LogicalBlockProvisioning Parse(ReadOnlySpan<byte> d)
    {
        byte flags = d.Length > 5 ? d[5] : (byte)0;
        int type = d.Length > 6 ? d[6] & 7 : 0;
        // LBPRZ is bit 2 of byte 5 (SBC-3 r35: one bit; SBC-4 widens it to a 3-bit field at bits 4..2).
        return new LogicalBlockProvisioning((flags & 0x80) != 0, (flags & 0x40) != 0, (flags & 0x20) != 0, (flags & 0x1c) != 0, type);
    }
}

/// <summary>One designator of the Device Identification VPD page 83h (SPC-4 §7.8.6).</summary>
/// <param name="CodeSet">1 binary, 2 ASCII, 3 UTF-8.</param>
/// <param name="Type">Designator type (1 T10 vendor, 2 EUI-64, 3 NAA, 8 SCSI name string, ...).</param>
/// <param name="Association">0 logical unit, 1 target port, 2 target device.</param>
/// <param name="Value">Designator bytes.</param>
public sealed record Designator(int CodeSet, int Type, int Association, byte[] Value)
{
    /// <summary>Readable form: text for ASCII/UTF-8, hex otherwise.</summary>
    public override string ToString() => (Type switch
    {
        1 => "T10 vendor ID",
        2 => "EUI-64",
        3 => "NAA",
        4 => "relative target port",
        5 => "target port group",
        8 => "SCSI name",
        _ => "type " + Type.ToString(System.Globalization.CultureInfo.InvariantCulture),
    }) + ": " + (CodeSet is 2 or 3 ? Encoding.UTF8.GetString(Value).TrimEnd('\0', ' ') : "0x" + Convert.ToHexStringLower(Value));

    /// <summary>Decodes page 83h (with its 4-byte header).</summary>
    public static IReadOnlyList<Designator> ParsePage(ReadOnlySpan<byte> d)
    {
        var list = new List<Designator>();
        if (d.Length < 4)
        {
            return list;
        }

        int end = Math.Min(d.Length, 4 + BinaryPrimitives.ReadUInt16BigEndian(d[2..]));
        for (int o = 4; o + 4 <= end;)
        {
            int len = d[o + 3];
            if (o + 4 + len > end)
            {
                break;
            }

            list.Add(new Designator(d[o] & 0x0f, d[o + 1] & 0x0f, (d[o + 1] >> 4) & 3, d.Slice(o + 4, len).ToArray()));
            o += 4 + len;
        }

        return list;
    }
}

/// <summary>Everything a command needs, passed by reference down the submission path.</summary>
internal readonly struct CommandRequest(ulong lun, Cdb16 cdb, int cdbLength, ReadOnlyMemory<byte> dataOut, Memory<byte> dataIn,
    IReadOnlyList<Memory<byte>>? dataInList, int dataInLength, bool block, bool checkShortRead)
{
    public readonly ulong Lun = lun;
    public readonly Cdb16 Cdb = cdb;
    public readonly int CdbLength = cdbLength;
    public readonly ReadOnlyMemory<byte> DataOut = dataOut;
    public readonly Memory<byte> DataIn = dataIn;
    public readonly IReadOnlyList<Memory<byte>>? DataInList = dataInList;
    public readonly int DataInLength = dataInLength;
    public readonly bool Block = block;
    public readonly bool CheckShortRead = checkShortRead;
}

/// <summary>CDB builders (SPC-4, SBC-3), big-endian fields.</summary>
internal static class Cdbs
{
    public const byte TestUnitReady = 0x00;
    public const byte Inquiry = 0x12;
    public const byte ReadCapacity10 = 0x25;
    public const byte Read10 = 0x28;
    public const byte Write10 = 0x2A;
    public const byte SynchronizeCache10 = 0x35;
    public const byte WriteSame10 = 0x41;
    public const byte Unmap = 0x42;
    public const byte Read16 = 0x88;
    public const byte CompareAndWrite = 0x89;
    public const byte Write16 = 0x8A;
    public const byte SynchronizeCache16 = 0x91;
    public const byte WriteSame16 = 0x93;
    public const byte ServiceActionIn16 = 0x9E;
    public const byte ReportLuns = 0xA0;

    public static int ReadWrite(Span<byte> cdb, bool write, long lba, int blocks, bool fua)
    {
        if ((ulong)lba + (ulong)blocks <= 0xFFFF_FFFFUL && blocks <= 0xFFFF)
        {
            cdb[0] = write ? Write10 : Read10;
            cdb[1] = fua ? (byte)0x08 : (byte)0;
            BinaryPrimitives.WriteUInt32BigEndian(cdb[2..], (uint)lba);
            BinaryPrimitives.WriteUInt16BigEndian(cdb[7..], (ushort)blocks);
            return 10;
        }

        cdb[0] = write ? Write16 : Read16;
        cdb[1] = fua ? (byte)0x08 : (byte)0;
        BinaryPrimitives.WriteUInt64BigEndian(cdb[2..], (ulong)lba);
        BinaryPrimitives.WriteUInt32BigEndian(cdb[10..], (uint)blocks);
        return 16;
    }
}
