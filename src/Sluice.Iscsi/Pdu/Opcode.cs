namespace Sluice.Iscsi.Pdu;

/// <summary>PDU opcodes, RFC 7143 §11.2.1.2. Initiator opcodes are 0x00-0x1f, target opcodes 0x20-0x3f.</summary>
public enum Opcode : byte
{
    NopOut = 0x00,
    ScsiCommand = 0x01,
    TaskManagementRequest = 0x02,
    LoginRequest = 0x03,
    TextRequest = 0x04,
    DataOut = 0x05,
    LogoutRequest = 0x06,
    SnackRequest = 0x10,

    NopIn = 0x20,
    ScsiResponse = 0x21,
    TaskManagementResponse = 0x22,
    LoginResponse = 0x23,
    TextResponse = 0x24,
    DataIn = 0x25,
    LogoutResponse = 0x26,
    ReadyToTransfer = 0x31,
    AsyncMessage = 0x32,
    Reject = 0x3f,
}

/// <summary>Reject reasons, RFC 7143 §11.17.1.</summary>
public static class RejectReason
{
    public const byte DataDigestError = 0x02;
    public const byte SnackReject = 0x03;
    public const byte ProtocolError = 0x04;
    public const byte CommandNotSupported = 0x05;
    public const byte ImmediateCommandReject = 0x06;
    public const byte TaskInProgress = 0x07;
    public const byte InvalidDataAck = 0x08;
    public const byte InvalidPduField = 0x09;
    public const byte LongOperationReject = 0x0a;
    public const byte NegotiationReset = 0x0b;
    public const byte WaitingForLogout = 0x0c;
}

/// <summary>Task management functions, RFC 7143 §11.5.1.</summary>
public static class TmfFunction
{
    public const byte AbortTask = 1;
    public const byte AbortTaskSet = 2;
    public const byte ClearAca = 3;
    public const byte ClearTaskSet = 4;
    public const byte LogicalUnitReset = 5;
    public const byte TargetWarmReset = 6;
    public const byte TargetColdReset = 7;
    public const byte TaskReassign = 8;
}

/// <summary>Task management responses, RFC 7143 §11.6.1.</summary>
public static class TmfResponse
{
    public const byte FunctionComplete = 0;
    public const byte TaskDoesNotExist = 1;
    public const byte LunDoesNotExist = 2;
    public const byte TaskStillAllegiant = 3;
    public const byte TaskAllegianceReassignmentNotSupported = 4;
    public const byte FunctionNotSupported = 5;
    public const byte FunctionAuthorizationFailed = 6;
    public const byte FunctionRejected = 255;
}

/// <summary>Async message events, RFC 7143 §11.9.1.</summary>
public static class AsyncEvent
{
    public const byte ScsiAsyncEvent = 0;
    public const byte LogoutRequested = 1;
    public const byte ConnectionDrop = 2;
    public const byte SessionDrop = 3;
    public const byte NegotiationRequested = 4;
    public const byte TaskTerminationRequested = 5;
}
