// The noisy-neighbour benchmark's report: reads the `sluice bench --json` results that
// bench/noisy-neighbour.sh left in DIR (params.json, solo-{gold,silver,bulk}.json,
// together-mclock.json, together-fifo.json, fnset.json), prints a Markdown table with the
// service-level checks of issue 6 and writes a PNG of per-function IOPS and p99 over time.
//
//   NoisyNeighbour.Report DIR PNG
using System.Globalization;
using System.Text;
using System.Text.Json;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: NoisyNeighbour.Report DIR PNG");
    return 2;
}

string dir = args[0];
string png = args[1];
var p = Load(Path.Combine(dir, "params.json"));
double capIops = p.GetProperty("capacity_iops").GetDouble();
double capMbps = p.GetProperty("capacity_mbps").GetDouble();
double goldRes = p.GetProperty("gold_reservation_iops").GetDouble();
double bulkLimIops = p.GetProperty("bulk_limit_iops").GetDouble();
double bulkLimMbps = p.GetProperty("bulk_limit_mbps").GetDouble();
double costUnit = p.GetProperty("cost_unit_bytes").GetDouble();
var weights = p.GetProperty("weights");
string[] functions = ["gold", "silver", "bulk"];

var solo = functions.ToDictionary(f => f, f => Run.Read(Path.Combine(dir, $"solo-{f}.json")));
var mclock = Run.Read(Path.Combine(dir, "together-mclock.json"));
var fifo = Run.Read(Path.Combine(dir, "together-fifo.json"));
Run? fnset = File.Exists(Path.Combine(dir, "fnset.json")) ? Run.Read(Path.Combine(dir, "fnset.json")) : null;

var ci = CultureInfo.InvariantCulture;
var o = new StringBuilder();
o.AppendLine(ci, $"### Noisy neighbour on `{p.GetProperty("backend").GetString()}`: `{p.GetProperty("device").GetString()}`");
o.AppendLine();
string bound = Str(p, "adaptive") == "on"
    ? string.Create(ci, $" with the adaptive bound in the mclock runs (qos.adaptiveOutstanding, tolerance {p.GetProperty("tolerance").GetDouble():0.##}; FIFO: the fixed bound only)")
    : "";
string split = p.TryGetProperty("split_bytes", out var sb) && sb.GetInt32() > 0
    ? string.Create(ci, $"; reads and writes over {sb.GetInt32() / 1024} KiB go to the device in parts in the mclock runs (qos.splitBytes; FIFO and the capacity runs: unsplit)")
    : "";
string load = Str(p, "load_average_start") is { Length: > 0 } la ? $" Load average (1/5/15 min) {la} at the start, {Str(p, "load_average_end")} at the end." : "";
o.AppendLine(ci, $"Capacity measured solo: {capIops:0} IOPS (4 KiB random reads, QD32), {capMbps:0} MB/s (1 MiB writes, QD32). " +
    $"gold: reservation {goldRes:0} IOPS, priority 1, latency target {p.GetProperty("gold_latency_target_ms").GetDouble():0.##} ms; " +
    $"silver: weight 2; bulk: weight 1, limit {bulkLimIops:0} IOPS and {bulkLimMbps:0} MB/s; qos.maxOutstanding {p.GetProperty("max_outstanding").GetInt32()}{bound}{split}. " +
    $"Together runs {mclock.Seconds:0} s, solo runs {solo["gold"].Seconds:0} s.{load}");
o.AppendLine();
o.AppendLine("| function | workload | solo IOPS | solo MB/s | solo p50/p99 ms | mclock IOPS | mclock MB/s | mclock p50/p99 ms | fifo IOPS | fifo MB/s | fifo p50/p99 ms |");
o.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var f in functions)
{
    var s = solo[f].Group(f);
    var m = mclock.Group(f);
    var q = fifo.Group(f);
    o.AppendLine(ci, $"| {f} | {mclock.Workload(f)} | {s.Iops:0} | {s.Mbps:0.0} | {Ms(s.P50)}/{Ms(s.P99)} | {m.Iops:0} | {m.Mbps:0.0} | {Ms(m.P50)}/{Ms(m.P99)} | {q.Iops:0} | {q.Mbps:0.0} | {Ms(q.P50)}/{Ms(q.P99)} |");
}

o.AppendLine();
o.AppendLine("| check (issue 6 \"Done when\") | mclock | fifo | goal | met (mclock) |");
o.AppendLine("| --- | ---: | ---: | --- | :---: |");
var (gm, gf) = (mclock.Group("gold"), fifo.Group("gold"));
double WindowsMet(Group g) => 100.0 * g.Series.Count(w => w.Iops >= goldRes) / Math.Max(1, g.Series.Count);
o.AppendLine(ci, $"| gold IOPS on average vs reservation {goldRes:0} | {gm.Iops:0} | {gf.Iops:0} | ≥ {goldRes:0} | {Yes(gm.Iops >= goldRes)} |");
o.AppendLine(ci, $"| gold 1-s windows at or above reservation | {WindowsMet(gm):0}% | {WindowsMet(gf):0}% | ≥ 95% | {Yes(WindowsMet(gm) >= 95)} |");
double Excess(Group g) => g.Series.Max(w => Math.Max(w.Iops / bulkLimIops, w.Mbps / bulkLimMbps)) - 1;
var (bm, bf) = (mclock.Group("bulk"), fifo.Group("bulk"));
o.AppendLine(ci, $"| bulk max 1-s window over its limit ({bulkLimIops:0} IOPS / {bulkLimMbps:0} MB/s) | {Pct(Excess(bm))} | {Pct(Excess(bf))} | ≤ +5% | {Yes(Excess(bm) <= 0.05)} |");
var bs = solo["bulk"].Group("bulk");
o.AppendLine(ci, $"| the same, bulk solo (mclock; where the limit binds) | {Pct(Excess(bs))} | | ≤ +5% | {Yes(Excess(bs) <= 0.05)} |");
double Cost(Run r, string f) => r.Jobs.Where(j => j.Group == f).Sum(j => j.Ios * (1 + j.Bs / costUnit)) / r.Seconds;
double wRatio = weights.GetProperty("silver").GetDouble() / weights.GetProperty("bulk").GetDouble();
double Split(Run r) => Cost(r, "silver") / Cost(r, "bulk");
double splitM = Split(mclock);
bool bulkAtLimit = bm.Iops >= 0.95 * bulkLimIops || bm.Mbps >= 0.95 * bulkLimMbps;
o.AppendLine(ci, $"| silver:bulk share in scheduler cost units (1 + bytes/{costUnit / 1024:0} KiB per I/O) | {splitM:0.00} | {Split(fifo):0.00} | {wRatio:0.##} ± 10%{(bulkAtLimit ? " (bulk at its limit: the limit, not the weight, decides)" : "")} | {Yes(Math.Abs(splitM / wRatio - 1) <= 0.10)} |");
double p99Ratio = gm.P99 / solo["gold"].Group("gold").P99;
o.AppendLine(ci, $"| gold p99 together / solo | {p99Ratio:0.00}× | {gf.P99 / solo["gold"].Group("gold").P99:0.00}× | ≤ 1.5× | {Yes(p99Ratio <= 1.5)} |");
double Util(Run r) => r.Jobs.Sum(j => j.Ios * Math.Max(1 / capIops, j.Bs / (capMbps * 1e6))) / r.Seconds;
double Total(Run r, Func<Group, double> pick) => functions.Sum(f => pick(r.Group(f)));
o.AppendLine(ci, $"| total IOPS / MB/s | {Total(mclock, g => g.Iops):0} / {Total(mclock, g => g.Mbps):0} | {Total(fifo, g => g.Iops):0} / {Total(fifo, g => g.Mbps):0} | | |");
double conservation = Util(mclock) / Util(fifo);
o.AppendLine(ci, $"| device busy (Σ I/Os × max(1/capacity IOPS, bytes/capacity MB/s) per s) | {Util(mclock):0.00} | {Util(fifo):0.00} | mclock ≥ 95% of fifo | {Yes(conservation >= 0.95)} ({conservation * 100:0}%) |");

if (fnset is not null)
{
    double at = p.GetProperty("fnset_at_s").GetDouble();
    double newRes = p.GetProperty("fnset_reservation_iops").GetDouble();
    var g = fnset.Group("gold");
    // Window i covers (i-1, i] seconds of the measured time.
    var before = g.Series.Where(w => w.Second <= Math.Floor(at)).ToList();
    var within = g.Series.Where(w => w.Second - 1 >= at && w.Second <= at + 2).ToList();
    var after = g.Series.Where(w => w.Second - 1 >= at + 2).ToList();
    double bi = before.Count > 0 ? before.Average(w => w.Iops) : 0;
    double wi = within.Count > 0 ? within.Average(w => w.Iops) : 0;
    double ai = after.Count > 0 ? after.Average(w => w.Iops) : 0;
    // The change can only show if gold was below the new reservation; then the rate must have
    // gone at least half-way towards it after 2 s, and half of that already within 2 s.
    bool applicable = newRes - bi >= 0.05 * Math.Max(bi, 1);
    bool moved = applicable && within.Count > 0 && ai - bi >= 0.5 * (Math.Min(newRes, ai) - bi) && ai - bi >= 0.25 * (newRes - bi) &&
        wi - bi >= 0.5 * (ai - bi);
    o.AppendLine();
    o.AppendLine(ci, $"Live change: `sluice fn set gold reservation_iops={newRes:0}` (from {goldRes:0}) at {at:0.0} s of a together run (mclock; gold at QD16 and without latency target): gold {bi:0} IOPS before, " +
        $"{wi:0} IOPS in the first whole second(s) within 2 s after, {ai:0} IOPS after that; reconnects {fnset.Jobs.Sum(j => j.Reconnects)}, errors {fnset.Jobs.Sum(j => j.Errors)}. " +
        $"Per-second gold IOPS: {string.Join(' ', g.Series.Select(w => w.Iops.ToString("0", ci)))}. Moved within 2 s: **{(!applicable ? "not shown (gold was already above the new reservation)" : moved ? "yes" : "no")}**.");
}

Console.Write(o.ToString());
Plot(png, mclock, fifo, fnset, goldRes, bulkLimIops, p);
Console.WriteLine();
Console.WriteLine($"plot: {png}");
return 0;

static string Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.ToString() : "";
static string Ms(double us) => (us / 1000).ToString(us < 10_000 ? "0.00" : "0.0", CultureInfo.InvariantCulture);
static string Pct(double x) => (x >= 0 ? "+" : "") + (x * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";
static string Yes(bool ok) => ok ? "yes" : "**no**";
static JsonElement Load(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement;

static void Plot(string path, Run mclock, Run fifo, Run? fnset, double goldRes, double bulkLim, JsonElement p)
{
    var colors = new Dictionary<string, ScottPlot.Color>
    {
        ["gold"] = ScottPlot.Color.FromHex("#C9A227"),
        ["silver"] = ScottPlot.Color.FromHex("#6C7A89"),
        ["bulk"] = ScottPlot.Color.FromHex("#C0392B"),
    };
    var runs = new List<(string Title, Run Run)> { ("service levels (mclock)", mclock), ("FIFO", fifo) };
    if (fnset is not null)
        runs.Add(("mclock, gold reservation raised live", fnset));
    const int W = 640, H = 450;
    var plots = new ScottPlot.Plot[runs.Count * 2];
    for (int i = 0; i < plots.Length; i++)
        plots[i] = new ScottPlot.Plot();
    double maxIops = runs.Max(r => r.Run.Groups.Max(g => g.Series.Count == 0 ? 0 : g.Series.Max(w => w.Iops))) * 1.1;
    double maxP99 = Math.Pow(10, Math.Ceiling(Math.Log10(runs.Max(r => r.Run.Groups.Max(g => g.Series.Count == 0 ? 1 : g.Series.Max(w => w.P99))) / 1000)));
    double minP99 = Math.Pow(10, Math.Floor(Math.Log10(Math.Max(10, runs.Min(r => r.Run.Groups.Min(g => g.Series.Count == 0 ? 1000 : g.Series.Min(w => w.P99)))) / 1000)));
    for (int c = 0; c < runs.Count; c++)
    {
        var (title, run) = runs[c];
        var iops = plots[c];
        var lat = plots[runs.Count + c];
        foreach (var name in new[] { "gold", "silver", "bulk" })
        {
            var g = run.Group(name);
            double[] xs = g.Series.Select(w => (double)w.Second).ToArray();
            var a = iops.Add.Scatter(xs, g.Series.Select(w => w.Iops).ToArray(), colors[name]);
            a.LegendText = name;
            a.LineWidth = 2;
            var b = lat.Add.Scatter(xs, g.Series.Select(w => Math.Log10(Math.Max(w.P99, 10) / 1000)).ToArray(), colors[name]);
            b.LegendText = name;
            b.LineWidth = 2;
        }

        var res = iops.Add.HorizontalLine(c == 2 ? p.GetProperty("fnset_reservation_iops").GetDouble() : goldRes, 1, colors["gold"], ScottPlot.LinePattern.Dashed);
        res.LegendText = c == 2 ? "gold reservation (after)" : "gold reservation";
        var lim = iops.Add.HorizontalLine(bulkLim, 1, colors["bulk"], ScottPlot.LinePattern.Dashed);
        lim.LegendText = "bulk IOPS limit";
        if (c == 2)
        {
            var v = iops.Add.VerticalLine(p.GetProperty("fnset_at_s").GetDouble(), 1, ScottPlot.Colors.Black, ScottPlot.LinePattern.Dotted);
            v.LegendText = "fn set";
        }

        iops.Title($"IOPS per second: {title}");
        iops.YLabel("IOPS");
        iops.XLabel("second");
        iops.Axes.SetLimits(0, run.Seconds + 1, 0, maxIops);
        iops.ShowLegend(ScottPlot.Alignment.UpperRight);
        lat.Title($"p99 latency per second: {title}");
        lat.YLabel("p99 (ms, log scale)");
        lat.XLabel("second");
        lat.Axes.SetLimits(0, run.Seconds + 1, Math.Log10(minP99), Math.Log10(maxP99));
        lat.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => Math.Pow(10, y).ToString("0.###", CultureInfo.InvariantCulture),
        };
        lat.ShowLegend(ScottPlot.Alignment.UpperRight);
    }

    // Two rows (IOPS, p99) by one column per run, composed on one Skia surface.
    using var surface = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(W * runs.Count, H * 2));
    surface.Canvas.Clear(SkiaSharp.SKColors.White);
    for (int i = 0; i < plots.Length; i++)
    {
        using var bitmap = SkiaSharp.SKBitmap.Decode(plots[i].GetImage(W, H).GetImageBytes());
        surface.Canvas.DrawBitmap(bitmap, (i % runs.Count) * W, (i / runs.Count) * H);
    }

    using var image = surface.Snapshot();
    using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
    using var file = File.Create(path);
    data.SaveTo(file);
}

internal sealed record Window(int Second, double Iops, double Mbps, double P50, double P99);

internal sealed record Group(string Name, double Iops, double Mbps, double P50, double P99, List<Window> Series);

internal sealed record Job(string Name, string Group, string Rw, int Bs, int Qd, long Ios, long Errors, long Reconnects);

internal sealed record Run(double Seconds, List<Job> Jobs, List<Group> Groups)
{
    public Group Group(string name) => Groups.Single(g => g.Name == name);

    public string Workload(string group) =>
        string.Join(" + ", Jobs.Where(j => j.Group == group).Select(j => $"{j.Rw} {(j.Bs >= 1 << 20 ? $"{j.Bs >> 20} MiB" : $"{j.Bs >> 10} KiB")} QD{j.Qd}"));

    public static Run Read(string path)
    {
        var root = JsonDocument.Parse(File.ReadAllText(path)).RootElement;
        var jobs = root.GetProperty("jobs").EnumerateArray().Select(j => new Job(
            j.GetProperty("name").GetString()!, j.GetProperty("group").GetString()!, j.GetProperty("rw").GetString()!,
            j.GetProperty("bs").GetInt32(), j.GetProperty("qd").GetInt32(),
            j.GetProperty("read").GetProperty("ios").GetInt64() + j.GetProperty("write").GetProperty("ios").GetInt64(),
            j.GetProperty("errors").GetInt64(), j.GetProperty("reconnects").GetInt64())).ToList();
        var groups = root.GetProperty("groups").EnumerateArray().Select(g => new Group(
            g.GetProperty("name").GetString()!, g.GetProperty("iops").GetDouble(), g.GetProperty("mb_per_s").GetDouble(),
            g.GetProperty("lat_us").GetProperty("p50").GetDouble(), g.GetProperty("lat_us").GetProperty("p99").GetDouble(),
            g.GetProperty("series").EnumerateArray().Select(w => new Window(
                w.GetProperty("second").GetInt32(), w.GetProperty("iops").GetDouble(), w.GetProperty("mb_per_s").GetDouble(),
                w.GetProperty("p50_us").GetDouble(), w.GetProperty("p99_us").GetDouble())).ToList())).ToList();
        return new Run(root.GetProperty("seconds").GetDouble(), jobs, groups);
    }
}
