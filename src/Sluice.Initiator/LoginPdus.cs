using System.Buffers.Binary;
using Sluice.Iscsi.Pdu;

namespace Sluice.Initiator;

/// <summary>
/// Field accessors for PDUs whose layout <see cref="Bhs"/> does not name (Login, Text, Logout, TMF,
/// Async, Reject), RFC 7143 §11.
/// </summary>
internal static class PduFields
{
    public const uint ReservedTag = 0xFFFFFFFF;

    // Login Request/Response, §11.12 / §11.13:
    //  byte 1: T C . . CSG(2) NSG(2); byte 2 Version-max; byte 3 Version-min/active
    //  bytes 8-13 ISID, 14-15 TSIH; 20-21 CID (request); 36-37 Status-Class/Detail (response)
    public static void SetIsid(ref Bhs h, ulong isid)
    {
        Span<byte> tmp = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(tmp, isid);
        tmp[2..].CopyTo(h.Bytes[8..14]);
    }

    public static ushort Tsih(in Bhs h) => h.U16(14);

    public static void SetTsih(ref Bhs h, ushort tsih) => h.SetU16(14, tsih);

    public static bool Transit(in Bhs h) => (h[1] & 0x80) != 0;

    public static bool Continue(in Bhs h) => (h[1] & 0x40) != 0;

    public static int CurrentStage(in Bhs h) => (h[1] >> 2) & 3;

    public static int NextStage(in Bhs h) => h[1] & 3;

    public static byte StatusClass(in Bhs h) => h[36];

    public static byte StatusDetail(in Bhs h) => h[37];

    /// <summary>Response byte of SCSI Response, TMF Response, Logout Response; status byte of SCSI Response/Data-In.</summary>
    public static byte Response(in Bhs h) => h[2];

    public static byte ScsiStatusByte(in Bhs h) => h[3];

    public static byte AsyncEventCode(in Bhs h) => h[36];

    public static ushort AsyncParameter3(in Bhs h) => h.U16(42);

    public static byte RejectReasonCode(in Bhs h) => h[2];
}
