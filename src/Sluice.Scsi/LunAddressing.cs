using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>
/// SAM-5 4.7 LUN field coding for single-level LUNs: peripheral device addressing (00b,
/// 4.7.7.2) for LUNs below 256 and flat space addressing (01b, 4.7.7.4) up to 16383.
/// </summary>
internal static class LunAddressing
{
    public const ulong Invalid = ulong.MaxValue;

    /// <summary>Decodes the 8-byte LUN field (as a big-endian ulong) into a LUN number, or <see cref="Invalid"/>.</summary>
    public static ulong Decode(ulong field)
    {
        // Second to fourth level must be unused for a single-level LUN.
        if ((field & 0x0000_FFFF_FFFF_FFFFUL) != 0)
        {
            return Invalid;
        }
        uint first = (uint)(field >> 48);
        switch (first >> 14)
        {
            case 0b00:
                // Peripheral device addressing: BUS IDENTIFIER must be zero here.
                return (first & 0x3F00) == 0 ? first & 0xFF : Invalid;
            case 0b01:
                return first & 0x3FFF;
            default:
                return Invalid;
        }
    }

    public static ulong Encode(ulong lun) =>
        lun < 256 ? lun << 48 : (0x4000UL | (lun & 0x3FFF)) << 48;

    public static void Write(Span<byte> destination, ulong lun) =>
        BinaryPrimitives.WriteUInt64BigEndian(destination, Encode(lun));
}
