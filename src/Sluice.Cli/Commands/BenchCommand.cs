using System.Buffers.Binary;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Sluice.Initiator;

namespace Sluice.Cli.Commands;

/// <summary>
/// <c>sluice bench URL...</c>: one job per URL (its own session), QD workers each, reads/writes of
/// --bs for --time; per job IOPS, MB/s and latency percentiles from an allocation-free histogram.
/// </summary>
internal static class BenchCommand
{
    private static readonly Argument<string[]> s_urls = new("url") { Description = "LUNs to load: iscsi://host[:port]/target-iqn/lun (one job each)", Arity = ArgumentArity.OneOrMore };
    private static readonly Option<string> s_rw = new("--rw") { Description = "read, write, randread, randwrite or randrw[:READ%]. [default: randread]", HelpName = "MODE" };
    private static readonly Option<string> s_bs = new("--bs") { Description = "I/O size. [default: 4k]", HelpName = "SIZE" };
    private static readonly Option<int> s_qd = new("--qd") { Description = "I/Os in flight per job. [default: 32]", DefaultValueFactory = _ => 32 };
    private static readonly Option<string> s_time = new("--time") { Description = "Run time. [default: 10s]", HelpName = "DURATION" };
    private static readonly Option<string> s_ramp = new("--ramp") { Description = "Warm-up not counted. [default: 1s]", HelpName = "DURATION" };
    private static readonly Option<string> s_size = new("--size") { Description = "Use only the first SIZE bytes of each LUN. [default: the whole LUN]", HelpName = "SIZE" };
    private static readonly Option<bool> s_verify = new("--verify") { Description = "Fill the region with a per-block pattern first; writes keep it, reads check it." };
    private static readonly Option<bool> s_json = new("--json") { Description = "Print the results as JSON." };
    private static readonly Option<string> s_chap = ClientCommon.ChapOption();
    private static readonly Option<string> s_mutual = ClientCommon.MutualChapOption();
    private static readonly Option<string> s_initiator = ClientCommon.InitiatorNameOption();
    private static readonly Option<bool> s_digest = new("--digest") { Description = "Offer HeaderDigest and DataDigest = CRC32C." };
    private static readonly Option<string> s_offload = new("--offload") { Description = "Per-byte engine on this side: auto or none. [default: auto]", HelpName = "auto|none" };

    public static Command Create()
    {
        var command = new Command("bench", "Measure IOPS, throughput and latency percentiles against one or more LUNs.")
        {
            s_urls, s_rw, s_bs, s_qd, s_time, s_ramp, s_size, s_verify, s_json, s_chap, s_mutual, s_initiator, s_digest, s_offload,
        };
        command.SetAction((parse, ct) => ClientRunner.RunAsync("bench", parse.InvocationConfiguration.Error,
            () => RunAsync(parse, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct)));
        return command;
    }

    private sealed record Job(string Url, IscsiLun Lun, long Blocks)
    {
        public BenchHistogram ReadLatency { get; } = new();
        public BenchHistogram WriteLatency { get; } = new();
        public long Errors;
        public long VerifyFailures;
    }

    private static async Task<int> RunAsync(ParseResult parse, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var mode = (parse.GetValue(s_rw) ?? "randread").ToLowerInvariant();
        int readPercent = 100;
        bool random = mode.StartsWith("rand", StringComparison.Ordinal);
        switch (mode.Split(':')[0])
        {
            case "read" or "randread":
                break;
            case "write" or "randwrite":
                readPercent = 0;
                break;
            case "randrw":
                readPercent = 50;
                if (mode.Contains(':', StringComparison.Ordinal) &&
                    (!int.TryParse(mode.AsSpan(mode.IndexOf(':', StringComparison.Ordinal) + 1), NumberStyles.None, CultureInfo.InvariantCulture, out readPercent) || readPercent > 100))
                {
                    throw new UsageException("--rw randrw:N wants N = read percentage 0..100");
                }

                break;
            default:
                throw new UsageException($"--rw '{mode}' is not read, write, randread, randwrite or randrw[:N]");
        }

        int bs = (int)ClientCommon.ParseSize(parse.GetValue(s_bs) ?? "4k", "--bs");
        int qd = parse.GetValue(s_qd);
        if (qd is < 1 or > 1024)
        {
            throw new UsageException("--qd must be 1..1024");
        }

        var duration = ClientCommon.ParseDuration(parse.GetValue(s_time) ?? "10s", "--time");
        var ramp = parse.GetValue(s_ramp) is { } r ? ClientCommon.ParseDuration(r, "--ramp") : TimeSpan.FromSeconds(1);
        long? sizeLimit = parse.GetValue(s_size) is { } sz ? ClientCommon.ParseSize(sz, "--size") : null;
        bool verify = parse.GetValue(s_verify);
        var digest = parse.GetValue(s_digest) ? DigestPreference.Crc32C : DigestPreference.None;
        var offload = parse.GetValue(s_offload) switch
        {
            null or "auto" => Sluice.Offload.OffloadMode.Auto,
            "none" => Sluice.Offload.OffloadMode.None,
            var other => throw new UsageException($"--offload must be auto or none (got '{other}')"),
        };
        var options = ClientCommon.Options(parse, s_chap, s_mutual, s_initiator, qd + 8) with
        {
            NopInterval = TimeSpan.FromSeconds(30),
            HeaderDigest = digest,
            DataDigest = digest,
            Offload = offload,
        };

        var jobs = new List<Job>();
        try
        {
            foreach (var text in parse.GetValue(s_urls)!)
            {
                var url = ClientCommon.ParseUrl(text, needTarget: true);
                var lun = await IscsiLun.OpenAsync(url, options, ct);
                if (bs % lun.BlockSize != 0)
                {
                    await lun.DisposeAsync();
                    throw new UsageException($"--bs {bs} is not a multiple of {text}'s {lun.BlockSize}-byte block");
                }

                long bytes = Math.Min(sizeLimit ?? lun.SizeBytes, lun.SizeBytes) / bs * bs;
                if (bytes < bs)
                {
                    await lun.DisposeAsync();
                    throw new UsageException($"{text} is smaller than one {bs}-byte I/O");
                }

                jobs.Add(new Job(text, lun, bytes / lun.BlockSize));
            }

            if (verify)
            {
                foreach (var job in jobs)
                {
                    await FillPatternAsync(job, ct);
                }
            }

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            long measuring = 0;
            var sw = Stopwatch.StartNew();
            var tasks = new List<Task>();
            foreach (var job in jobs)
            {
                long slots = job.Blocks * job.Lun.BlockSize / bs;
                long sequential = -1;
                for (int w = 0; w < qd; w++)
                {
                    int seed = w;
                    tasks.Add(Task.Run(() => WorkerAsync(job, bs, slots, random, readPercent, verify, seed, () => Interlocked.Increment(ref sequential),
                        () => Volatile.Read(ref measuring) != 0, stop.Token)));
                }
            }

            await Task.Delay(ramp, ct);
            Interlocked.Exchange(ref measuring, 1);
            long start = Stopwatch.GetTimestamp();
            await Task.Delay(duration, ct);
            Interlocked.Exchange(ref measuring, 0);
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            await stop.CancelAsync();
            await Task.WhenAll(tasks);
            return await ReportAsync(jobs, mode, bs, qd, seconds, parse.GetValue(s_json), output, error);
        }
        finally
        {
            foreach (var job in jobs)
            {
                await job.Lun.DisposeAsync();
            }
        }
    }

    private static async Task WorkerAsync(Job job, int bs, long slots, bool random, int readPercent, bool verify, int seed,
        Func<long> nextSequential, Func<bool> measuring, CancellationToken stop)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(bs, pinned: true);
        var rng = new Random(unchecked((Environment.TickCount * 31) + seed));
        int blocksPerIo = bs / job.Lun.BlockSize;
        var readHist = new BenchHistogram();
        var writeHist = new BenchHistogram();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                long slot = random ? rng.NextInt64(slots) : nextSequential() % slots;
                long lba = slot * blocksPerIo;
                bool read = readPercent == 100 || (readPercent > 0 && rng.Next(100) < readPercent);
                if (!read && verify)
                {
                    FillPattern(buffer, lba, job.Lun.BlockSize);
                }

                long t0 = Stopwatch.GetTimestamp();
                try
                {
                    if (read)
                    {
                        await job.Lun.ReadAsync(lba, buffer, CancellationToken.None);
                    }
                    else
                    {
                        await job.Lun.WriteAsync(lba, buffer, cancellationToken: CancellationToken.None);
                    }
                }
                catch (Exception e) when (e is IOException or TimeoutException)
                {
                    Interlocked.Increment(ref job.Errors);
                    if (!job.Lun.Session.IsConnected)
                    {
                        await Task.Delay(50, CancellationToken.None);
                    }

                    continue;
                }

                long ns = (long)((Stopwatch.GetTimestamp() - t0) * (1e9 / Stopwatch.Frequency));
                if (measuring())
                {
                    (read ? readHist : writeHist).Record(ns);
                }

                if (read && verify && !CheckPattern(buffer, lba, job.Lun.BlockSize))
                {
                    Interlocked.Increment(ref job.VerifyFailures);
                }
            }
        }
        finally
        {
            lock (job)
            {
                job.ReadLatency.Add(readHist);
                job.WriteLatency.Add(writeHist);
            }
        }
    }

    /// <summary>Every 8-byte word of block b holds b * 0x9E3779B97F4A7C15 + word index: any misplaced or stale block shows.</summary>
    private static void FillPattern(Span<byte> buffer, long lba, int blockSize)
    {
        for (int o = 0; o < buffer.Length; o += 8)
        {
            long block = lba + (o / blockSize);
            BinaryPrimitives.WriteUInt64LittleEndian(buffer[o..], unchecked(((ulong)block * 0x9E3779B97F4A7C15UL) + (ulong)(o % blockSize)));
        }
    }

    private static bool CheckPattern(ReadOnlySpan<byte> buffer, long lba, int blockSize)
    {
        for (int o = 0; o < buffer.Length; o += 8)
        {
            long block = lba + (o / blockSize);
            if (BinaryPrimitives.ReadUInt64LittleEndian(buffer[o..]) != unchecked(((ulong)block * 0x9E3779B97F4A7C15UL) + (ulong)(o % blockSize)))
            {
                return false;
            }
        }

        return true;
    }

    private static async Task FillPatternAsync(Job job, CancellationToken ct)
    {
        int bs = job.Lun.BlockSize;
        int chunkBlocks = (1 << 20) / bs;
        var buffer = new byte[chunkBlocks * bs];
        for (long lba = 0; lba < job.Blocks; lba += chunkBlocks)
        {
            int n = (int)Math.Min(chunkBlocks, job.Blocks - lba);
            FillPattern(buffer.AsSpan(0, n * bs), lba, bs);
            await job.Lun.WriteAsync(lba, buffer.AsMemory(0, n * bs), cancellationToken: ct);
        }
    }

    private static async Task<int> ReportAsync(List<Job> jobs, string mode, int bs, int qd, double seconds, bool json, TextWriter output, TextWriter error)
    {
        bool failed = false;
        if (json)
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                w.WriteString("rw", mode);
                w.WriteNumber("bs", bs);
                w.WriteNumber("qd", qd);
                w.WriteNumber("seconds", Math.Round(seconds, 3));
                w.WriteStartArray("jobs");
                foreach (var job in jobs)
                {
                    w.WriteStartObject();
                    w.WriteString("url", job.Url);
                    WriteSide(w, "read", job.ReadLatency, bs, seconds);
                    WriteSide(w, "write", job.WriteLatency, bs, seconds);
                    w.WriteNumber("errors", job.Errors);
                    w.WriteNumber("verify_failures", job.VerifyFailures);
                    w.WriteNumber("reconnects", job.Lun.Session.Reconnects);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            await output.WriteLineAsync(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
        }

        foreach (var job in jobs)
        {
            if (!json)
            {
                await output.WriteLineAsync($"job {job.Url}: {mode} bs={ClientCommon.FormatBytes(bs)} qd={qd} time={seconds:0.0}s");
                foreach (var (name, h) in new[] { ("read", job.ReadLatency), ("write", job.WriteLatency) })
                {
                    if (h.Count == 0)
                    {
                        continue;
                    }

                    double iops = h.Count / seconds;
                    await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                        $"  {name,-5}: {iops,10:0} IOPS  {iops * bs / 1e6,9:0.0} MB/s  lat(us) avg {h.Sum / h.Count / 1e3:0.0} p50 {Us(h.Percentile(50))} p90 {Us(h.Percentile(90))} p99 {Us(h.Percentile(99))} p99.9 {Us(h.Percentile(99.9))} max {Us(h.Max)}"));
                }
            }

            if (job.Errors > 0 || job.VerifyFailures > 0)
            {
                failed = true;
                await error.WriteLineAsync($"sluice bench: {job.Url}: {job.Errors} I/O errors, {job.VerifyFailures} verify failures");
            }
        }

        return failed ? ExitCodes.Failure : ExitCodes.Success;
    }

    private static string Us(long ns) => (ns / 1e3).ToString(ns < 100_000 ? "0.0" : "0", CultureInfo.InvariantCulture);

    private static void WriteSide(Utf8JsonWriter w, string name, BenchHistogram h, int bs, double seconds)
    {
        w.WriteStartObject(name);
        w.WriteNumber("ios", h.Count);
        w.WriteNumber("iops", Math.Round(h.Count / seconds, 1));
        w.WriteNumber("mb_per_s", Math.Round(h.Count * (double)bs / seconds / 1e6, 2));
        w.WriteStartObject("lat_us");
        w.WriteNumber("avg", h.Count == 0 ? 0 : Math.Round(h.Sum / h.Count / 1e3, 2));
        w.WriteNumber("p50", h.Percentile(50) / 1e3);
        w.WriteNumber("p90", h.Percentile(90) / 1e3);
        w.WriteNumber("p99", h.Percentile(99) / 1e3);
        w.WriteNumber("p99_9", h.Percentile(99.9) / 1e3);
        w.WriteNumber("max", h.Max / 1e3);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
