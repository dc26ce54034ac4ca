namespace Sluice.Scsi;

/// <summary>SAM-5 status codes.</summary>
public static class ScsiStatus
{
    public const byte Good = 0x00;
    public const byte CheckCondition = 0x02;
    public const byte ConditionMet = 0x04;
    public const byte Busy = 0x08;
    public const byte ReservationConflict = 0x18;
    public const byte TaskSetFull = 0x28;
    public const byte AcaActive = 0x30;
    public const byte TaskAborted = 0x40;
}

/// <summary>SAM-5 task attributes (iSCSI ATTR field, RFC 7143 §11.3.1).</summary>
public enum TaskAttribute : byte
{
    Untagged = 0,
    Simple = 1,
    Ordered = 2,
    HeadOfQueue = 3,
    Aca = 4,
}

/// <summary>
/// Identity of an I_T nexus (SAM-5 4.7): the initiator port (for iSCSI "iqn...,i,0x&lt;ISID&gt;")
/// and the target port ("iqn...,t,0x&lt;TPGT&gt;") with its relative port identifier.
/// Unit attentions and reservations are kept per nexus.
/// </summary>
public sealed record ITNexus(string InitiatorName, string InitiatorPortName, string TargetName, string TargetPortName, ushort RelativeTargetPortId, ushort TargetPortGroup);

/// <summary>
/// One SCSI command as the transport hands it to a target device. The transport owns the
/// buffers: <see cref="DataOut"/> holds every byte the initiator sent (at most the expected
/// transfer length), <see cref="DataIn"/> has room for the expected data-in length, and
/// <see cref="Sense"/> has room for 252 bytes of sense data.
/// </summary>
public sealed class ScsiRequest
{
    public required ITNexus Nexus { get; set; }
    public ulong Lun { get; set; }
    public ReadOnlyMemory<byte> Cdb { get; set; }
    public TaskAttribute Attribute { get; set; } = TaskAttribute.Simple;
    /// <summary>iSCSI Initiator Task Tag; lets task management name this task.</summary>
    public uint TaskTag { get; set; }
    /// <summary>Expected data transfer length the initiator announced for its data direction.</summary>
    public int ExpectedDataOutLength { get; set; }
    public int ExpectedDataInLength { get; set; }
    public ReadOnlyMemory<byte> DataOut { get; set; }
    public Memory<byte> DataIn { get; set; }
    public Memory<byte> Sense { get; set; }
}

/// <summary>
/// Outcome of a command. <see cref="DataInLength"/> is how many bytes of
/// <see cref="ScsiRequest.DataIn"/> are valid. <see cref="TransferLength"/> is the number of bytes
/// the CDB itself asked to move in its data direction (-1 when the command does not say), from
/// which the transport derives iSCSI residual overflow/underflow (RFC 7143 §11.4.5).
/// </summary>
public readonly record struct ScsiResponse(byte Status, int DataInLength, int SenseLength, long TransferLength);
