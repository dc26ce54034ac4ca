using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sluice.Target.Configuration;

/// <summary>Reads the JSON config file (docs/configuration.md) into a <see cref="ServerConfig"/>.</summary>
public static partial class ConfigLoader
{
    /// <summary>
    /// Reads and validates <paramref name="path"/>. A relative <c>dataDir</c> is taken relative to
    /// the file's directory. Throws <see cref="ConfigException"/> with a one-line message.
    /// </summary>
    public static ServerConfig Load(string path)
    {
        var config = Read(path);
        ConfigValidator.Validate(config);
        return config;
    }

    /// <summary>
    /// Reads <paramref name="path"/> without semantic validation, for callers that change the
    /// config (command-line flags) before they call <see cref="ConfigValidator.Validate"/>.
    /// </summary>
    public static ServerConfig Read(string path)
    {
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ConfigException($"{path}: cannot read config file: {e.Message}", e);
        }

        string baseDirectory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? Directory.GetCurrentDirectory();
        try
        {
            return Parse(json, baseDirectory);
        }
        catch (ConfigException e)
        {
            throw new ConfigException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Parses config JSON without semantic validation. A relative <c>dataDir</c> becomes absolute
    /// against <paramref name="baseDirectory"/> (the config file's directory).
    /// </summary>
    public static ServerConfig Parse(string json, string baseDirectory)
    {
        ServerConfig? config;
        try
        {
            config = JsonSerializer.Deserialize(json, ConfigJsonContext.Default.ServerConfig);
        }
        catch (JsonException e)
        {
            throw Translate(e);
        }
        if (config is null)
            throw new ConfigException("$", "the config must be a JSON object, not null");

        if (!string.IsNullOrEmpty(config.DataDir))
            config.DataDir = Path.GetFullPath(config.DataDir, baseDirectory);
        return config;
    }

    /// <summary>The config as JSON in the file format; <see cref="Parse"/> reads it back.</summary>
    public static string ToJson(ServerConfig config) =>
        JsonSerializer.Serialize(config, ConfigJsonContext.Default.ServerConfig);

    // System.Text.Json reports "<problem> Path: $.targets[0].luns[1].blockSize | LineNumber: 3 | BytePositionInLine: 20."
    // We say "line 4: targets[0].luns[1].blockSize: <problem>" (lines one-based, as editors count).
    private static ConfigException Translate(JsonException e)
    {
        string line = e.LineNumber is { } n ? $"line {n + 1}: " : "";
        string keyPath = KeyPath(e.Path);
        string message = e.Message;
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut >= 0)
            message = message[..cut];
        cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut >= 0)
            message = message[..cut];
        message = message.TrimEnd(' ', '.', '|');

        var unmapped = UnmappedMember().Match(message);
        if (unmapped.Success)
        {
            string property = unmapped.Groups[1].Value;
            // The reported path usually ends with the unknown property itself.
            string parent = keyPath.EndsWith("." + property, StringComparison.Ordinal) ? keyPath[..^(property.Length + 1)]
                : keyPath == property ? ""
                : keyPath;
            string full = parent.Length == 0 ? property : $"{parent}.{property}";
            return new ConfigException($"{line}{full}: unknown property '{property}'", e);
        }

        var conversion = ConversionFailure().Match(message);
        if (conversion.Success)
            return new ConfigException($"{line}{Or(keyPath)}: expected {Describe(conversion.Groups[1].Value)}", e);

        return new ConfigException($"{line}{(keyPath.Length == 0 ? "" : keyPath + ": ")}invalid JSON: {message}", e);
    }

    private static string Or(string keyPath) => keyPath.Length == 0 ? "(top level)" : keyPath;

    private static string KeyPath(string? jsonPath)
    {
        if (string.IsNullOrEmpty(jsonPath) || jsonPath == "$")
            return "";
        var path = jsonPath.StartsWith("$.", StringComparison.Ordinal) ? jsonPath[2..] : jsonPath.TrimStart('$');
        // Property names that need quoting appear as ['name']; show them plainly.
        return QuotedMember().Replace(path, m => "." + m.Groups[1].Value).TrimStart('.');
    }

    private static string Describe(string clrType) => clrType switch
    {
        "System.Int32" => "a whole number",
        "System.UInt16" => "a whole number from 0 to 65535",
        "System.UInt64" => "a whole number from 0 up",
        "System.Boolean" => "true or false",
        "System.String" => "a string",
        _ when clrType.StartsWith("System.Collections.Generic.List", StringComparison.Ordinal) => "an array",
        _ when clrType.StartsWith("Sluice.", StringComparison.Ordinal) => "an object",
        _ => clrType,
    };

    [GeneratedRegex("The JSON property '([^']*)' could not be mapped")]
    private static partial Regex UnmappedMember();

    [GeneratedRegex("The JSON value could not be converted to ([^ .]+(?:\\.[^ .]+)*)")]
    private static partial Regex ConversionFailure();

    [GeneratedRegex(@"\['([^']*)'\]")]
    private static partial Regex QuotedMember();
}
