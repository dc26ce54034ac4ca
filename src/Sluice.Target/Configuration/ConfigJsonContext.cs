using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sluice.Target.Configuration;

/// <summary>
/// The config file's JSON shape: camelCase keys (read case-insensitively), comments and trailing
/// commas allowed, unknown keys rejected so a misspelt key is an error rather than a silent default.
/// </summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    PropertyNameCaseInsensitive = true,
    NumberHandling = JsonNumberHandling.Strict,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    WriteIndented = true)]
[JsonSerializable(typeof(ServerConfig))]
internal sealed partial class ConfigJsonContext : JsonSerializerContext;
