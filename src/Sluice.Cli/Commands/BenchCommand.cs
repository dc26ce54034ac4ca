using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Sluice.Initiator;

namespace Sluice.Cli.Commands;

/// <summary>
/// <c>sluice bench URL... [--job name=N,url=U,rw=M,bs=S,qd=Q,...]...</c>: one job per URL and per
/// <c>--job</c> (each its own session), QD workers each, reads/writes for --time; per job and per
/// group of jobs IOPS, MB/s and latency percentiles from an allocation-free histogram, and a time
/// series of one-second windows (IOPS, MB/s, p50/p99 of that window).
/// </summary>
internal static class BenchCommand
{
    private static readonly Argument<string[]> s_urls = new("url") { Description = "LUNs to load: iscsi://host[:port]/target-iqn/lun (one job each, with the global options)", Arity = ArgumentArity.ZeroOrMore };
    private static readonly Option<string[]> s_jobs = new("--job")
    {
        Description = "A job with its own options: name=N,url=U[,rw=M][,bs=S][,qd=Q][,size=S][,group=G][,initiator=IQN]; unset keys take the global options. Repeatable.",
        HelpName = "SPEC",
        AllowMultipleArgumentsPerToken = false,
    };
    private static readonly Option<string> s_rw = new("--rw") { Description = "read, write, randread, randwrite or randrw[:READ%]. [default: randread]", HelpName = "MODE" };
    private static readonly Option<string> s_bs = new("--bs") { Description = "I/O size. [default: 4k]", HelpName = "SIZE" };
    private static readonly Option<int> s_qd = new("--qd") { Description = "I/Os in flight per job. [default: 32]", DefaultValueFactory = _ => 32 };
    private static readonly Option<string> s_time = new("--time") { Description = "Run time. [default: 10s]", HelpName = "DURATION" };
    private static readonly Option<string> s_ramp = new("--ramp") { Description = "Warm-up not counted. [default: 1s]", HelpName = "DURATION" };
    private static readonly Option<string> s_size = new("--size") { Description = "Use only the first SIZE bytes of each LUN. [default: the whole LUN]", HelpName = "SIZE" };
    private static readonly Option<bool> s_verify = new("--verify")
    {
        Description = "Stamp every block (LBA, job, generation) and keep a ledger of acknowledged writes: the region is filled first, reads check the stamps, and a verify pass after the run reads every block back.",
    };
    private static readonly Option<bool> s_json = new("--json") { Description = "Print the results as JSON, with the per-second series of every job and group." };
    private static readonly Option<string> s_series = new("--series") { Description = "Also write the per-second series as CSV (group,job,second,ios,iops,mb_per_s,p50_us,p99_us) to FILE.", HelpName = "FILE" };
    private static readonly Option<string> s_chap = ClientCommon.ChapOption();
    private static readonly Option<string> s_mutual = ClientCommon.MutualChapOption();
    private static readonly Option<string> s_initiator = ClientCommon.InitiatorNameOption();
    private static readonly Option<bool> s_digest = new("--digest") { Description = "Offer HeaderDigest and DataDigest = CRC32C." };
    private static readonly Option<bool> s_noProgress = new("--no-progress") { Description = "No live progress line on stderr (shown by default when stderr is a terminal)." };
    private static readonly Option<string> s_offload = new("--offload") { Description = "Per-byte engine on this side: auto or none. [default: auto]", HelpName = "auto|none" };

    public static Command Create()
    {
        var command = new Command("bench", "Measure IOPS, throughput and latency percentiles against one or more LUNs.")
        {
            s_urls, s_jobs, s_rw, s_bs, s_qd, s_time, s_ramp, s_size, s_verify, s_json, s_series, s_chap, s_mutual, s_initiator, s_digest, s_offload, s_noProgress,
        };
        command.SetAction((parse, ct) => ClientRunner.RunAsync("bench", parse.InvocationConfiguration.Error,
            () => RunAsync(parse, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct)));
        return command;
    }

    /// <summary>Waits <paramref name="time"/>, redrawing the live progress line once a second when there is one.</summary>
    private static async Task WaitShowingProgressAsync(TimeSpan time, BenchProgress? progress, List<Job> jobs, Stopwatch clock, CancellationToken ct)
    {
        if (progress is null)
        {
            await Task.Delay(time, ct);
            return;
        }

        var end = clock.Elapsed + time;
        while (clock.Elapsed < end)
        {
            var left = end - clock.Elapsed;
            await Task.Delay(left < TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1), ct);
            progress.Draw(clock.Elapsed, jobs.Select(j => (j.Spec.Name, Volatile.Read(ref j.Ios), Volatile.Read(ref j.Bytes))));
        }
    }

    /// <summary>What one job does: from the global options, or a <c>--job</c> spec on top of them.</summary>
    private sealed record JobSpec(string Name, string Group, string Url, string Mode, int ReadPercent, bool Random, int Bs, int Qd, long? SizeLimit, string? Initiator);

    private sealed class Job(JobSpec spec, IscsiLun lun, long blocks)
    {
        public JobSpec Spec { get; } = spec;
        public IscsiLun Lun { get; } = lun;
        public long Blocks { get; } = blocks;

        /// <summary>The stamps and the ledger of acknowledged writes, with <c>--verify</c>.</summary>
        public BenchVerifier? Verifier { get; set; }
        public BenchHistogram ReadLatency { get; } = new();
        public BenchHistogram WriteLatency { get; } = new();
        public long Errors;
        public long VerifyFailures;

        /// <summary>I/Os and bytes completed since the start (ramp included), for the live progress line.</summary>
        public long Ios;
        public long Bytes;

        /// <summary>One histogram per whole second of the measured time (both directions); guarded by itself.</summary>
        public BenchHistogram[] Windows { get; set; } = [];

        public void RecordWindow(long completedTicks, long startTicks, long ns)
        {
            if (startTicks == 0 || completedTicks < startTicks)
            {
                return;
            }

            long index = (completedTicks - startTicks) / Stopwatch.Frequency;
            var windows = Windows;
            if (index < windows.Length)
            {
                var h = windows[index];
                lock (h)
                {
                    h.Record(ns);
                }
            }
        }
    }

    private static (string Mode, int ReadPercent, bool Random) ParseMode(string text, string what)
    {
        var mode = text.ToLowerInvariant();
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
                    throw new UsageException($"{what} randrw:N wants N = read percentage 0..100");
                }

                break;
            default:
                throw new UsageException($"{what} '{mode}' is not read, write, randread, randwrite or randrw[:N]");
        }

        return (mode, readPercent, random);
    }

    private static int ParseQd(int qd, string what) =>
        qd is < 1 or > 1024 ? throw new UsageException($"{what} must be 1..1024") : qd;

    /// <summary>Parses <c>name=N,url=U,rw=M,bs=S,qd=Q,size=S,group=G,initiator=IQN</c> over the global defaults.</summary>
    internal static Dictionary<string, string> ParseJobSpec(string text)
    {
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new UsageException($"--job: '{part}' is not key=value (keys: name, url, rw, bs, qd, size, group, initiator)");
            }

            var key = part[..eq].ToLowerInvariant();
            if (key is not ("name" or "url" or "rw" or "bs" or "qd" or "size" or "group" or "initiator"))
            {
                throw new UsageException($"--job: unknown key '{key}' (keys: name, url, rw, bs, qd, size, group, initiator)");
            }

            if (!keys.TryAdd(key, part[(eq + 1)..]))
            {
                throw new UsageException($"--job: key '{key}' given twice");
            }
        }

        if (!keys.ContainsKey("url"))
        {
            throw new UsageException($"--job '{text}': needs url=");
        }

        return keys;
    }

    private static async Task<int> RunAsync(ParseResult parse, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var (mode, readPercent, random) = ParseMode(parse.GetValue(s_rw) ?? "randread", "--rw");
        int bs = (int)ClientCommon.ParseSize(parse.GetValue(s_bs) ?? "4k", "--bs");
        int qd = ParseQd(parse.GetValue(s_qd), "--qd");
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

        var specs = new List<JobSpec>();
        foreach (var url in parse.GetValue(s_urls) ?? [])
        {
            specs.Add(new JobSpec(url, url, url, mode, readPercent, random, bs, qd, sizeLimit, null));
        }

        foreach (var text in parse.GetValue(s_jobs) ?? [])
        {
            var keys = ParseJobSpec(text);
            var (jm, jr, jrand) = keys.TryGetValue("rw", out var rwText) ? ParseMode(rwText, "--job rw") : (mode, readPercent, random);
            int jbs = keys.TryGetValue("bs", out var bsText) ? (int)ClientCommon.ParseSize(bsText, "--job bs") : bs;
            int jqd = qd;
            if (keys.TryGetValue("qd", out var qdText) &&
                !int.TryParse(qdText, NumberStyles.None, CultureInfo.InvariantCulture, out jqd))
            {
                throw new UsageException($"--job qd '{qdText}' is not a number");
            }

            long? jsize = keys.TryGetValue("size", out var sizeText) ? ClientCommon.ParseSize(sizeText, "--job size") : sizeLimit;
            string name = keys.GetValueOrDefault("name") ?? $"job{specs.Count}";
            specs.Add(new JobSpec(name, keys.GetValueOrDefault("group") ?? name, keys["url"], jm, jr, jrand, jbs, ParseQd(jqd, "--job qd"), jsize,
                keys.GetValueOrDefault("initiator")));
        }

        if (specs.Count == 0)
        {
            throw new UsageException("give at least one URL or --job");
        }

        if (specs.Select(s => s.Name).Distinct(StringComparer.Ordinal).Count() != specs.Count)
        {
            throw new UsageException("--job names must be unique");
        }

        var jobs = new List<Job>();
        try
        {
            foreach (var spec in specs)
            {
                var url = ClientCommon.ParseUrl(spec.Url, needTarget: true);
                var options = ClientCommon.Options(parse, s_chap, s_mutual, s_initiator, spec.Qd + 8) with
                {
                    // Pings go out only after NopInterval without any PDU from the target, so a busy run
                    // sends none; a link that goes silent is found dead after NopInterval + NopTimeout
                    // (5 s + 10 s) and the session reinstated, instead of after 30 s + 10 s.
                    NopInterval = TimeSpan.FromSeconds(5),
                    HeaderDigest = digest,
                    DataDigest = digest,
                    Offload = offload,
                    // Workers only time and count each I/O before issuing the next: run that on the receive loop.
                    // With --verify they stamp and check every block, too long to hold the socket's loop for.
                    InlineCompletions = !verify,
                };
                if (spec.Initiator is { } iqn)
                {
                    options = options with { InitiatorName = iqn };
                }

                IscsiLun lun;
                try
                {
                    lun = await IscsiLun.OpenAsync(url, options, ct);
                }
                catch (ScsiCommandException e) when (e.Asc == 0x25)
                {
                    // SPC-4 §4.5.6: LOGICAL UNIT NOT SUPPORTED — say it as cp and inq do.
                    throw new IOException($"{url}: no such LUN", e);
                }

                if (spec.Bs % lun.BlockSize != 0)
                {
                    await lun.DisposeAsync();
                    throw new UsageException($"--bs {spec.Bs} is not a multiple of {spec.Url}'s {lun.BlockSize}-byte block");
                }

                long bytes = Math.Min(spec.SizeLimit ?? lun.SizeBytes, lun.SizeBytes) / spec.Bs * spec.Bs;
                if (bytes < spec.Bs)
                {
                    await lun.DisposeAsync();
                    throw new UsageException($"{spec.Url} is smaller than one {spec.Bs}-byte I/O");
                }

                jobs.Add(new Job(spec, lun, bytes / lun.BlockSize));
            }

            if (verify)
            {
                // One run id per invocation, one per job within it: a block of another run or of
                // another job that overlaps this one's region is found as such.
                ulong run = (ulong)Random.Shared.NextInt64() ^ (ulong)Stopwatch.GetTimestamp();
                for (int i = 0; i < jobs.Count; i++)
                {
                    var job = jobs[i];
                    int blocksPerSlot = job.Spec.Bs / job.Lun.BlockSize;
                    job.Verifier = new BenchVerifier(job.Blocks / blocksPerSlot, job.Lun.BlockSize, blocksPerSlot,
                        run ^ ((ulong)(i + 1) * 0x9E37_79B9_7F4A_7C15UL));
                }

                foreach (var job in jobs)
                {
                    await FillPatternAsync(job, ct);
                }
            }

            int windowCount = Math.Max(1, (int)Math.Floor(duration.TotalSeconds));
            foreach (var job in jobs)
            {
                var windows = new BenchHistogram[windowCount];
                for (int i = 0; i < windows.Length; i++)
                {
                    windows[i] = new BenchHistogram();
                }

                job.Windows = windows;
            }

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            long measuring = 0;
            var tasks = new List<Task>();
            foreach (var job in jobs)
            {
                long slots = job.Blocks * job.Lun.BlockSize / job.Spec.Bs;
                long sequential = -1;
                // With --verify a worker owns its slot while the I/O is in flight; more workers
                // than slots would only wait for each other.
                long workers = verify ? Math.Min(job.Spec.Qd, slots) : job.Spec.Qd;
                for (int w = 0; w < workers; w++)
                {
                    int seed = w;
                    tasks.Add(Task.Run(() => WorkerAsync(job, slots, seed, () => Interlocked.Increment(ref sequential),
                        () => Volatile.Read(ref measuring), stop.Token)));
                }
            }

            var progress = !parse.GetValue(s_noProgress) && ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected
                ? new BenchProgress(error, ramp + duration)
                : null;
            var runClock = Stopwatch.StartNew();
            await WaitShowingProgressAsync(ramp, progress, jobs, runClock, ct);
            long start = Stopwatch.GetTimestamp();
            var startedAt = DateTimeOffset.UtcNow;
            Interlocked.Exchange(ref measuring, start);
            await WaitShowingProgressAsync(duration, progress, jobs, runClock, ct);
            Interlocked.Exchange(ref measuring, 0);
            progress?.Finish();
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            await stop.CancelAsync();
            await Task.WhenAll(tasks);
            if (verify)
            {
                foreach (var job in jobs)
                {
                    await VerifyPassAsync(job, ct);
                }
            }
            if (parse.GetValue(s_series) is { } seriesPath)
            {
                await WriteSeriesCsvAsync(seriesPath, jobs);
            }

            return await ReportAsync(jobs, mode, bs, qd, seconds, startedAt, parse.GetValue(s_json), output, error);
        }
        finally
        {
            foreach (var job in jobs)
            {
                await job.Lun.DisposeAsync();
            }
        }
    }

    private static async Task WorkerAsync(Job job, long slots, int seed,
        Func<long> nextSequential, Func<long> measuringSince, CancellationToken stop)
    {
        var spec = job.Spec;
        var verifier = job.Verifier;
        var buffer = GC.AllocateUninitializedArray<byte>(spec.Bs, pinned: true);
        var rng = new Random(unchecked((Environment.TickCount * 31) + seed));
        int blocksPerIo = spec.Bs / job.Lun.BlockSize;
        var readHist = new BenchHistogram();
        var writeHist = new BenchHistogram();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                long slot = spec.Random ? rng.NextInt64(slots) : nextSequential() % slots;
                if (verifier is not null)
                {
                    // Another worker has an I/O on this slot: take another one (there are more slots than workers).
                    while (!verifier.TryAcquire(slot))
                    {
                        slot = spec.Random ? rng.NextInt64(slots) : nextSequential() % slots;
                    }
                }

                long lba = slot * blocksPerIo;
                bool read = spec.ReadPercent == 100 || (spec.ReadPercent > 0 && rng.Next(100) < spec.ReadPercent);
                int generation = 0;
                if (!read && verifier is not null)
                {
                    generation = verifier.BeginWrite(slot);
                    verifier.Stamp(buffer, lba, generation);
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
                    // A write without GOOD status may or may not have landed: the ledger keeps both
                    // generations acceptable until a later write to the slot is acknowledged.
                    verifier?.Release(slot);
                    Interlocked.Increment(ref job.Errors);
                    if (!job.Lun.Session.IsConnected)
                    {
                        await Task.Delay(50, CancellationToken.None);
                    }

                    continue;
                }

                long t1 = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref job.Ios);
                Interlocked.Add(ref job.Bytes, spec.Bs);
                if (verifier is not null)
                {
                    if (read)
                    {
                        int failed = verifier.Check(buffer, lba, spec.Name);
                        if (failed > 0)
                        {
                            Interlocked.Add(ref job.VerifyFailures, failed);
                        }
                    }
                    else
                    {
                        verifier.Acknowledge(slot, generation);
                    }

                    verifier.Release(slot);
                }

                long ns = (long)((t1 - t0) * (1e9 / Stopwatch.Frequency));
                long since = measuringSince();
                if (since != 0)
                {
                    (read ? readHist : writeHist).Record(ns);
                    job.RecordWindow(t1, since, ns);
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

    /// <summary>Stamps the whole region with generation 0 before the run, so that every block has an expected content.</summary>
    private static async Task FillPatternAsync(Job job, CancellationToken ct)
    {
        var verifier = job.Verifier!;
        int bs = job.Lun.BlockSize;
        int chunkBlocks = Math.Max(1, (1 << 20) / job.Spec.Bs) * verifier.BlocksPerSlot;
        var buffer = new byte[chunkBlocks * bs];
        for (long lba = 0; lba < job.Blocks; lba += chunkBlocks)
        {
            int n = (int)Math.Min(chunkBlocks, job.Blocks - lba);
            verifier.Stamp(buffer.AsSpan(0, n * bs), lba, 0);
            await job.Lun.WriteAsync(lba, buffer.AsMemory(0, n * bs), cancellationToken: ct);
        }
    }

    /// <summary>
    /// After the run: reads every block of the region back (four reads in flight) and checks it
    /// against the ledger: every acknowledged write must be there, unacknowledged ones may be.
    /// </summary>
    private static async Task VerifyPassAsync(Job job, CancellationToken ct)
    {
        var verifier = job.Verifier!;
        int bs = job.Lun.BlockSize;
        int chunkBlocks = Math.Max(1, (1 << 20) / job.Spec.Bs) * verifier.BlocksPerSlot;
        long chunks = (job.Blocks + chunkBlocks - 1) / chunkBlocks;
        long next = -1;
        long failed = 0;
        async Task ReaderAsync()
        {
            var buffer = GC.AllocateUninitializedArray<byte>(chunkBlocks * bs, pinned: true);
            for (long c = Interlocked.Increment(ref next); c < chunks; c = Interlocked.Increment(ref next))
            {
                long lba = c * chunkBlocks;
                int n = (int)Math.Min(chunkBlocks, job.Blocks - lba);
                await job.Lun.ReadAsync(lba, buffer.AsMemory(0, n * bs), ct);
                Interlocked.Add(ref failed, verifier.Check(buffer.AsSpan(0, n * bs), lba, job.Spec.Name));
                Interlocked.Add(ref verifier.VerifiedBlocks, n);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ReaderAsync()));
        Interlocked.Add(ref job.VerifyFailures, failed);
    }

    /// <summary>Jobs that share a group name, in order of first appearance.</summary>
    private static List<(string Name, List<Job> Jobs)> Groups(List<Job> jobs)
    {
        var groups = new List<(string Name, List<Job> Jobs)>();
        foreach (var job in jobs)
        {
            int i = groups.FindIndex(g => g.Name == job.Spec.Group);
            if (i < 0)
            {
                groups.Add((job.Spec.Group, [job]));
            }
            else
            {
                groups[i].Jobs.Add(job);
            }
        }

        return groups;
    }

    /// <summary>Window <paramref name="i"/> of <paramref name="jobs"/> merged: I/Os, bytes, histogram.</summary>
    private static (long Ios, double Bytes, BenchHistogram Latency) Window(List<Job> jobs, int i)
    {
        var merged = new BenchHistogram();
        double bytes = 0;
        foreach (var job in jobs)
        {
            var h = job.Windows[i];
            lock (h)
            {
                merged.Add(h);
                bytes += h.Count * (double)job.Spec.Bs;
            }
        }

        return (merged.Count, bytes, merged);
    }

    private static async Task WriteSeriesCsvAsync(string path, List<Job> jobs)
    {
        var text = new System.Text.StringBuilder("group,job,second,ios,iops,mb_per_s,p50_us,p99_us\n");
        foreach (var (name, members) in Groups(jobs))
        {
            var rows = members.Select(j => (Label: j.Spec.Name, Jobs: new List<Job> { j })).ToList();
            if (members.Count > 1 || members[0].Spec.Name != name)
            {
                rows.Add(("*", members));
            }

            foreach (var (label, set) in rows)
            {
                for (int i = 0; i < set[0].Windows.Length; i++)
                {
                    var (ios, bytes, h) = Window(set, i);
                    text.Append(CultureInfo.InvariantCulture,
                        $"{name},{label},{i + 1},{ios},{ios},{bytes / 1e6:0.###},{h.Percentile(50) / 1e3:0.#},{h.Percentile(99) / 1e3:0.#}\n");
                }
            }
        }

        try
        {
            await File.WriteAllTextAsync(path, text.ToString());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--series {path}: {e.Message}");
        }
    }

    private static async Task<int> ReportAsync(List<Job> jobs, string mode, int bs, int qd, double seconds, DateTimeOffset startedAt, bool json, TextWriter output, TextWriter error)
    {
        bool failed = false;
        var groups = Groups(jobs);
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
                // Wall clock at the start of the measured time: second N of a series covers (N-1, N] after it.
                w.WriteNumber("start_unix_ms", startedAt.ToUnixTimeMilliseconds());
                w.WriteStartArray("jobs");
                foreach (var job in jobs)
                {
                    var spec = job.Spec;
                    w.WriteStartObject();
                    w.WriteString("name", spec.Name);
                    w.WriteString("group", spec.Group);
                    w.WriteString("url", spec.Url);
                    w.WriteString("rw", spec.Mode);
                    w.WriteNumber("bs", spec.Bs);
                    w.WriteNumber("qd", spec.Qd);
                    WriteSide(w, "read", job.ReadLatency, spec.Bs, seconds);
                    WriteSide(w, "write", job.WriteLatency, spec.Bs, seconds);
                    w.WriteNumber("errors", job.Errors);
                    w.WriteNumber("verify_failures", job.VerifyFailures);
                    if (job.Verifier is { } v)
                    {
                        w.WriteNumber("verified_blocks", Interlocked.Read(ref v.VerifiedBlocks));
                    }

                    w.WriteNumber("reconnects", job.Lun.Session.Reconnects);
                    WriteSeries(w, [job]);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteStartArray("groups");
                foreach (var (name, members) in groups)
                {
                    var all = new BenchHistogram();
                    double bytes = 0;
                    foreach (var job in members)
                    {
                        all.Add(job.ReadLatency);
                        all.Add(job.WriteLatency);
                        bytes += (job.ReadLatency.Count + job.WriteLatency.Count) * (double)job.Spec.Bs;
                    }

                    w.WriteStartObject();
                    w.WriteString("name", name);
                    w.WriteStartArray("jobs");
                    foreach (var job in members)
                    {
                        w.WriteStringValue(job.Spec.Name);
                    }

                    w.WriteEndArray();
                    w.WriteNumber("ios", all.Count);
                    w.WriteNumber("iops", Math.Round(all.Count / seconds, 1));
                    w.WriteNumber("mb_per_s", Math.Round(bytes / seconds / 1e6, 2));
                    WriteLatency(w, all);
                    WriteSeries(w, members);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            await output.WriteLineAsync(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
        }

        foreach (var job in jobs)
        {
            var spec = job.Spec;
            if (!json)
            {
                string label = spec.Name == spec.Url ? spec.Url : $"{spec.Name} ({spec.Url})";
                await output.WriteLineAsync($"job {label}: {spec.Mode} bs={ClientCommon.FormatBytes(spec.Bs)} qd={spec.Qd} time={seconds:0.0}s");
                foreach (var (name, h) in new[] { ("read", job.ReadLatency), ("write", job.WriteLatency) })
                {
                    if (h.Count == 0)
                    {
                        continue;
                    }

                    double iops = h.Count / seconds;
                    await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                        $"  {name,-5}: {iops,10:0} IOPS  {iops * spec.Bs / 1e6,9:0.0} MB/s  lat(us) avg {h.Sum / h.Count / 1e3:0.0} p50 {Us(h.Percentile(50))} p90 {Us(h.Percentile(90))} p99 {Us(h.Percentile(99))} p99.9 {Us(h.Percentile(99.9))} max {Us(h.Max)}"));
                }

                long reconnects = job.Lun.Session.Reconnects;
                if (reconnects > 0 || job.Errors > 0)
                {
                    await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  reconnects: {reconnects}  I/O errors: {job.Errors}"));
                }

                if (job.Verifier is { } v)
                {
                    await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                        $"  verify: {Interlocked.Read(ref v.VerifiedBlocks)} blocks read back, {job.VerifyFailures} failed"));
                }
            }

            if (job.Verifier is { } verifier)
            {
                foreach (var failure in verifier.Failures)
                {
                    await error.WriteLineAsync($"sluice bench: verify: {failure}");
                }

                if (verifier.FailureCount > verifier.Failures.Count)
                {
                    await error.WriteLineAsync($"sluice bench: verify: {spec.Name}: ... and {verifier.FailureCount - verifier.Failures.Count} more");
                }
            }

            if (job.Errors > 0 || job.VerifyFailures > 0)
            {
                failed = true;
                await error.WriteLineAsync($"sluice bench: {spec.Name}: {job.Errors} I/O errors, {job.VerifyFailures} verify failures");
            }
        }

        return failed ? ExitCodes.Failure : ExitCodes.Success;
    }

    private static string Us(long ns) => (ns / 1e3).ToString(ns < 100_000 ? "0.0" : "0", CultureInfo.InvariantCulture);

    private static void WriteSeries(Utf8JsonWriter w, List<Job> jobs)
    {
        w.WriteStartArray("series");
        for (int i = 0; i < jobs[0].Windows.Length; i++)
        {
            var (ios, bytes, h) = Window(jobs, i);
            w.WriteStartObject();
            w.WriteNumber("second", i + 1);
            w.WriteNumber("ios", ios);
            w.WriteNumber("iops", ios);
            w.WriteNumber("mb_per_s", Math.Round(bytes / 1e6, 3));
            w.WriteNumber("p50_us", h.Percentile(50) / 1e3);
            w.WriteNumber("p99_us", h.Percentile(99) / 1e3);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void WriteLatency(Utf8JsonWriter w, BenchHistogram h)
    {
        w.WriteStartObject("lat_us");
        w.WriteNumber("avg", h.Count == 0 ? 0 : Math.Round(h.Sum / h.Count / 1e3, 2));
        w.WriteNumber("p50", h.Percentile(50) / 1e3);
        w.WriteNumber("p90", h.Percentile(90) / 1e3);
        w.WriteNumber("p99", h.Percentile(99) / 1e3);
        w.WriteNumber("p99_9", h.Percentile(99.9) / 1e3);
        w.WriteNumber("max", h.Max / 1e3);
        w.WriteEndObject();
    }

    private static void WriteSide(Utf8JsonWriter w, string name, BenchHistogram h, int bs, double seconds)
    {
        w.WriteStartObject(name);
        w.WriteNumber("ios", h.Count);
        w.WriteNumber("iops", Math.Round(h.Count / seconds, 1));
        w.WriteNumber("mb_per_s", Math.Round(h.Count * (double)bs / seconds / 1e6, 2));
        WriteLatency(w, h);
        w.WriteEndObject();
    }
}
