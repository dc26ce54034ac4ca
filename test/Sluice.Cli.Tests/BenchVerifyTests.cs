using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Cli.Commands;
using Sluice.Target;
using Sluice.Target.Configuration;
using Sluice.Target.Tests;
using static Sluice.Cli.Tests.CliRun;

namespace Sluice.Cli.Tests;

/// <summary>
/// Issue 5: <c>sluice bench --verify</c> under connection cuts. A PDU-aware proxy between bench
/// and an in-process target cuts the connection with an R2T outstanding, with a write's status
/// lost, and with a Data-Out half sent; bench must reconnect, report it, and its verify pass
/// must find every acknowledged write. A proxy that silently sends one block's writes elsewhere
/// must make the verify fail.
/// </summary>
public sealed class BenchVerifyTests : IAsyncLifetime
{
    private const string MemoryTarget = "iqn.2026-11.dev.sluice:cut-mem";
    private const string FileTarget = "iqn.2026-11.dev.sluice:cut-file";
    private const byte ScsiCommand = 0x01;
    private const byte DataOut = 0x05;
    private const byte ScsiResponse = 0x21;
    private const byte ReadyToTransfer = 0x31;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sl-bcut-" + Guid.NewGuid().ToString("N")[..8]);
    private TargetServer? _server;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        _server = new TargetServer(
            new ServerConfig
            {
                DataDir = _dir,
                Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
                Targets =
                [
                    new TargetConfig { Name = MemoryTarget, Luns = [new LunConfig { Backend = "memory:32MiB" }] },
                    new TargetConfig { Name = FileTarget, Luns = [new LunConfig { Backend = $"file:{Path.Combine(_dir, "lun.img")}:32MiB" }] },
                ],
            },
            NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    private static string Url(IPEndPoint proxy, string target) => $"iscsi://127.0.0.1:{proxy.Port}/{target}/0";

    [Theory]
    [InlineData(MemoryTarget, "randwrite", true)]
    [InlineData(FileTarget, "write", true)]
    // Without --verify bench runs completions inline on the receive loop: recovery must work there too.
    [InlineData(MemoryTarget, "randwrite", false)]
    public async Task Bench_ThreeCutsDuringWrites_ReconnectsAndEveryAcknowledgedWriteIsIntact(string target, string rw, bool verify)
    {
        await using var proxy = new CorruptingProxy(_server!.LocalEndpoints[0], framed: true);
        const long region = 8L << 20;
        // 128 KiB writes: 64 KiB go as immediate data (the target's FirstBurstLength), the rest after an R2T.
        string[] args = ["bench", Url(proxy.Endpoint, target), "--rw", rw, "--bs", "128k", "--qd", "8",
            "--size", "8MiB", "--time", "4s", "--ramp", "100ms", "--json", .. verify ? new[] { "--verify" } : []];
        var bench = Task.Run(() => RunAsync(args));

        // With --verify the fill (8 MiB of generation-0 stamps) is done once more than that has gone up.
        await WaitUntilAsync(() => proxy.UpstreamBytes > region + (1 << 20), bench, "the write phase to start");
        await CutAsync(proxy, 1, upstream: false, ReadyToTransfer, CutPoint.AfterPdu, bench);   // R2T outstanding
        await CutAsync(proxy, 2, upstream: false, ScsiResponse, CutPoint.BeforePdu, bench);     // a write's status lost
        await CutAsync(proxy, 3, upstream: true, DataOut, CutPoint.MidData, bench);             // Data-Out half sent

        var (code, output, error) = await bench.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(code == 0, $"exit {code}: {error}");
        using var doc = JsonDocument.Parse(output);
        var job = doc.RootElement.GetProperty("jobs")[0];
        Assert.True(job.GetProperty("reconnects").GetInt64() >= 3, output);
        Assert.Equal(0, job.GetProperty("errors").GetInt64());
        Assert.Equal(0, job.GetProperty("verify_failures").GetInt64());
        if (verify)
            Assert.Equal(region / 512, job.GetProperty("verified_blocks").GetInt64());
        Assert.True(job.GetProperty("write").GetProperty("ios").GetInt64() > 0);
        Assert.True(proxy.Connections >= 4);
    }

    [Fact]
    public async Task Bench_AcknowledgedWritesOfOneSlotLost_VerifyFailsAndSaysWhere()
    {
        // Every WRITE(10) to LBA 1280 (slot 5 of 128 KiB) is redirected past the region: the
        // target acknowledges it, bench's ledger says generation >= 1, the block keeps the fill.
        await using var proxy = new CorruptingProxy(_server!.LocalEndpoints[0], framed: true)
        {
            RewriteUpstream = header =>
            {
                if ((header[0] & 0x3F) == ScsiCommand && header[32] == 0x2A && BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(34)) == 1280)
                    BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(34), 32768);
            },
        };
        var (code, output, error) = await RunAsync("bench", Url(proxy.Endpoint, MemoryTarget), "--rw", "write", "--bs", "128k", "--qd", "4",
            "--size", "4MiB", "--time", "1s", "--ramp", "100ms", "--verify", "--json");

        Assert.Equal(1, code);
        using var doc = JsonDocument.Parse(output);
        var job = doc.RootElement.GetProperty("jobs")[0];
        Assert.Equal(0, job.GetProperty("errors").GetInt64());
        Assert.Equal(256, job.GetProperty("verify_failures").GetInt64());
        Assert.Contains("LBA 1280: expected generation", error, StringComparison.Ordinal);
        Assert.Contains("found generation 0: an acknowledged write is lost", error, StringComparison.Ordinal);
        Assert.Contains("256 verify failures", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_VerifyTextSummary_ShowsBlocksReadBack()
    {
        await using var proxy = new CorruptingProxy(_server!.LocalEndpoints[0]);
        var (code, output, error) = await RunAsync("bench", Url(proxy.Endpoint, MemoryTarget), "--rw", "randrw:50", "--bs", "4k", "--qd", "4",
            "--size", "1MiB", "--time", "1s", "--ramp", "100ms", "--verify");
        Assert.True(code == 0, error);
        Assert.Contains("  verify: 2048 blocks read back, 0 failed", output, StringComparison.Ordinal);
    }

    private static async Task CutAsync(CorruptingProxy proxy, int n, bool upstream, byte opcode, CutPoint point, Task bench)
    {
        proxy.CutAtNext(upstream, opcode, point);
        await WaitUntilAsync(() => proxy.CutsDone >= n, bench, $"cut {n} (opcode 0x{opcode:x2})");
        // Back in business: reconnected, and writes flow again before the next cut.
        long before = proxy.UpstreamBytes;
        await WaitUntilAsync(() => proxy.Connections > n && proxy.UpstreamBytes > before + (512 << 10), bench, $"traffic after cut {n}");
    }

    private static async Task WaitUntilAsync(Func<bool> condition, Task bench, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (bench.IsCompleted)
                Assert.Fail($"bench ended before {what}: {(bench as Task<(int, string, string)>)?.Result}");
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(5);
        }
    }
}

/// <summary>The stamp and ledger rules of <see cref="BenchVerifier"/>, without a target.</summary>
public sealed class BenchVerifierTests
{
    private const int Block = 512;

    private static BenchVerifier New() => new(slots: 4, blockSize: Block, blocksPerSlot: 2, runId: 0x1234_5678_9ABC_DEF0);

    [Fact]
    public void Check_AcknowledgedGeneration_Passes_OlderFails()
    {
        var v = New();
        var gen0 = new byte[2 * Block];
        v.Stamp(gen0, lba: 2, generation: 0);
        Assert.Equal(0, v.Check(gen0, 2, "j"));

        int g = v.BeginWrite(1);
        var gen1 = new byte[2 * Block];
        v.Stamp(gen1, 2, g);
        v.Acknowledge(1, g);
        Assert.Equal(0, v.Check(gen1, 2, "j"));
        Assert.Equal(2, v.Check(gen0, 2, "j"));
        Assert.Contains("an acknowledged write is lost", v.Failures[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Check_WriteWithoutStatus_OldOrNewPasses_TornFails()
    {
        var v = New();
        var gen0 = new byte[2 * Block];
        v.Stamp(gen0, 2, 0);
        int g = v.BeginWrite(1); // never acknowledged: the outcome is unknown
        var gen1 = new byte[2 * Block];
        v.Stamp(gen1, 2, g);
        Assert.Equal(0, v.Check(gen0, 2, "j"));
        Assert.Equal(0, v.Check(gen1, 2, "j"));

        // Each block on its own may be old or new; half of one block old, half new may not.
        var mixed = gen0.ToArray();
        gen1.AsSpan(0, Block).CopyTo(mixed);
        Assert.Equal(0, v.Check(mixed, 2, "j"));
        var torn = gen1.ToArray();
        gen0.AsSpan(Block / 2, Block / 2).CopyTo(torn.AsSpan(Block / 2));
        Assert.Equal(1, v.Check(torn, 2, "j"));
        Assert.Contains("torn", v.Failures[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Check_MisplacedZeroedOrForeignBlocks_Fail()
    {
        var v = New();
        var misplaced = new byte[2 * Block];
        v.Stamp(misplaced, 4, 0);
        Assert.Equal(2, v.Check(misplaced, 2, "j"));
        Assert.Equal(2, v.Check(new byte[2 * Block], 2, "j"));
        var other = new BenchVerifier(4, Block, 2, runId: 99);
        var foreign = new byte[2 * Block];
        other.Stamp(foreign, 2, 0);
        Assert.Equal(2, v.Check(foreign, 2, "j"));
        Assert.Equal(6, v.FailureCount);
    }
}
