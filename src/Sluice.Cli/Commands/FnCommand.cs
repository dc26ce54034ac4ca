using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Sluice.Target.Control;

namespace Sluice.Cli.Commands;

/// <summary>
/// <c>sluice fn list | show NAME | add NAME ... | set NAME key=value... | rm NAME | stats [--watch]</c>:
/// the functions (tenants) of a running <c>sluice serve</c>, through its control socket. Changes last
/// until the server stops; the config file is not rewritten.
/// </summary>
internal static class FnCommand
{
    private static readonly Option<string> s_dataDir = new("--data-dir")
    {
        Description = "Data directory of the running serve (its control socket is DIR/control.sock); default as for serve.",
        HelpName = "DIR",
        Recursive = true,
    };

    private static readonly Option<string> s_control = new("--control")
    {
        Description = "Path of the control socket (instead of --data-dir).",
        HelpName = "PATH",
        Recursive = true,
    };

    private static readonly Argument<string> s_showName = new("name") { Description = "Function name." };
    private static readonly Argument<string> s_setName = new("name") { Description = "Function name." };
    private static readonly Argument<string[]> s_values = new("key=value")
    {
        Description = "Service-level values: " + string.Join(", ", ControlProtocol.Keys) + ".",
        Arity = ArgumentArity.OneOrMore,
    };

    private static readonly Argument<string> s_addName = new("name") { Description = "Name of the new function." };
    private static readonly Argument<string> s_rmName = new("name") { Description = "Function to remove." };
    private static readonly Argument<string[]> s_addValues = new("key=value")
    {
        Description = "Initial service level: " + string.Join(", ", ControlProtocol.Keys) + " (default: best effort, weight 1).",
        Arity = ArgumentArity.ZeroOrMore,
    };

    private static readonly Option<string> s_target = new("--target")
    {
        Description = "The function's target name (IQN or EUI).",
        HelpName = "IQN",
        Required = true,
    };

    private static readonly Option<string[]> s_luns = new("--lun")
    {
        Description = "A LUN carved from a configured device, [N=]device:NAME[:OFFSET]:SIZE (repeat for more; numbered 0, 1, ... unless N= is given; without OFFSET, the first free range that fits).",
        HelpName = "SLICE",
        Required = true,
        AllowMultipleArgumentsPerToken = false,
    };

    private static readonly Option<string[]> s_initiators = new("--initiator")
    {
        Description = "An initiator allowed to discover and log in to the target (repeat for more; none: everyone).",
        HelpName = "IQN",
    };

    private static readonly Option<string> s_chap = new("--chap") { Description = "CHAP the initiator must pass, USER:SECRET.", HelpName = "USER:SECRET" };
    private static readonly Option<string> s_mutualChap = new("--mutual-chap") { Description = "Mutual CHAP (the target's own), USER:SECRET.", HelpName = "USER:SECRET" };
    private static readonly Option<string> s_alias = new("--alias") { Description = "TargetAlias.", HelpName = "TEXT" };
    private static readonly Option<ushort[]> s_portalGroups = new("--portal-group")
    {
        Description = "Portal group tag the target is reachable through (repeat for more; none: all).",
        HelpName = "TAG",
    };

    private static readonly Option<bool> s_watch = new("--watch") { Description = "Print rates every interval until interrupted." };
    private static readonly Option<double> s_interval = new("--interval")
    {
        Description = "Seconds between --watch samples.",
        DefaultValueFactory = _ => 1,
    };

    public static Command Create()
    {
        var list = new Command("list", "List the functions and their service levels.");
        list.SetAction((p, ct) => Run(p, "fn list", ct, (c, o) => ListAsync(c, o, ct)));

        var show = new Command("show", "Show one function's service level and counters per device.") { s_showName };
        show.SetAction((p, ct) => Run(p, "fn show", ct, (c, o) => ShowAsync(c, o, p.GetValue(s_showName)!, ct)));

        var set = new Command("set", "Change a function's service level at once; sessions stay up.") { s_setName, s_values };
        set.SetAction((p, ct) =>
        {
            var values = ParseValues(p.GetValue(s_values)!, out string? error);
            if (error is not null)
            {
                p.InvocationConfiguration.Error.WriteLine($"sluice fn set: {error}");
                return Task.FromResult(ExitCodes.Usage);
            }

            return Run(p, "fn set", ct, (c, o) => SetAsync(c, o, p.GetValue(s_setName)!, values!, ct));
        });

        var add = new Command("add", "Add a function with one target whose LUNs are slices of configured devices; live at once.")
        {
            s_addName, s_addValues, s_target, s_luns, s_initiators, s_chap, s_mutualChap, s_alias, s_portalGroups,
        };
        add.SetAction((p, ct) =>
        {
            var request = AddRequest(p, out string? error);
            if (error is not null)
            {
                p.InvocationConfiguration.Error.WriteLine($"sluice fn add: {error}");
                return Task.FromResult(ExitCodes.Usage);
            }

            return Run(p, "fn add", ct, (c, o) => AddAsync(c, o, request!, ct));
        });

        var rm = new Command("rm", "Remove a function: its sessions are logged out, its targets and slices freed.") { s_rmName };
        rm.SetAction((p, ct) => Run(p, "fn rm", ct, (c, o) => RemoveAsync(c, o, p.GetValue(s_rmName)!, ct)));

        var stats = new Command("stats", "Scheduler counters per device and function.") { s_watch, s_interval };
        stats.SetAction((p, ct) =>
        {
            double interval = p.GetValue(s_interval);
            if (!(interval > 0) || interval > 3600)
            {
                p.InvocationConfiguration.Error.WriteLine("sluice fn stats: --interval must be between 0 and 3600 seconds");
                return Task.FromResult(ExitCodes.Usage);
            }

            return Run(p, "fn stats", ct, (c, o) => p.GetValue(s_watch) ? WatchAsync(c, o, TimeSpan.FromSeconds(interval), ct) : StatsAsync(c, o, ct));
        });

        var fn = new Command("fn", "Inspect and change the functions (tenants) of a running sluice serve.")
        {
            s_dataDir, s_control, list, show, add, set, rm, stats,
        };
        return fn;
    }

    /// <summary>The socket the options name: --control, else DIR/control.sock of --data-dir or serve's default.</summary>
    internal static string SocketPath(string? control, string? dataDir) =>
        control is { Length: > 0 } ? Path.GetFullPath(control) : ControlProtocol.SocketPath(dataDir is { Length: > 0 } ? dataDir : ServeConfigBuilder.DefaultDataDir());

    /// <summary>Parses <c>key=value</c> pairs; null and an error on the first bad one.</summary>
    internal static Dictionary<string, double>? ParseValues(IEnumerable<string> pairs, out string? error)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string pair in pairs)
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                error = $"'{pair}' is not key=value";
                return null;
            }

            string key = pair[..eq].Trim().Replace('-', '_').ToLowerInvariant();
            string text = pair[(eq + 1)..].Trim();
            if (!ControlProtocol.Keys.Contains(key))
            {
                error = $"unknown key '{pair[..eq]}' ({string.Join(", ", ControlProtocol.Keys)})";
                return null;
            }

            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
            {
                error = $"{key}: '{text}' is not a number";
                return null;
            }

            values[key] = value;
        }

        error = null;
        return values;
    }

    /// <summary>The control request for <c>fn add</c>'s arguments; null and an error when one is malformed.</summary>
    internal static JsonObject? AddRequest(ParseResult p, out string? error)
    {
        var values = ParseValues(p.GetValue(s_addValues) ?? [], out error);
        if (error is not null)
            return null;
        var luns = new JsonArray();
        foreach (string spec in p.GetValue(s_luns) ?? [])
        {
            int eq = spec.IndexOf('=', StringComparison.Ordinal);
            if (eq < 0)
            {
                luns.Add(spec.Trim());
                continue;
            }

            if (!ulong.TryParse(spec[..eq].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong number))
            {
                error = $"--lun '{spec}': expected [N=]device:NAME[:OFFSET]:SIZE";
                return null;
            }

            luns.Add(new JsonObject { ["number"] = number, ["backend"] = spec[(eq + 1)..].Trim() });
        }

        var request = new JsonObject
        {
            ["op"] = "add",
            ["name"] = p.GetValue(s_addName),
            ["target"] = p.GetValue(s_target),
            ["luns"] = luns,
            ["initiators"] = new JsonArray([.. (p.GetValue(s_initiators) ?? []).Select(i => (JsonNode)i)]),
            ["portal_groups"] = new JsonArray([.. (p.GetValue(s_portalGroups) ?? []).Select(g => (JsonNode)g)]),
        };
        if (p.GetValue(s_alias) is { } alias)
            request["alias"] = alias;
        foreach (var (option, field) in new[] { (s_chap, "chap"), (s_mutualChap, "mutual_chap") })
        {
            if (p.GetValue(option) is not { } chap)
                continue;
            int colon = chap.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || colon == chap.Length - 1)
            {
                error = $"{option.Name}: expected USER:SECRET";
                return null;
            }

            request[field] = new JsonObject { ["user"] = chap[..colon], ["secret"] = chap[(colon + 1)..] };
        }

        var v = new JsonObject();
        foreach (var (key, value) in values!)
            v[key] = value;
        request["values"] = v;
        return request;
    }

    private static async Task<int> Run(ParseResult parse, string name, CancellationToken ct, Func<ControlClient, TextWriter, Task<int>> body)
    {
        var error = parse.InvocationConfiguration.Error;
        string? control = parse.GetValue(s_control);
        string? dataDir = parse.GetValue(s_dataDir);
        if (control is not null && dataDir is not null)
        {
            await error.WriteLineAsync($"sluice {name}: give --control or --data-dir, not both");
            return ExitCodes.Usage;
        }

        string path = SocketPath(control, dataDir);
        try
        {
            await using var client = await ControlClient.ConnectAsync(path, ct);
            return await body(client, parse.InvocationConfiguration.Output);
        }
        catch (Exception e) when (e is ControlErrorException or IOException)
        {
            await error.WriteLineAsync($"sluice {name}: {e.Message.ReplaceLineEndings(" ").Trim()}");
            return ExitCodes.Failure;
        }
    }

    private static async Task<int> ListAsync(ControlClient client, TextWriter output, CancellationToken ct)
    {
        var reply = await client.RequestAsync(new JsonObject { ["op"] = "list" }, ct);
        var rows = new List<string[]> { LevelHeader() };
        foreach (var f in Array(reply["functions"]))
            rows.Add(LevelRow(f));
        await output.WriteAsync(Table(rows));
        return ExitCodes.Success;
    }

    private static async Task<int> ShowAsync(ControlClient client, TextWriter output, string name, CancellationToken ct)
    {
        var reply = await client.RequestAsync(new JsonObject { ["op"] = "show", ["name"] = name }, ct);
        var f = reply["function"] as JsonObject ?? [];
        await output.WriteAsync(Describe(f));
        var rows = new List<string[]> { CounterHeader("DEVICE") };
        foreach (var d in Array(f["devices"]))
            rows.Add(CounterRow(Text(d["device"]), d));
        await output.WriteLineAsync();
        await output.WriteAsync(Table(rows));
        return ExitCodes.Success;
    }

    private static async Task<int> SetAsync(ControlClient client, TextWriter output, string name, Dictionary<string, double> values, CancellationToken ct)
    {
        var v = new JsonObject();
        foreach (var (key, value) in values)
            v[key] = value;
        var reply = await client.RequestAsync(new JsonObject { ["op"] = "set", ["name"] = name, ["values"] = v }, ct);
        await output.WriteAsync(Describe(reply["function"] as JsonObject ?? []));
        return ExitCodes.Success;
    }

    private static async Task<int> AddAsync(ControlClient client, TextWriter output, JsonObject request, CancellationToken ct)
    {
        var reply = await client.RequestAsync(request, ct);
        await output.WriteAsync(Describe(reply["function"] as JsonObject ?? []));
        return ExitCodes.Success;
    }

    private static async Task<int> RemoveAsync(ControlClient client, TextWriter output, string name, CancellationToken ct)
    {
        var reply = await client.RequestAsync(new JsonObject { ["op"] = "rm", ["name"] = name }, ct);
        var removed = reply["removed"] as JsonObject ?? [];
        await output.WriteLineAsync($"removed function {Text(removed["name"])} (targets: {string.Join(", ", (removed["targets"] as JsonArray ?? []).Select(t => Text(t)))})");
        return ExitCodes.Success;
    }

    private static async Task<int> StatsAsync(ControlClient client, TextWriter output, CancellationToken ct)
    {
        var reply = await client.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
        List<string[]> rows = [["DEVICE", .. CounterHeader("FUNCTION")]];
        foreach (var d in Array(reply["devices"]))
        {
            foreach (var f in Array(d["functions"]))
                rows.Add([Text(d["device"]), .. CounterRow(Text(f["name"]), f)]);
        }

        await output.WriteAsync(Table(rows));
        return ExitCodes.Success;
    }

    private static async Task<int> WatchAsync(ControlClient client, TextWriter output, TimeSpan interval, CancellationToken ct)
    {
        // Counters whose rate per second the watch shows, in column order after MB/S.
        string[] counters = ["completed_ios", "completed_bytes", "read_bytes", "written_bytes", "reservation_dispatches", "weight_dispatches", "throttled_ms", "latency_target_misses"];
        var previous = new Dictionary<string, double[]>(StringComparer.Ordinal);
        long last = System.Diagnostics.Stopwatch.GetTimestamp();
        bool first = true;
        while (!ct.IsCancellationRequested)
        {
            var reply = await client.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(last, now).TotalSeconds;
            last = now;
            List<string[]> rows =
            [
                ["DEVICE", "FUNCTION", "IOPS", "MB/S", "RD_MB/S", "WR_MB/S", "RES/S", "WT/S", "THROTTLED%", "QUEUE", "OUT", "P99_MS", "WIN_P99_MS", "MISSES/S", "HOLD"],
            ];
            foreach (var d in Array(reply["devices"]))
            {
                foreach (var f in Array(d["functions"]))
                {
                    string key = Text(d["device"]) + "\n" + Text(f["name"]);
                    double[] current = [.. counters.Select(c => Num(f[c]))];
                    var was = previous.TryGetValue(key, out var p) ? p : current;
                    previous[key] = current;
                    double Rate(int i) => first || seconds <= 0 ? 0 : Math.Max(0, current[i] - was[i]) / seconds;
                    rows.Add(
                    [
                        Text(d["device"]), Text(f["name"]), Fmt(Rate(0), "0"), Fmt(Rate(1) / 1e6, "0.0"), Fmt(Rate(2) / 1e6, "0.0"), Fmt(Rate(3) / 1e6, "0.0"),
                        Fmt(Rate(4), "0"), Fmt(Rate(5), "0"), Fmt(Rate(6) / 10, "0.#"), Fmt(Num(f["queue_depth"])), Fmt(Num(f["outstanding"])),
                        Fmt(Num(f["p99_ms"]), "0.###"), Fmt(Num(f["window_p99_ms"]), "0.###"), Fmt(Rate(7), "0.#"), Fmt(Num(f["hold_back_scale"]), "0.##"),
                    ]);
                }
            }

            if (!first)
            {
                await output.WriteLineAsync(DateTime.UtcNow.ToString("HH:mm:ss", CultureInfo.InvariantCulture));
                await output.WriteAsync(Table(rows));
                await output.WriteLineAsync();
                await output.FlushAsync(ct);
            }

            first = false;
            try
            {
                await Task.Delay(interval, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return ExitCodes.Success;
    }

    private static string[] LevelHeader() => ["NAME", "RES_IOPS", "RES_MBPS", "LIM_IOPS", "LIM_MBPS", "WEIGHT", "PRIO", "LAT_MS", "TARGETS"];

    private static string[] LevelRow(JsonObject f) =>
    [
        Text(f["name"]), Rate(f["reservation_iops"]), Rate(f["reservation_mbps"]), Rate(f["limit_iops"]), Rate(f["limit_mbps"]),
        Fmt(Num(f["weight"]), "0.###"), Fmt(Num(f["priority"])), Rate(f["latency_target_ms"]),
        string.Join(",", (f["targets"] as JsonArray ?? []).Select(t => Text(t))),
    ];

    private static string Describe(JsonObject f)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"name: {Text(f["name"])}\n");
        foreach (string key in ControlProtocol.Keys)
            text.Append(CultureInfo.InvariantCulture, $"{key}: {Fmt(Num(f[key]), "0.###")}\n");
        text.Append(CultureInfo.InvariantCulture, $"targets: {string.Join(", ", (f["targets"] as JsonArray ?? []).Select(t => Text(t)))}\n");
        return text.ToString();
    }

    private static string[] CounterHeader(string first) =>
        [first, "IOS", "BYTES", "READ", "WRITTEN", "QUEUE", "OUT", "RES_DISP", "WT_DISP", "THROTTLED_MS", "P50_MS", "P99_MS", "P999_MS", "MAX_MS", "MISSES", "SLA_WIN", "HOLD"];

    private static string[] CounterRow(string first, JsonObject s) =>
    [
        first, Fmt(Num(s["completed_ios"])), Fmt(Num(s["completed_bytes"])), Fmt(Num(s["read_bytes"])), Fmt(Num(s["written_bytes"])),
        Fmt(Num(s["queue_depth"])), Fmt(Num(s["outstanding"])),
        Fmt(Num(s["reservation_dispatches"])), Fmt(Num(s["weight_dispatches"])), Fmt(Num(s["throttled_ms"]), "0"),
        Fmt(Num(s["p50_ms"]), "0.###"), Fmt(Num(s["p99_ms"]), "0.###"), Fmt(Num(s["p999_ms"]), "0.###"), Fmt(Num(s["max_ms"]), "0.###"),
        Fmt(Num(s["latency_target_misses"])), Fmt(Num(s["sla_windows_missed"])), Fmt(Num(s["hold_back_scale"]), "0.##"),
    ];

    private static IEnumerable<JsonObject> Array(JsonNode? node) => (node as JsonArray ?? []).OfType<JsonObject>();

    private static string Text(JsonNode? node) => node is JsonValue v && v.TryGetValue(out string? s) ? s : "";

    private static double Num(JsonNode? node) => node is JsonValue v && v.TryGetValue(out double d) ? d : 0;

    private static string Rate(JsonNode? node) => Num(node) is var d && d > 0 ? Fmt(d, "0.###") : "-";

    private static string Fmt(double value, string format = "0") => value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>Left-aligned columns two spaces apart.</summary>
    internal static string Table(IReadOnlyList<string[]> rows)
    {
        int columns = rows.Max(r => r.Length);
        var widths = new int[columns];
        foreach (var r in rows)
        {
            for (int i = 0; i < r.Length; i++)
                widths[i] = Math.Max(widths[i], r[i].Length);
        }

        var text = new StringBuilder();
        foreach (var r in rows)
        {
            var line = new StringBuilder();
            for (int i = 0; i < r.Length; i++)
            {
                line.Append(i == r.Length - 1 ? r[i] : r[i].PadRight(widths[i] + 2));
            }

            text.Append(line.ToString().TrimEnd()).Append('\n');
        }

        return text.ToString();
    }
}
