using System.Buffers.Binary;
using System.Text;

namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>
/// Hand-built iSCSI PDUs for hostile-input tests, deliberately independent of Sluice.Iscsi so a
/// bug there can't hide in both sides. RFC 7143 §11.2.1, the Basic Header Segment:
/// <code>
/// byte 0     |.|I| Opcode    |   (0x40 = immediate)
/// byte 1     |F|  opcode-specific flags (Login: T C . . CSG NSG)
/// byte 4     TotalAHSLength (4-byte words)
/// bytes 5-7  DataSegmentLength (big-endian, bytes, without padding)
/// bytes 8-15 LUN or opcode-specific (Login: ISID[6] + TSIH[2])
/// bytes 16-19 Initiator Task Tag
/// bytes 20-47 opcode-specific (Login: CID 20-21, CmdSN 24-27, ExpStatSN 28-31)
/// </code>
/// Data segments are padded to a multiple of 4 bytes.
/// </summary>
internal static class RawPdu
{
    public const int BhsLength = 48;

    public const byte OpNopOut = 0x00;
    public const byte OpScsiCommand = 0x01;
    public const byte OpLoginRequest = 0x03;
    public const byte OpNopIn = 0x20;
    public const byte OpScsiResponse = 0x21;
    public const byte OpLoginResponse = 0x23;
    public const byte OpDataIn = 0x25;
    public const byte OpR2T = 0x31;
    public const byte OpAsyncMessage = 0x32;
    public const byte OpReject = 0x3f;

    public const byte ImmediateBit = 0x40;

    /// <summary>ISID in the random format (type 0b10) with a fixed qualifier.</summary>
    public static readonly byte[] Isid = [0x80, 0x12, 0x34, 0x56, 0x00, 0x01];

    public static byte[] Header(byte opcode, byte flags, int dataSegmentLength, uint itt)
    {
        byte[] bhs = new byte[BhsLength];
        bhs[0] = opcode;
        bhs[1] = flags;
        SetDataSegmentLength(bhs, dataSegmentLength);
        BinaryPrimitives.WriteUInt32BigEndian(bhs.AsSpan(16), itt);
        return bhs;
    }

    public static void SetDataSegmentLength(byte[] bhs, int length)
    {
        bhs[5] = (byte)(length >> 16);
        bhs[6] = (byte)(length >> 8);
        bhs[7] = (byte)length;
    }

    public static int DataSegmentLength(ReadOnlySpan<byte> bhs) => (bhs[5] << 16) | (bhs[6] << 8) | bhs[7];

    public static int Opcode(ReadOnlySpan<byte> bhs) => bhs[0] & 0x3f;

    public static uint Itt(ReadOnlySpan<byte> bhs) => BinaryPrimitives.ReadUInt32BigEndian(bhs[16..]);

    public static int Padded(int length) => (length + 3) & ~3;

    /// <summary>Header followed by data and its pad bytes.</summary>
    public static byte[] Concat(byte[] bhs, ReadOnlySpan<byte> data)
    {
        byte[] pdu = new byte[BhsLength + Padded(data.Length)];
        bhs.CopyTo(pdu, 0);
        data.CopyTo(pdu.AsSpan(BhsLength));
        return pdu;
    }

    /// <summary>
    /// Login Request (§11.12): immediate, T=1, CSG/NSG as given; key=value pairs, each ending in NUL.
    /// </summary>
    public static byte[] Login(int csg, int nsg, bool transit, uint itt, uint cmdSN, uint expStatSN, ushort tsih, params string[] keys)
    {
        byte[] text = TextData(keys);
        byte flags = (byte)((transit ? 0x80 : 0) | (csg << 2) | nsg);
        byte[] bhs = Header(OpLoginRequest | ImmediateBit, flags, text.Length, itt);
        Isid.CopyTo(bhs, 8);
        BinaryPrimitives.WriteUInt16BigEndian(bhs.AsSpan(14), tsih);
        BinaryPrimitives.WriteUInt16BigEndian(bhs.AsSpan(20), 1); // CID
        BinaryPrimitives.WriteUInt32BigEndian(bhs.AsSpan(24), cmdSN);
        BinaryPrimitives.WriteUInt32BigEndian(bhs.AsSpan(28), expStatSN);
        return Concat(bhs, text);
    }

    public static byte[] TextData(params string[] keys)
    {
        var sb = new StringBuilder();
        foreach (string k in keys)
            sb.Append(k).Append('\0');
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    public static Dictionary<string, string> ParseText(ReadOnlySpan<byte> data)
    {
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string pair in Encoding.ASCII.GetString(data).Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
                keys[pair[..eq]] = pair[(eq + 1)..];
        }
        return keys;
    }

    /// <summary>
    /// SCSI Command (§11.3): simple task attribute, F=1, R/W as given; LUN in the single-level
    /// peripheral format for LUNs below 256 (SAM-5 §4.7).
    /// </summary>
    public static byte[] ScsiCommand(
        ulong lun, uint itt, uint cmdSN, uint expStatSN, ReadOnlySpan<byte> cdb, uint expectedLength, bool read, bool write, ReadOnlySpan<byte> immediateData)
    {
        byte flags = (byte)(0x80 | (read ? 0x40 : 0) | (write ? 0x20 : 0) | 0x01);
        byte[] bhs = Header(OpScsiCommand, flags, immediateData.Length, itt);
        bhs[8] = (byte)(lun >> 8 & 0x3f);
        bhs[9] = (byte)lun;
        BinaryPrimitives.WriteUInt32BigEndian(bhs.AsSpan(20), expectedLength);
        BinaryPrimitives.WriteUInt32BigEndian(bhs.AsSpan(24), cmdSN);
        BinaryPrimitives.WriteUInt32BigEndian(bhs.AsSpan(28), expStatSN);
        cdb.CopyTo(bhs.AsSpan(32));
        return Concat(bhs, immediateData);
    }

    public static string Describe(ReadOnlySpan<byte> bhs)
    {
        int op = Opcode(bhs);
        string what = op switch
        {
            OpLoginResponse => $"Login Response status {bhs[36]:x2}{bhs[37]:x2}",
            OpReject => $"Reject reason 0x{bhs[2]:x2}",
            OpScsiResponse => $"SCSI Response response {bhs[2]:x2} status {bhs[3]:x2}",
            OpDataIn => $"Data-In flags {bhs[1]:x2} status {bhs[3]:x2}",
            OpNopIn => "NOP-In",
            OpAsyncMessage => $"Async Message event {bhs[36]}",
            _ => $"opcode 0x{op:x2}",
        };
        return $"{what} (ITT 0x{Itt(bhs):x8}, DSL {DataSegmentLength(bhs)})";
    }
}
