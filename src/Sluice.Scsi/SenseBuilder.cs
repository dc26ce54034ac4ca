using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>SPC-4 4.5.6 sense keys.</summary>
internal static class SenseKey
{
    public const byte NoSense = 0x0;
    public const byte NotReady = 0x2;
    public const byte MediumError = 0x3;
    public const byte HardwareError = 0x4;
    public const byte IllegalRequest = 0x5;
    public const byte UnitAttention = 0x6;
    public const byte DataProtect = 0x7;
    public const byte CopyAborted = 0xA;
    public const byte AbortedCommand = 0xB;
    public const byte Miscompare = 0xE;
}

/// <summary>Additional sense code / qualifier pairs used here (SPC-4 Table 28), as (ASC &lt;&lt; 8) | ASCQ.</summary>
internal static class Asc
{
    public const ushort LogicalUnitNotReadyInitializingRequired = 0x0402;
    public const ushort WriteError = 0x0C00;
    public const ushort UnrecoveredReadError = 0x1100;
    public const ushort ParameterListLengthError = 0x1A00;
    public const ushort MiscompareDuringVerify = 0x1D00;
    public const ushort InvalidCommandOperationCode = 0x2000;
    public const ushort LbaOutOfRange = 0x2100;
    public const ushort InvalidFieldInCdb = 0x2400;
    public const ushort LogicalUnitNotSupported = 0x2500;
    public const ushort InvalidFieldInParameterList = 0x2600;
    public const ushort WriteProtected = 0x2700;
    public const ushort SoftwareWriteProtected = 0x2702;
    public const ushort PowerOnResetOrBusDeviceReset = 0x2900;
    public const ushort PowerOnOccurred = 0x2901;
    public const ushort ScsiBusResetOccurred = 0x2902;
    public const ushort BusDeviceResetFunctionOccurred = 0x2903;
    public const ushort ModeParametersChanged = 0x2A01;
    public const ushort ReservationsPreempted = 0x2A03;
    public const ushort ReservationsReleased = 0x2A04;
    public const ushort RegistrationsPreempted = 0x2A05;
    public const ushort InvalidReleaseOfPersistentReservation = 0x2604;
    public const ushort CommandsClearedByAnotherInitiator = 0x2F00;
    public const ushort SavingParametersNotSupported = 0x3900;
    public const ushort MediumNotPresent = 0x3A00;
    public const ushort FormatCommandFailed = 0x3101;
    public const ushort SanitizeCommandFailed = 0x3103;
    public const ushort LogicalUnitNotReadyFormatInProgress = 0x0404;
    public const ushort LogicalUnitNotReadySanitizeInProgress = 0x041B;
    public const ushort InternalTargetFailure = 0x4400;
    public const ushort OperationInProgress = 0x0016;
    public const ushort CopyTargetDeviceNotReachable = 0x0D02;
    public const ushort IncorrectCopyTargetDeviceType = 0x0D03;
    public const ushort TooManyTargetDescriptors = 0x2606;
    public const ushort UnsupportedTargetDescriptorTypeCode = 0x2607;
    public const ushort TooManySegmentDescriptors = 0x2608;
    public const ushort UnsupportedSegmentDescriptorTypeCode = 0x2609;
    public const ushort UnexpectedInexactSegment = 0x260A;
    public const ushort InlineDataLengthExceeded = 0x260B;
    public const ushort InsufficientResources = 0x5503;
    public const ushort MediumRemovalPrevented = 0x5302;
}

/// <summary>
/// The sense-key-specific field-pointer data of SPC-4 4.5.2.4.2: which CDB (C/D=1) or
/// parameter-list (C/D=0) byte and, optionally, bit is in error.
/// </summary>
internal readonly record struct FieldPointer(int ByteIndex, int BitIndex, bool InCdb)
{
    public static FieldPointer None => new(-1, -1, false);
    public bool IsValid => ByteIndex >= 0;
}

/// <summary>
/// Writes sense data in fixed (response code 70h, SPC-4 4.5.3) or descriptor
/// (72h, SPC-4 4.5.2) format. The caller picks the format: descriptor when the control mode
/// page D_SENSE bit is one (SPC-4 7.5.8), or as REQUEST SENSE's DESC bit asks.
/// </summary>
internal static class SenseBuilder
{
    public const int FixedLength = 18;

    /// <summary>Builds sense data; returns the number of bytes written (truncated to <paramref name="destination"/>).</summary>
    public static int Write(Span<byte> destination, bool descriptor, byte key, ushort ascAscq,
        FieldPointer pointer = default, bool hasInformation = false, ulong information = 0)
    {
        Span<byte> s = stackalloc byte[32];
        s.Clear();
        int length;
        bool sksv = pointer.IsValid && pointer.ByteIndex <= ushort.MaxValue;
        if (!descriptor)
        {
            //  byte 0: VALID | RESPONSE CODE (70h current)   byte 2: SENSE KEY
            //  3..6 INFORMATION   7 ADDITIONAL SENSE LENGTH (n-7)   12 ASC  13 ASCQ  15..17 SKS
            s[0] = (byte)(0x70 | (hasInformation && information <= uint.MaxValue ? 0x80 : 0));
            s[2] = (byte)(key & 0x0F);
            if (hasInformation)
            {
                BinaryPrimitives.WriteUInt32BigEndian(s[3..], (uint)information);
            }
            s[7] = FixedLength - 8;
            s[12] = (byte)(ascAscq >> 8);
            s[13] = (byte)ascAscq;
            if (sksv)
            {
                WriteSks(s.Slice(15, 3), pointer);
            }
            length = FixedLength;
        }
        else
        {
            //  byte 0: RESPONSE CODE 72h  1: SENSE KEY  2: ASC  3: ASCQ  7: ADDITIONAL SENSE LENGTH
            s[0] = 0x72;
            s[1] = (byte)(key & 0x0F);
            s[2] = (byte)(ascAscq >> 8);
            s[3] = (byte)ascAscq;
            int p = 8;
            if (hasInformation)
            {
                // Information sense data descriptor (SPC-4 4.5.2.2): type 00h, length 0Ah, VALID.
                s[p] = 0x00;
                s[p + 1] = 0x0A;
                s[p + 2] = 0x80;
                BinaryPrimitives.WriteUInt64BigEndian(s.Slice(p + 4), information);
                p += 12;
            }
            if (sksv)
            {
                // Sense key specific sense data descriptor (SPC-4 4.5.2.3): type 02h, length 06h.
                s[p] = 0x02;
                s[p + 1] = 0x06;
                WriteSks(s.Slice(p + 4, 3), pointer);
                p += 8;
            }
            s[7] = (byte)(p - 8);
            length = p;
        }
        int n = Math.Min(length, destination.Length);
        s[..n].CopyTo(destination);
        return n;
    }

    private static void WriteSks(Span<byte> sks, FieldPointer pointer)
    {
        // SKSV | C/D | BPV | BIT POINTER, then FIELD POINTER (SPC-4 4.5.2.4.2).
        byte b = 0x80;
        if (pointer.InCdb)
        {
            b |= 0x40;
        }
        if (pointer.BitIndex is >= 0 and <= 7)
        {
            b |= (byte)(0x08 | pointer.BitIndex);
        }
        sks[0] = b;
        BinaryPrimitives.WriteUInt16BigEndian(sks[1..], (ushort)pointer.ByteIndex);
    }

    /// <summary>Reads the sense key and ASC/ASCQ back from either format (tests and REQUEST SENSE).</summary>
    public static (byte Key, ushort AscAscq) Parse(ReadOnlySpan<byte> sense)
    {
        if (sense.Length >= 4 && (sense[0] & 0x7F) is 0x72 or 0x73)
        {
            return ((byte)(sense[1] & 0x0F), (ushort)((sense[2] << 8) | sense[3]));
        }
        if (sense.Length >= 14)
        {
            return ((byte)(sense[2] & 0x0F), (ushort)((sense[12] << 8) | sense[13]));
        }
        return (0, 0);
    }
}
