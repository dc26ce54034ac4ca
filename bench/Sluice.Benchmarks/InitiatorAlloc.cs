using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Runtime.CompilerServices;
using Sluice.Initiator;

namespace Sluice.Benchmarks;

/// <summary>
/// <c>initiator-alloc [URL]</c>: a quick look at what the initiator allocates per read, without
/// BenchmarkDotNet: bytes per I/O over a long loop, and the types the runtime's allocation-tick
/// events (one sample per ~100 KB) name, with their sample counts.
/// </summary>
internal static class InitiatorAlloc
{
    public static int Run(string[] args)
    {
        using var server = args.Length == 0 ? ServeProcess.Start() : null;
        var url = IscsiUrl.Parse(args.Length > 0 ? args[0] : server!.Url);
        using var listener = new TickListener();
        long bare = GC.GetTotalAllocatedBytes(precise: true);
        Thread.Sleep(5000);
        Console.WriteLine($"idle process, no session: {GC.GetTotalAllocatedBytes(precise: true) - bare} B in 5 s");
        var lun = IscsiLun.OpenAsync(url, new IscsiClientOptions { NopInterval = TimeSpan.Zero, QueueDepth = 40 }).GetAwaiter().GetResult();
        try
        {
            listener.Enabled = true;
            long idle = GC.GetTotalAllocatedBytes(precise: true);
            Thread.Sleep(5000);
            Console.WriteLine($"idle session: {GC.GetTotalAllocatedBytes(precise: true) - idle} B in 5 s");
            listener.Enabled = false;
            foreach (var (size, depth, count) in new[] { (1 << 20, 8, 2000), (4096, 32, 40_000) })
            {
                var buffers = Enumerable.Range(0, depth).Select(_ => GC.AllocateUninitializedArray<byte>(size, pinned: true)).ToArray();
                Loop(lun, buffers, 50 * depth);
                var counters = lun.Session.Counters!;
                long direct = counters.DirectBytes;
                long staged = counters.StagedBytes;
                listener.Samples.Clear();
                listener.Enabled = true;
                long before = GC.GetTotalAllocatedBytes(precise: true);
                var sw = System.Diagnostics.Stopwatch.StartNew();
                Loop(lun, buffers, count);
                double seconds = sw.Elapsed.TotalSeconds;
                long after = GC.GetTotalAllocatedBytes(precise: true);
                listener.Enabled = false;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{size / 1024}KiB qd{depth}: {(after - before) / (double)count:0.0} B/IO over {count} reads, {count / seconds:0} IOPS, {count * (double)size / seconds / 1e6:0} MB/s, payload direct {counters.DirectBytes - direct} B staged {counters.StagedBytes - staged} B"));
                foreach (var (type, n) in listener.Samples.OrderByDescending(kv => kv.Value).Take(15).Select(kv => (kv.Key, kv.Value)))
                {
                    Console.WriteLine($"    {n,6} x {type}");
                }
            }
        }
        finally
        {
            lun.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        return 0;
    }

    private static void Loop(IscsiLun lun, byte[][] buffers, int count)
    {
        var workers = new ValueTask[buffers.Length];
        int per = count / buffers.Length;
        for (int w = 0; w < buffers.Length; w++)
        {
            workers[w] = WorkerAsync(lun, buffers[w], w, per);
        }

        foreach (var w in workers)
        {
            w.AsTask().GetAwaiter().GetResult();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask WorkerAsync(IscsiLun lun, byte[] buffer, int w, int count)
    {
        long blocks = buffer.Length / lun.BlockSize;
        long span = lun.BlockCount / blocks;
        for (int i = 0; i < count; i++)
        {
            await lun.ReadAsync((((w * 7919L) + i) % span) * blocks, buffer).ConfigureAwait(false);
        }
    }

    private sealed class TickListener : EventListener
    {
        public volatile bool Enabled;

        public ConcurrentDictionary<string, int> Samples { get; } = new();

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword: GCAllocationTick
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            if (Enabled && e.EventName is { } name && name.StartsWith("GCAllocationTick", StringComparison.Ordinal) && e.PayloadNames is { } names)
            {
                int i = names.IndexOf("TypeName");
                string type = i >= 0 ? e.Payload![i] as string ?? "?" : "?";
                Samples.AddOrUpdate(type, 1, (_, n) => n + 1);
            }
        }
    }
}
