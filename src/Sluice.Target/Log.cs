using System.Net;
using Microsoft.Extensions.Logging;

namespace Sluice.Target;

/// <summary>All target log messages, with stable event ids (STYLE.md: one file, [LoggerMessage]).</summary>
internal static partial class Log
{
    [LoggerMessage(1000, LogLevel.Information, "Listening on {Endpoint}")]
    public static partial void Listening(ILogger logger, EndPoint endpoint);

    [LoggerMessage(1001, LogLevel.Debug, "conn {ConnectionId}: accepted from {Remote}")]
    public static partial void Accepted(ILogger logger, long connectionId, EndPoint? remote);

    [LoggerMessage(1002, LogLevel.Debug, "conn {ConnectionId}: closed")]
    public static partial void Closed(ILogger logger, long connectionId);

    [LoggerMessage(1003, LogLevel.Warning, "conn {ConnectionId}: protocol error, dropping connection: {Reason}")]
    public static partial void ProtocolError(ILogger logger, long connectionId, string reason);

    [LoggerMessage(1004, LogLevel.Information, "conn {ConnectionId}: login of {Initiator} to {Target} failed: status 0x{StatusClass:x2}{StatusDetail:x2}")]
    public static partial void LoginFailed(ILogger logger, long connectionId, string? initiator, string? target, byte statusClass, byte statusDetail);

    [LoggerMessage(1005, LogLevel.Information, "conn {ConnectionId}: session tsih={Tsih} {SessionType} {Initiator} -> {Target} in full-feature phase")]
    public static partial void LoggedIn(ILogger logger, long connectionId, ushort tsih, string sessionType, string initiator, string? target);

    [LoggerMessage(1006, LogLevel.Warning, "conn {ConnectionId}: rejecting {Opcode} itt=0x{Itt:x8}: reason 0x{Reason:x2} ({Why})")]
    public static partial void Rejecting(ILogger logger, long connectionId, string opcode, uint itt, byte reason, string why);

    [LoggerMessage(1007, LogLevel.Information, "conn {ConnectionId}: task management function {Function} lun={Lun} rtt=0x{Rtt:x8} -> {Response}")]
    public static partial void TaskManagement(ILogger logger, long connectionId, byte function, ulong lun, uint rtt, byte response);

    [LoggerMessage(1008, LogLevel.Warning, "conn {ConnectionId}: no answer to NOP-In ping within {Timeout}, dropping connection")]
    public static partial void PingTimeout(ILogger logger, long connectionId, TimeSpan timeout);

    [LoggerMessage(1009, LogLevel.Information, "conn {ConnectionId}: logout reason {Reason}")]
    public static partial void Logout(ILogger logger, long connectionId, int reason);

    [LoggerMessage(1017, LogLevel.Information, "conn {ConnectionId}: login waits for {Count} command(s) of the initiator's ended session still at the back end (RFC 7143 §6.3.5)")]
    public static partial void AwaitingOldCommands(ILogger logger, long connectionId, int count);

    [LoggerMessage(1018, LogLevel.Warning, "conn {ConnectionId}: {Count} command(s) of the ended session still at the back end after the login timeout; login refused with 0x0301 (service unavailable)")]
    public static partial void OldCommandsStillRunning(ILogger logger, long connectionId, int count);

    [LoggerMessage(1010, LogLevel.Information, "session tsih={Tsih} of {Initiator} reinstated by a new login (RFC 7143 §6.3.5)")]
    public static partial void Reinstated(ILogger logger, ushort tsih, string initiator);

    [LoggerMessage(1011, LogLevel.Error, "conn {ConnectionId}: unexpected failure")]
    public static partial void Unexpected(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(1012, LogLevel.Warning, "conn {ConnectionId}: login timed out after {Timeout}")]
    public static partial void LoginTimeout(ILogger logger, long connectionId, TimeSpan timeout);

    [LoggerMessage(1013, LogLevel.Debug, "conn {ConnectionId}: dropping {Opcode} with CmdSN {CmdSN} outside window [{ExpCmdSN}, {MaxCmdSN}]")]
    public static partial void OutsideWindow(ILogger logger, long connectionId, string opcode, uint cmdSN, uint expCmdSN, uint maxCmdSN);

    [LoggerMessage(1014, LogLevel.Debug, "conn {ConnectionId}: discarding Data-Out for unknown task itt=0x{Itt:x8}")]
    public static partial void UnknownDataOut(ILogger logger, long connectionId, uint itt);

    [LoggerMessage(1015, LogLevel.Information, "Stopping: {Sessions} sessions open")]
    public static partial void Stopping(ILogger logger, int sessions);

    [LoggerMessage(1016, LogLevel.Information, "conn {ConnectionId}: SNACK: resending {Opcode} itt=0x{Itt:x8} numbers {First}..{Last}")]
    public static partial void Retransmitting(ILogger logger, long connectionId, string opcode, uint itt, uint first, uint last);
}
