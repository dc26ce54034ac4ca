using Microsoft.Extensions.Logging;

namespace Sluice.Scsi;

internal static partial class Log
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Error, Message = "{Target} LUN {Lun}: back-end failure in {Command}")]
    public static partial void BackendFailure(ILogger logger, string target, ulong lun, string command, Exception exception);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Error, Message = "{Target} LUN {Lun}: unexpected failure in opcode {Opcode:X2}")]
    public static partial void UnexpectedFailure(ILogger logger, string target, ulong lun, byte opcode, Exception exception);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "{Target}: {Event} on LUN {Lun}")]
    public static partial void TaskManagement(ILogger logger, string target, string @event, ulong lun);
}
