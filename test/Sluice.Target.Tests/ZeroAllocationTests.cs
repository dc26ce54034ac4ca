using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Benchmarks;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

/// <summary>Runs alone: the runtime's allocation counter is process-wide.</summary>
[CollectionDefinition(nameof(AllocationCollection), DisableParallelization = true)]
public sealed class AllocationCollection;

/// <summary>
/// Issue 4 "zero allocation": in steady state a 4 KiB random-read or random-write workload
/// allocates no managed memory per I/O in the target. The client (<see cref="LoopbackIoClient"/>,
/// shared with bench/Sluice.Benchmarks) allocates nothing in its I/O loop, so everything
/// GC.GetTotalAllocatedBytes counts during the loop is the target's.
/// </summary>
[Collection(nameof(AllocationCollection))]
public sealed class ZeroAllocationTests
{
    private const string Iqn = "iqn.2026-11.dev.sluice:alloc";
    private const int Blocks = 256;
    private const int Ios = 10000;

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task SteadyState4KiBRandomIo_AllocatesNothingPerIo(bool write, bool metrics)
    {
        string dir = Directory.CreateTempSubdirectory("sluice-alloc-tests").FullName;
        var config = new ServerConfig
        {
            DataDir = dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets = [new TargetConfig { Name = Iqn, Luns = [new LunConfig { Number = 0, Backend = "memory:64MiB" }] }],
            // The Prometheus endpoint (prometheus-net) must not put listeners on the I/O path.
            Metrics = new MetricsConfig { Listen = metrics ? "127.0.0.1:0" : null },
        };
        try
        {
            await using var server = new TargetServer(config, NullLoggerFactory.Instance);
            await server.StartAsync();
            Assert.Equal(metrics, server.MetricsEndpoint is not null);
            await using var client = await LoopbackIoClient.ConnectAsync(server.LocalEndpoints[0], Iqn);

            // Warm up: every block written (the memory LUN allocates a chunk on first write),
            // every path jitted, the pools filled.
            Assert.Equal(0, await client.RunAsync(Blocks * 8, write: true, Blocks));
            Assert.Equal(0, await client.RunAsync(Blocks * 8, write: false, Blocks));
            Assert.Equal(0, await client.RunAsync(Ios / 4, write, Blocks));

            // Several rounds, judged by the quietest: an object allocated per I/O (24 bytes at
            // least) shows in every round as ≥ 24 × Ios bytes, while one-off runtime work (a
            // background tier-1 JIT, a timer) lands in some rounds only.
            long quietest = long.MaxValue;
            var rounds = new List<long>();
            for (int round = 0; round < 4; round++)
            {
                long before = GC.GetTotalAllocatedBytes(precise: true);
                int failures = await client.RunAsync(Ios, write, Blocks);
                long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
                Assert.Equal(0, failures);
                rounds.Add(allocated);
                quietest = Math.Min(quietest, allocated);
            }

            Assert.True(quietest < Ios, $"bytes per round of {Ios} I/Os: {string.Join(", ", rounds)} (quietest {quietest / (double)Ios:F2} B/IO)");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
