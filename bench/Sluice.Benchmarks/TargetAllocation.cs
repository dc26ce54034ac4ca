using System.Diagnostics.Tracing;
using System.Net;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Target;
using Sluice.Target.Configuration;

namespace Sluice.Benchmarks;

/// <summary>
/// An in-process target on loopback with a memory LUN, driven by <see cref="LoopbackIoClient"/>
/// (which allocates nothing per I/O), so the process's allocations per I/O are the target's.
/// </summary>
public sealed class InProcessTarget : IAsyncDisposable
{
    public const string Iqn = "iqn.2026-11.dev.sluice:alloc";

    /// <summary>Random I/O spans this many 4 KiB blocks (written once up front, so no back-end growth).</summary>
    public const int Blocks = 256;

    private readonly string _dir;
    private readonly TargetServer _server;

    private InProcessTarget(string dir, TargetServer server)
    {
        _dir = dir;
        _server = server;
    }

    public IPEndPoint Endpoint => _server.LocalEndpoints[0];

    /// <param name="metrics">Also serve the Prometheus endpoint on a free loopback port (it must not make the I/O path allocate).</param>
    public static async Task<InProcessTarget> StartAsync(bool metrics = false)
    {
        string dir = Directory.CreateTempSubdirectory("sluice-alloc-").FullName;
        var config = new ServerConfig
        {
            DataDir = dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets = [new TargetConfig { Name = Iqn, Luns = [new LunConfig { Number = 0, Backend = "memory:64MiB" }] }],
        };
        if (metrics)
        {
            config.Metrics = new MetricsConfig { Listen = "127.0.0.1:0" };
        }

        var server = new TargetServer(config, NullLoggerFactory.Instance);
        await server.StartAsync().ConfigureAwait(false);
        return new InProcessTarget(dir, server);
    }

    /// <summary>A logged-in client whose blocks have all been written and read once (warm).</summary>
    public async Task<LoopbackIoClient> ConnectWarmAsync()
    {
        var c = await LoopbackIoClient.ConnectAsync(Endpoint, Iqn).ConfigureAwait(false);
        await c.RunAsync(Blocks * 8, write: true, Blocks).ConfigureAwait(false);
        await c.RunAsync(Blocks * 8, write: false, Blocks).ConfigureAwait(false);
        return c;
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync().ConfigureAwait(false);
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>
/// Issue 4 "zero allocation": managed bytes allocated per 4 KiB random read / write on the
/// target's fast path. BenchmarkDotNet's memory diagnoser counts the whole process
/// (GC.GetTotalAllocatedBytes), which here is the target plus a client that allocates nothing.
/// Run: dotnet Sluice.Benchmarks.dll --filter '*TargetAllocation*' --inProcess
/// </summary>
[MemoryDiagnoser]
public class TargetAllocationBenchmarks
{
    private const int IosPerInvoke = 2000;
    private InProcessTarget _target = null!;
    private LoopbackIoClient _client = null!;

    [GlobalSetup]
    public void Setup()
    {
        _target = InProcessTarget.StartAsync().GetAwaiter().GetResult();
        _client = _target.ConnectWarmAsync().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _target.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(OperationsPerInvoke = IosPerInvoke)]
    public int RandomRead4K() => _client.RunAsync(IosPerInvoke, write: false, InProcessTarget.Blocks).AsTask().GetAwaiter().GetResult();

    [Benchmark(OperationsPerInvoke = IosPerInvoke)]
    public int RandomWrite4K() => _client.RunAsync(IosPerInvoke, write: true, InProcessTarget.Blocks).AsTask().GetAwaiter().GetResult();
}

/// <summary>
/// `target-alloc [count] [--metrics]`: the same measurement without BenchmarkDotNet, printing bytes per I/O
/// and (from the runtime's AllocationTick events, one per ~100 KB) which types were allocated;
/// with <c>--metrics</c> the target serves its Prometheus endpoint meanwhile.
/// </summary>
internal static class TargetAllocation
{
    public static int Run(string[] args)
    {
        bool metrics = args.Contains("--metrics");
        args = [.. args.Where(a => a != "--metrics")];
        int count = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 50000;
        return RunAsync(count, metrics).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(int count, bool metrics)
    {
        await using var target = await InProcessTarget.StartAsync(metrics);
        await using var client = await target.ConnectWarmAsync();
        using var ticks = new AllocationTicks();
        foreach (bool write in new[] { false, true })
        {
            await client.RunAsync(count / 10, write, InProcessTarget.Blocks);
            ticks.Reset();
            long before = GC.GetTotalAllocatedBytes(precise: true);
            int failures = await client.RunAsync(count, write, InProcessTarget.Blocks);
            long after = GC.GetTotalAllocatedBytes(precise: true);
            Console.WriteLine($"4 KiB random {(write ? "write" : "read ")} QD1: {count} I/Os, {failures} failed, {(after - before) / (double)count:F1} B/IO ({after - before} bytes)");
            foreach (var (type, n) in ticks.Top(12))
            {
                Console.WriteLine($"    {n,6} ticks  {type}");
            }
        }

        return 0;
    }

    private sealed class AllocationTicks : EventListener
    {
        private readonly Dictionary<string, int> _byType = [];

        public void Reset()
        {
            lock (_byType)
            {
                _byType.Clear();
            }
        }

        public List<(string Type, int Count)> Top(int n)
        {
            lock (_byType)
            {
                return [.. _byType.OrderByDescending(kv => kv.Value).Take(n).Select(kv => (kv.Key, kv.Value))];
            }
        }

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            if (e.EventName is not null && e.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) && e.Payload is { } payload)
            {
                int i = e.PayloadNames!.IndexOf("TypeName");
                string type = i >= 0 ? payload[i]?.ToString() ?? "?" : "?";
                lock (_byType)
                {
                    _byType[type] = _byType.GetValueOrDefault(type) + 1;
                }
            }
        }
    }
}
