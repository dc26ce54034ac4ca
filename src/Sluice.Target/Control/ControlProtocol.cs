using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sluice.Qos;
using Sluice.Target.Configuration;

namespace Sluice.Target.Control;

/// <summary>
/// The control endpoint's requests and replies: one JSON object per line each way.
/// Requests: <c>{"op":"list"}</c>, <c>{"op":"show","name":F}</c>,
/// <c>{"op":"set","name":F,"values":{"limit_iops":500,...}}</c>, <c>{"op":"stats"}</c>,
/// <c>{"op":"add","name":F,"target":IQN,"luns":["device:NAME[:OFFSET]:SIZE" or {"number":N,"backend":...}],
/// "initiators":[IQN...],"chap":{"user":U,"secret":S},"mutual_chap":{...},"portal_groups":[TAG...],
/// "alias":A,"values":{...}}</c> and <c>{"op":"rm","name":F}</c>.
/// Replies: <c>{"ok":true,...}</c> or <c>{"ok":false,"error":"one line"}</c>.
/// </summary>
public static class ControlProtocol
{
    /// <summary>The file name of the control socket inside the data directory.</summary>
    public const string SocketFileName = "control.sock";

    /// <summary>The service-level keys <c>set</c> takes, in display order.</summary>
    public static IReadOnlyList<string> Keys { get; } =
    [
        "reservation_iops", "reservation_mbps", "limit_iops", "limit_mbps", "weight", "priority", "latency_target_ms",
    ];

    private static readonly (string Property, string Key)[] s_propertyKeys =
    [
        (nameof(ServiceLevel.ReservationIops), "reservation_iops"), (nameof(ServiceLevel.ReservationMbps), "reservation_mbps"),
        (nameof(ServiceLevel.LimitIops), "limit_iops"), (nameof(ServiceLevel.LimitMbps), "limit_mbps"),
        (nameof(ServiceLevel.LatencyTargetMs), "latency_target_ms"),
    ];

    /// <summary>The control socket of a server whose data directory is <paramref name="dataDir"/>.</summary>
    public static string SocketPath(string dataDir) => Path.Combine(Path.GetFullPath(dataDir), SocketFileName);

    /// <summary>A failure reply.</summary>
    public static string Error(string message) =>
        new JsonObject { ["ok"] = false, ["error"] = message.ReplaceLineEndings(" ").Trim() }.ToJsonString();

    /// <summary>Answers one request line; never throws for a bad request.</summary>
    internal static async Task<string> HandleAsync(TargetServer server, string line, CancellationToken cancellationToken)
    {
        var functions = server.Functions;
        var config = server.Config;
        JsonObject request;
        try
        {
            if (JsonNode.Parse(line) is not JsonObject o)
                return Error("request must be a JSON object");
            request = o;
        }
        catch (JsonException e)
        {
            return Error($"malformed JSON: {e.Message}");
        }

        try
        {
            string op = StringField(request, "op") ?? throw new ControlException("missing \"op\"");
            JsonObject reply = op switch
            {
                "list" => List(functions, config),
                "show" => Show(functions, config, Name(request)),
                "set" => Set(functions, config, request),
                "stats" => Stats(functions),
                "add" => await AddAsync(server, request, cancellationToken).ConfigureAwait(false),
                "rm" => await RemoveAsync(server, Name(request), cancellationToken).ConfigureAwait(false),
                _ => throw new ControlException($"unknown op '{op}' (list, show, set, stats, add, rm)"),
            };
            var ok = new JsonObject { ["ok"] = true };
            foreach (var (key, value) in reply.ToList())
            {
                reply.Remove(key);
                ok[key] = value;
            }

            return ok.ToJsonString();
        }
        catch (ControlException e)
        {
            return Error(e.Message);
        }
        catch (KeyNotFoundException e)
        {
            return Error(e.Message);
        }
        catch (ArgumentException e)
        {
            return Error(e.Message);
        }
        catch (ConfigException e)
        {
            return Error(e.Message);
        }
        catch (InvalidOperationException e)
        {
            return Error(e.Message);
        }
    }

    private static JsonObject List(FunctionRegistry functions, ServerConfig config)
    {
        var array = new JsonArray();
        foreach (string name in functions.FunctionNames)
            array.Add(Describe(functions, config, name));
        return new JsonObject { ["functions"] = array };
    }

    private static JsonObject Show(FunctionRegistry functions, ServerConfig config, string name)
    {
        var function = Describe(functions, config, name);
        var devices = new JsonArray();
        var counters = CountersOf(functions);
        foreach (var (device, stats) in functions.GetFunctionStats(name).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var s = StatsOf(stats, counters.GetValueOrDefault((name, device)));
            s.Remove("name");
            var d = new JsonObject { ["device"] = device };
            foreach (var (key, value) in s.ToList())
            {
                s.Remove(key);
                d[key] = value;
            }

            devices.Add(d);
        }

        function["devices"] = devices;
        return new JsonObject { ["function"] = function };
    }

    private static JsonObject Set(FunctionRegistry functions, ServerConfig config, JsonObject request)
    {
        string name = Name(request);
        if (request["values"] is not JsonObject values)
            throw new ControlException("\"values\" must be an object of key: number");
        if (values.Count == 0)
            throw new ControlException($"no values to set ({string.Join(", ", Keys)})");

        var level = ApplyValues(functions.GetServiceLevel(name), values);
        functions.SetServiceLevel(name, level);
        return new JsonObject { ["function"] = Describe(functions, config, name) };
    }

    /// <summary>Applies <c>set</c>'s key: number pairs to <paramref name="level"/> and checks the result.</summary>
    private static ServiceLevel ApplyValues(ServiceLevel level, JsonObject values)
    {
        foreach (var (key, node) in values)
        {
            if (!Keys.Contains(key))
                throw new ControlException($"unknown key '{key}' ({string.Join(", ", Keys)})");
            double value = Number(key, node);
            level = key switch
            {
                "reservation_iops" => level with { ReservationIops = value },
                "reservation_mbps" => level with { ReservationMbps = value },
                "limit_iops" => level with { LimitIops = value },
                "limit_mbps" => level with { LimitMbps = value },
                "weight" => level with { Weight = value },
                "priority" => level with { Priority = Integer(key, value) },
                _ => level with { LatencyTargetMs = value },
            };
        }

        try
        {
            level.Validate();
        }
        catch (ArgumentException e)
        {
            // ServiceLevel names its properties; the operator typed the snake_case keys.
            string message = e.Message.Split(" (Parameter", 2)[0];
            foreach (var (property, key) in s_propertyKeys)
                message = message.Replace(property, key, StringComparison.Ordinal);
            throw new ControlException(message);
        }

        return level;
    }

    private static async Task<JsonObject> AddAsync(TargetServer server, JsonObject request, CancellationToken cancellationToken)
    {
        string name = Name(request);
        string target = StringField(request, "target") is { Length: > 0 } t ? t : throw new ControlException("missing \"target\" (the function's target IQN)");
        if (request["luns"] is not JsonArray luns || luns.Count == 0)
            throw new ControlException("\"luns\" must be a non-empty array of device slices (device:NAME[:OFFSET]:SIZE)");

        var lunConfigs = new List<LunConfig>();
        ulong next = 0;
        for (int i = 0; i < luns.Count; i++)
        {
            var lun = new LunConfig { Number = next };
            switch (luns[i])
            {
                case JsonValue v when v.TryGetValue(out string? backend):
                    lun.Backend = backend;
                    break;
                case JsonObject o:
                    lun.Backend = StringField(o, "backend") ?? throw new ControlException($"luns[{i}]: missing \"backend\"");
                    if (o["number"] is not null)
                    {
                        double n = Number($"luns[{i}].number", o["number"]);
                        if (n < 0 || n > ConfigValidator.MaxLunNumber || n != Math.Floor(n))
                            throw new ControlException($"luns[{i}].number: must be a whole number 0..{ConfigValidator.MaxLunNumber}");
                        lun.Number = (ulong)n;
                    }

                    if (o["block_size"] is not null)
                        lun.BlockSize = Integer($"luns[{i}].block_size", Number($"luns[{i}].block_size", o["block_size"]));
                    break;
                default:
                    throw new ControlException($"luns[{i}]: expected \"device:NAME[:OFFSET]:SIZE\" or {{\"number\":N,\"backend\":...}}");
            }

            next = lun.Number + 1;
            lunConfigs.Add(lun);
        }

        var targetConfig = new TargetConfig
        {
            Name = target,
            Alias = StringField(request, "alias"),
            Luns = lunConfigs,
            AllowedInitiators = Strings(request, "initiators"),
            Chap = Chap(request, "chap"),
            MutualChap = Chap(request, "mutual_chap"),
            PortalGroups = [.. Numbers(request, "portal_groups").Select(n => n is >= 0 and <= ushort.MaxValue && n == Math.Floor(n)
                ? (ushort)n
                : throw new ControlException($"portal_groups: {n.ToString(CultureInfo.InvariantCulture)} is not a portal group tag (0..65535)"))],
        };
        var level = request["values"] is JsonObject values ? ApplyValues(ServiceLevel.BestEffort, values)
            : request["values"] is null ? ServiceLevel.BestEffort
            : throw new ControlException("\"values\" must be an object of key: number");
        var function = new FunctionConfig
        {
            Name = name,
            ReservationIops = level.ReservationIops,
            ReservationMbps = level.ReservationMbps,
            LimitIops = level.LimitIops,
            LimitMbps = level.LimitMbps,
            Weight = level.Weight,
            Priority = level.Priority,
            LatencyTargetMs = level.LatencyTargetMs,
        };
        await server.AddFunctionAsync(function, targetConfig, cancellationToken).ConfigureAwait(false);
        return new JsonObject { ["function"] = Describe(server.Functions, server.Config, name) };
    }

    private static async Task<JsonObject> RemoveAsync(TargetServer server, string name, CancellationToken cancellationToken)
    {
        var function = Describe(server.Functions, server.Config, name);
        await server.RemoveFunctionAsync(name, cancellationToken).ConfigureAwait(false);
        return new JsonObject { ["removed"] = function };
    }

    private static List<string> Strings(JsonObject request, string field)
    {
        if (request[field] is null)
            return [];
        if (request[field] is not JsonArray array)
            throw new ControlException($"\"{field}\" must be an array of strings");
        return [.. array.Select(n => n is JsonValue v && v.TryGetValue(out string? s) ? s : throw new ControlException($"\"{field}\" must be an array of strings"))];
    }

    private static List<double> Numbers(JsonObject request, string field)
    {
        if (request[field] is null)
            return [];
        if (request[field] is not JsonArray array)
            throw new ControlException($"\"{field}\" must be an array of numbers");
        return [.. array.Select(n => Number(field, n))];
    }

    private static ChapConfig? Chap(JsonObject request, string field) => request[field] switch
    {
        null => null,
        JsonObject o => new ChapConfig
        {
            User = StringField(o, "user") ?? throw new ControlException($"{field}: missing \"user\""),
            Secret = StringField(o, "secret") ?? throw new ControlException($"{field}: missing \"secret\""),
        },
        _ => throw new ControlException($"\"{field}\" must be an object {{\"user\":...,\"secret\":...}}"),
    };

    private static JsonObject Stats(FunctionRegistry functions)
    {
        var devices = new JsonArray();
        var counters = CountersOf(functions);
        foreach (var (device, snapshot) in functions.GetSnapshot().OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var list = new JsonArray();
            foreach (var f in snapshot.Functions)
                list.Add(StatsOf(f, counters.GetValueOrDefault((f.Name, device))));
            devices.Add(new JsonObject
            {
                ["device"] = device,
                ["mode"] = snapshot.Mode == QosMode.Fifo ? "fifo" : "mclock",
                ["max_outstanding"] = snapshot.MaxOutstanding,
                ["outstanding"] = snapshot.Outstanding,
                ["outstanding_cost_window"] = double.IsFinite(snapshot.OutstandingCostWindow) ? Math.Round(snapshot.OutstandingCostWindow, 2) : null,
                ["outstanding_cost"] = Math.Round(snapshot.OutstandingCost, 2),
                ["base_latency_ms"] = Math.Round(snapshot.BaseLatency.TotalMilliseconds, 3),
                ["queued"] = snapshot.Queued,
                ["functions"] = list,
            });
        }

        return new JsonObject { ["devices"] = devices };
    }

    private static JsonObject Describe(FunctionRegistry functions, ServerConfig config, string name)
    {
        var level = functions.GetServiceLevel(name);
        var targets = new JsonArray();
        foreach (var f in config.Functions)
        {
            if (f.Name == name)
            {
                foreach (string t in f.Targets)
                    targets.Add(t);
            }
        }

        var o = new JsonObject { ["name"] = name, ["targets"] = targets };
        foreach (var (key, value) in LevelValues(level))
            o[key] = value;
        return o;
    }

    private static IEnumerable<(string Key, JsonNode Value)> LevelValues(ServiceLevel level)
    {
        yield return ("reservation_iops", level.ReservationIops);
        yield return ("reservation_mbps", level.ReservationMbps);
        yield return ("limit_iops", level.LimitIops);
        yield return ("limit_mbps", level.LimitMbps);
        yield return ("weight", level.Weight);
        yield return ("priority", level.Priority);
        yield return ("latency_target_ms", level.LatencyTargetMs);
    }

    private static Dictionary<(string Function, string Device), IoCounters> CountersOf(FunctionRegistry functions) =>
        functions.GetSources().Functions.ToDictionary(l => (l.Function, l.Device), l => l.Counters);

    private static JsonObject StatsOf(QosFunctionStats f, IoCounters? counters) => new()
    {
        ["name"] = f.Name,
        ["completed_ios"] = f.CompletedIos,
        ["completed_bytes"] = f.CompletedBytes,
        ["read_bytes"] = counters?.ReadBytes ?? 0,
        ["written_bytes"] = counters?.WrittenBytes ?? 0,
        ["queue_depth"] = f.QueueDepth,
        ["outstanding"] = f.Outstanding,
        ["reservation_dispatches"] = f.ReservationDispatches,
        ["weight_dispatches"] = f.WeightDispatches,
        ["throttled_ms"] = f.ThrottledTime.TotalMilliseconds,
        ["latency_target_misses"] = f.LatencyTargetMisses,
        ["sla_windows_missed"] = f.SlaWindowsMissed,
        ["hold_back_scale"] = f.HoldBackScale,
        ["p50_ms"] = f.Latency.P50.TotalMilliseconds,
        ["p99_ms"] = f.Latency.P99.TotalMilliseconds,
        ["p999_ms"] = f.Latency.P999.TotalMilliseconds,
        ["max_ms"] = f.Latency.Max.TotalMilliseconds,
        ["window_p99_ms"] = f.WindowLatency.P99.TotalMilliseconds,
    };

    private static string Name(JsonObject request) =>
        StringField(request, "name") is { Length: > 0 } name ? name : throw new ControlException("missing \"name\"");

    private static string? StringField(JsonObject request, string field) =>
        request[field] is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    private static double Number(string key, JsonNode? node)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && double.IsFinite(d))
            return d;
        if (node is JsonValue s && s.TryGetValue(out string? text)
            && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) && double.IsFinite(parsed))
            return parsed;
        throw new ControlException($"{key}: '{node?.ToJsonString() ?? "null"}' is not a number");
    }

    private static int Integer(string key, double value) =>
        value == Math.Floor(value) && value >= int.MinValue && value <= int.MaxValue
            ? (int)value
            : throw new ControlException($"{key}: must be a whole number (got {value.ToString(CultureInfo.InvariantCulture)})");

    private sealed class ControlException(string message) : Exception(message);
}
