using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Sluice.Iscsi.Pdu;

/// <summary>
/// The 48-byte Basic Header Segment every iSCSI PDU starts with (RFC 7143 §11.2.1).
/// <code>
/// Byte/     0       |       1       |       2       |       3       |
///      +---------------+---------------+---------------+---------------+
///     0|.|I| Opcode    |F|  Opcode-specific fields                     |
///     4|TotalAHSLength | DataSegmentLength                             |
///     8| LUN or Opcode-specific fields                                 |
///    16| Initiator Task Tag or Opcode-specific fields                  |
///    20| Opcode-specific fields                                        |
///    44+---------------+---------------+---------------+---------------+
/// </code>
/// Field names below follow the RFC; several PDUs reuse the same offsets under other names,
/// and the accessors named after the PDU they belong to say so. All multi-byte fields are
/// big-endian.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = Length)]
public struct Bhs
{
    public const int Length = 48;

    private BhsBytes _bytes;

    [InlineArray(Length)]
    private struct BhsBytes
    {
        private byte _element0;
    }

    /// <summary>The raw 48 bytes.</summary>
    [UnscopedRef]
    public Span<byte> Bytes => _bytes;

    public static Bhs Read(ReadOnlySpan<byte> source)
    {
        var bhs = default(Bhs);
        source[..Length].CopyTo(bhs.Bytes);
        return bhs;
    }

    public readonly void CopyTo(Span<byte> destination) => ((ReadOnlySpan<byte>)_bytes).CopyTo(destination);

    public void Clear() => Bytes.Clear();

    public readonly byte this[int index] => _bytes[index];

    public void SetByte(int index, byte value) => Bytes[index] = value;

    public readonly uint U32(int offset) => BinaryPrimitives.ReadUInt32BigEndian(((ReadOnlySpan<byte>)_bytes)[offset..]);

    public void SetU32(int offset, uint value) => BinaryPrimitives.WriteUInt32BigEndian(Bytes[offset..], value);

    public readonly ushort U16(int offset) => BinaryPrimitives.ReadUInt16BigEndian(((ReadOnlySpan<byte>)_bytes)[offset..]);

    public void SetU16(int offset, ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Bytes[offset..], value);

    // ---- common fields (§11.2.1.1 - §11.2.1.7) ----

    public Opcode Opcode
    {
        readonly get => (Opcode)(_bytes[0] & 0x3f);
        set => Bytes[0] = (byte)((_bytes[0] & 0x40) | ((byte)value & 0x3f));
    }

    /// <summary>I bit: immediate delivery (initiator PDUs only).</summary>
    public bool Immediate
    {
        readonly get => (_bytes[0] & 0x40) != 0;
        set => Bytes[0] = (byte)(value ? _bytes[0] | 0x40 : _bytes[0] & ~0x40);
    }

    /// <summary>Byte 1: the F bit and opcode-specific flags.</summary>
    public byte Flags
    {
        readonly get => _bytes[1];
        set => Bytes[1] = value;
    }

    /// <summary>F bit (final PDU of a sequence).</summary>
    public bool Final
    {
        readonly get => (_bytes[1] & 0x80) != 0;
        set => Bytes[1] = (byte)(value ? _bytes[1] | 0x80 : _bytes[1] & ~0x80);
    }

    /// <summary>Total length of the additional header segments, in 4-byte words.</summary>
    public byte TotalAhsLength
    {
        readonly get => _bytes[4];
        set => Bytes[4] = value;
    }

    /// <summary>Data segment length in bytes, excluding padding (24 bits).</summary>
    public int DataSegmentLength
    {
        readonly get => (_bytes[5] << 16) | (_bytes[6] << 8) | _bytes[7];
        set
        {
            if ((uint)value > 0xFFFFFF)
            {
                throw new ArgumentOutOfRangeException(nameof(value));
            }

            Bytes[5] = (byte)(value >> 16);
            Bytes[6] = (byte)(value >> 8);
            Bytes[7] = (byte)value;
        }
    }

    /// <summary>LUN (bytes 8-15) of SCSI Command, Data, TMF, NOP, R2T, Async.</summary>
    public ulong Lun
    {
        readonly get => BinaryPrimitives.ReadUInt64BigEndian(((ReadOnlySpan<byte>)_bytes)[8..]);
        set => BinaryPrimitives.WriteUInt64BigEndian(Bytes[8..], value);
    }

    public uint InitiatorTaskTag
    {
        readonly get => U32(16);
        set => SetU32(16, value);
    }

    // ---- request fields ----

    /// <summary>Target Transfer Tag of NOP-Out, Data-Out, Text Request, SNACK; also of NOP-In, R2T, Data-In, Text Response.</summary>
    public uint TargetTransferTag
    {
        readonly get => U32(20);
        set => SetU32(20, value);
    }

    /// <summary>SCSI Command: Expected Data Transfer Length (bytes 20-23).</summary>
    public uint ExpectedDataTransferLength
    {
        readonly get => U32(20);
        set => SetU32(20, value);
    }

    /// <summary>CmdSN of initiator requests (bytes 24-27).</summary>
    public uint CmdSN
    {
        readonly get => U32(24);
        set => SetU32(24, value);
    }

    /// <summary>ExpStatSN of initiator requests (bytes 28-31).</summary>
    public uint ExpStatSN
    {
        readonly get => U32(28);
        set => SetU32(28, value);
    }

    /// <summary>SCSI Command: CDB bytes 32-47.</summary>
    [UnscopedRef]
    public Span<byte> Cdb => Bytes.Slice(32, 16);

    // ---- response fields ----

    /// <summary>StatSN of target responses (bytes 24-27).</summary>
    public uint StatSN
    {
        readonly get => U32(24);
        set => SetU32(24, value);
    }

    public uint ExpCmdSN
    {
        readonly get => U32(28);
        set => SetU32(28, value);
    }

    public uint MaxCmdSN
    {
        readonly get => U32(32);
        set => SetU32(32, value);
    }

    /// <summary>DataSN (Data-In/Out), R2TSN (R2T), ExpDataSN (SCSI Response) at bytes 36-39.</summary>
    public uint DataSN
    {
        readonly get => U32(36);
        set => SetU32(36, value);
    }

    /// <summary>Buffer Offset of Data-In, Data-Out and R2T (bytes 40-43).</summary>
    public uint BufferOffset
    {
        readonly get => U32(40);
        set => SetU32(40, value);
    }

    /// <summary>Residual Count (SCSI Response, Data-In) or Desired Data Transfer Length (R2T), bytes 44-47.</summary>
    public uint ResidualCount
    {
        readonly get => U32(44);
        set => SetU32(44, value);
    }

    public override readonly string ToString() =>
        $"{Opcode} I={Immediate} F={Final} flags=0x{Flags:x2} ahs={TotalAhsLength} dsl={DataSegmentLength} itt=0x{InitiatorTaskTag:x8}";
}
