namespace Sluice.Initiator;

/// <summary>SAM status codes (SAM-5 §5.3).</summary>
public static class ScsiStatus
{
    /// <summary>GOOD.</summary>
    public const byte Good = 0x00;
    /// <summary>CHECK CONDITION: sense data describes the error.</summary>
    public const byte CheckCondition = 0x02;
    /// <summary>CONDITION MET.</summary>
    public const byte ConditionMet = 0x04;
    /// <summary>BUSY.</summary>
    public const byte Busy = 0x08;
    /// <summary>RESERVATION CONFLICT.</summary>
    public const byte ReservationConflict = 0x18;
    /// <summary>TASK SET FULL.</summary>
    public const byte TaskSetFull = 0x28;
    /// <summary>ACA ACTIVE.</summary>
    public const byte AcaActive = 0x30;
    /// <summary>TASK ABORTED.</summary>
    public const byte TaskAborted = 0x40;
}

/// <summary>SCSI sense keys (SPC-4 §4.5.6).</summary>
public static class SenseKey
{
    /// <summary>NO SENSE.</summary>
    public const byte NoSense = 0x0;
    /// <summary>RECOVERED ERROR.</summary>
    public const byte RecoveredError = 0x1;
    /// <summary>NOT READY.</summary>
    public const byte NotReady = 0x2;
    /// <summary>MEDIUM ERROR.</summary>
    public const byte MediumError = 0x3;
    /// <summary>HARDWARE ERROR.</summary>
    public const byte HardwareError = 0x4;
    /// <summary>ILLEGAL REQUEST.</summary>
    public const byte IllegalRequest = 0x5;
    /// <summary>UNIT ATTENTION.</summary>
    public const byte UnitAttention = 0x6;
    /// <summary>DATA PROTECT.</summary>
    public const byte DataProtect = 0x7;
    /// <summary>ABORTED COMMAND.</summary>
    public const byte AbortedCommand = 0xB;
    /// <summary>MISCOMPARE.</summary>
    public const byte Miscompare = 0xE;
}

/// <summary>
/// The outcome of a SCSI command as the target reported it: status, sense data when the status is
/// CHECK CONDITION, and the residual (RFC 7143 §11.4.5).
/// </summary>
public readonly struct ScsiResult
{
    internal ScsiResult(byte status, byte response, int residual, bool underflow, bool overflow, byte[]? sense)
    {
        Status = status;
        Response = response;
        ResidualCount = residual;
        Underflow = underflow;
        Overflow = overflow;
        Sense = sense ?? [];
    }

    /// <summary>SAM status (see <see cref="ScsiStatus"/>).</summary>
    public byte Status { get; }

    /// <summary>iSCSI Response: 0 = command completed at target (RFC 7143 §11.4.3).</summary>
    public byte Response { get; }

    /// <summary>Bytes not transferred (U bit) or not transferable (O bit).</summary>
    public int ResidualCount { get; }

    /// <summary>U bit: less data than expected was transferred.</summary>
    public bool Underflow { get; }

    /// <summary>O bit: the command wanted more data than the buffer holds.</summary>
    public bool Overflow { get; }

    /// <summary>Sense data (without the 2-byte SenseLength), empty when none.</summary>
    public ReadOnlyMemory<byte> Sense { get; }

    /// <summary>True for GOOD and CONDITION MET with a completed response.</summary>
    public bool IsGood => Response == 0 && Status is ScsiStatus.Good or ScsiStatus.ConditionMet;

    /// <summary>Throws <see cref="ScsiCommandException"/> unless <see cref="IsGood"/>.</summary>
    public void ThrowIfError(byte opcode)
    {
        if (!IsGood)
        {
            throw new ScsiCommandException(opcode, this);
        }
    }
}
