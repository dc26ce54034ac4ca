using Microsoft.Extensions.Logging;
using Sluice.Target.Configuration;

namespace Sluice.Cli;

/// <summary><c>--log-level</c> values.</summary>
internal static class LogLevels
{
    public const string Names = "trace, debug, info, warn, error, critical, none";

    public static LogLevel Parse(string? text) => text?.ToUpperInvariant() switch
    {
        null => LogLevel.Information,
        "TRACE" => LogLevel.Trace,
        "DEBUG" => LogLevel.Debug,
        "INFO" or "INFORMATION" => LogLevel.Information,
        "WARN" or "WARNING" => LogLevel.Warning,
        "ERROR" => LogLevel.Error,
        "CRITICAL" => LogLevel.Critical,
        "NONE" => LogLevel.None,
        _ => throw new ConfigException("--log-level", $"unknown level '{text}' (expected one of: {Names})"),
    };
}
