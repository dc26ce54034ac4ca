using Microsoft.Extensions.Logging;

namespace Sluice.Cli;

/// <summary>The CLI's own log messages; stable event ids 9000-9099.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 9000, Level = LogLevel.Information, Message = "Serving {TargetCount} target(s) on {PortalCount} portal(s); data directory {DataDir}")]
    public static partial void Starting(ILogger logger, int targetCount, int portalCount, string dataDir);

    [LoggerMessage(EventId = 9001, Level = LogLevel.Information, Message = "Received {Signal}; stopping (send it again to exit at once)")]
    public static partial void Stopping(ILogger logger, string signal);

    [LoggerMessage(EventId = 9002, Level = LogLevel.Information, Message = "Stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(EventId = 9003, Level = LogLevel.Error, Message = "The server did not stop within {Timeout}; exiting anyway")]
    public static partial void StopTimedOut(ILogger logger, TimeSpan timeout);

    [LoggerMessage(EventId = 9004, Level = LogLevel.Debug, Message = "The server failed to start")]
    public static partial void StartFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 9005, Level = LogLevel.Debug, Message = "Stopping after a failed start threw")]
    public static partial void CleanupFailed(ILogger logger, Exception exception);
}
