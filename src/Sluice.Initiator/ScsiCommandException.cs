using System.Globalization;

namespace Sluice.Initiator;

/// <summary>A SCSI command ended with a status other than GOOD.</summary>
public sealed class ScsiCommandException : IOException
{
    /// <summary>Creates the exception from a command's result.</summary>
    public ScsiCommandException(byte opcode, ScsiResult result)
        : base(BuildMessage(opcode, result, out var key, out var asc, out var ascq, out var text))
    {
        Opcode = opcode;
        Status = result.Status;
        Response = result.Response;
        SenseKey = key;
        Asc = asc;
        Ascq = ascq;
        Description = text;
        Sense = result.Sense.ToArray();
        ResidualCount = result.ResidualCount;
        Underflow = result.Underflow;
        Overflow = result.Overflow;
    }

    /// <summary>CDB operation code of the failed command.</summary>
    public byte Opcode { get; }

    /// <summary>SAM status.</summary>
    public byte Status { get; }

    /// <summary>iSCSI response code (non-zero: the target failed the command outside SCSI).</summary>
    public byte Response { get; }

    /// <summary>Sense key, 0 when there was no sense data.</summary>
    public byte SenseKey { get; }

    /// <summary>Additional sense code.</summary>
    public byte Asc { get; }

    /// <summary>Additional sense code qualifier.</summary>
    public byte Ascq { get; }

    /// <summary>Decoded ASC/ASCQ (or status) text.</summary>
    public string Description { get; }

    /// <summary>Raw sense data.</summary>
    public byte[] Sense { get; }

    /// <summary>Residual count reported with the status.</summary>
    public int ResidualCount { get; }

    /// <summary>Residual underflow.</summary>
    public bool Underflow { get; }

    /// <summary>Residual overflow.</summary>
    public bool Overflow { get; }

    private static string BuildMessage(byte opcode, ScsiResult result, out byte key, out byte asc, out byte ascq, out string text)
    {
        SenseDecoder.TryDecode(result.Sense.Span, out key, out asc, out ascq);
        if (result.Response != 0)
        {
            text = "target failure (iSCSI response 0x" + result.Response.ToString("x2", CultureInfo.InvariantCulture) + ")";
        }
        else if (result.Status == ScsiStatus.CheckCondition && result.Sense.Length > 0)
        {
            text = SenseDecoder.Describe(asc, ascq);
        }
        else
        {
            text = SenseDecoder.DescribeStatus(result.Status);
        }

        return result.Status == ScsiStatus.CheckCondition && result.Sense.Length > 0
            ? string.Create(CultureInfo.InvariantCulture,
                $"SCSI command 0x{opcode:x2} failed: {SenseDecoder.DescribeKey(key)}, {text} (ASC/ASCQ 0x{asc:x2}/0x{ascq:x2})")
            : string.Create(CultureInfo.InvariantCulture, $"SCSI command 0x{opcode:x2} failed: {text} (status 0x{result.Status:x2})");
    }
}

/// <summary>Decodes fixed and descriptor format sense data (SPC-4 §4.5).</summary>
public static class SenseDecoder
{
    /// <summary>Extracts sense key, ASC and ASCQ. False when the data is not sense data.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> sense, out byte key, out byte asc, out byte ascq)
    {
        key = asc = ascq = 0;
        if (sense.Length < 2)
        {
            return false;
        }

        int code = sense[0] & 0x7f;
        if (code is 0x70 or 0x71 && sense.Length >= 3)
        {
            key = (byte)(sense[2] & 0x0f);
            if (sense.Length >= 14)
            {
                asc = sense[12];
                ascq = sense[13];
            }

            return true;
        }

        if (code is 0x72 or 0x73 && sense.Length >= 4)
        {
            key = (byte)(sense[1] & 0x0f);
            asc = sense[2];
            ascq = sense[3];
            return true;
        }

        return false;
    }

    /// <summary>Name of a sense key.</summary>
    public static string DescribeKey(byte key) => key switch
    {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0x8 => "BLANK CHECK",
        0x9 => "VENDOR SPECIFIC",
        0xA => "COPY ABORTED",
        0xB => "ABORTED COMMAND",
        0xD => "VOLUME OVERFLOW",
        0xE => "MISCOMPARE",
        _ => "sense key 0x" + key.ToString("x", CultureInfo.InvariantCulture),
    };

    /// <summary>Name of a SAM status.</summary>
    public static string DescribeStatus(byte status) => status switch
    {
        0x00 => "GOOD",
        0x02 => "CHECK CONDITION",
        0x04 => "CONDITION MET",
        0x08 => "BUSY",
        0x18 => "RESERVATION CONFLICT",
        0x28 => "TASK SET FULL",
        0x30 => "ACA ACTIVE",
        0x40 => "TASK ABORTED",
        _ => "status 0x" + status.ToString("x2", CultureInfo.InvariantCulture),
    };

    /// <summary>Text of common ASC/ASCQ pairs (SPC-4 Annex D); a generic text otherwise.</summary>
    public static string Describe(byte asc, byte ascq) => ((asc << 8) | ascq) switch
    {
        0x0000 => "no additional sense information",
        0x0401 => "logical unit is in process of becoming ready",
        0x0402 => "logical unit not ready, initializing command required",
        0x0403 => "logical unit not ready, manual intervention required",
        0x0700 => "multiple peripheral devices selected",
        0x0C00 => "write error",
        0x1100 => "unrecovered read error",
        0x1A00 => "parameter list length error",
        0x1D00 => "miscompare during verify operation",
        0x2000 => "invalid command operation code",
        0x2100 => "logical block address out of range",
        0x2400 => "invalid field in CDB",
        0x2500 => "logical unit not supported",
        0x2600 => "invalid field in parameter list",
        0x2700 => "write protected",
        0x2800 => "not ready to ready change, medium may have changed",
        0x2900 => "power on, reset, or bus device reset occurred",
        0x2901 => "power on occurred",
        0x2902 => "SCSI bus reset occurred",
        0x2903 => "bus device reset function occurred",
        0x2907 => "I_T nexus loss occurred",
        0x2A01 => "mode parameters changed",
        0x2A09 => "capacity data has changed",
        0x2C00 => "command sequence error",
        0x3A00 => "medium not present",
        0x3F0E => "reported LUNs data has changed",
        0x4700 => "SCSI parity error",
        0x4B00 => "data phase error",
        0x4E00 => "overlapped commands attempted",
        0x5506 => "medium auxiliary memory full",
        _ => string.Create(CultureInfo.InvariantCulture, $"ASC 0x{asc:x2} ASCQ 0x{ascq:x2}"),
    };
}
