using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Qos;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

/// <summary>Functions on a shared model device, driven end to end with raw PDUs.</summary>
public sealed class QosServerTests
{
    private const string Gold = "iqn.2026-11.dev.sluice:gold";
    private const string Bulk = "iqn.2026-11.dev.sluice:bulk";
    private const string GoldHost = "iqn.2026-11.dev.sluice:gold-host";
    private const string BulkHost = "iqn.2026-11.dev.sluice:bulk-host";

    private static ServerConfig Config()
    {
        var c = QosConfigTests.Valid();
        c.Targets[0].AllowedInitiators = [GoldHost];
        c.Targets[1].AllowedInitiators = [BulkHost];
        return c;
    }

    [Fact]
    public async Task SharedModelDevice_BulkLimitHolds_GoldGetsItsReservation()
    {
        await using var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        await using var gold = await LoginAsync(server, GoldHost, Gold);
        await using var bulk = await LoginAsync(server, BulkHost, Bulk);

        var clock = Stopwatch.StartNew();
        var until = TimeSpan.FromSeconds(2);
        int[] done = await Task.WhenAll(ReadLoopAsync(gold, 8, clock, until), ReadLoopAsync(bulk, 8, clock, until));
        double elapsed = clock.Elapsed.TotalSeconds;

        var snapshot = server.GetQosSnapshot();
        var pool = Assert.Single(snapshot).Value;
        var g = pool.Functions.Single(f => f.Name == "gold");
        var b = pool.Functions.Single(f => f.Name == "bulk");
        // Every read is scheduled at the device; the login helper's TEST UNIT READYs never reach it.
        Assert.Equal(done[0], g.CompletedIos);
        Assert.Equal(done[1], b.CompletedIos);
        // Bulk is capped at 300 IOPS (tolerance for timer jitter plus what was in flight at the start).
        Assert.True(b.CompletedIos <= (300 * elapsed * 1.2) + 20, $"bulk {b.CompletedIos} I/Os in {elapsed:F2} s");
        Assert.True(b.CompletedIos >= 300 * elapsed * 0.3, $"bulk starved: {b.CompletedIos} I/Os in {elapsed:F2} s");
        // Gold's reservation (500 IOPS) is met with a wide margin for a loaded test machine.
        Assert.True(g.CompletedIos >= 500 * elapsed * 0.5, $"gold {g.CompletedIos} I/Os in {elapsed:F2} s");
        Assert.Equal(0, pool.Queued);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public async Task LongRead_GoesToTheDeviceInParts_CountedAsOneIo_InquiryNotScheduledButTimed()
    {
        await using var server = new TargetServer(Config(), NullLoggerFactory.Instance); // qos.splitBytes 128 KiB
        await server.StartAsync();
        await using var gold = await LoginAsync(server, GoldHost, Gold);
        var before = Stats(server, "gold");

        // INQUIRY: answered by the target, never at the device.
        await gold.SendCommandAsync([0x12, 0, 0, 0, 96, 0], 96, read: true);
        await ReceiveUntilStatusAsync(gold);
        // READ(10) of 512 blocks = 256 KiB: two 128 KiB parts.
        await gold.SendCommandAsync([0x28, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0], 256 * 1024, read: true);
        int bytes = await ReceiveUntilStatusAsync(gold);

        var after = Stats(server, "gold");
        Assert.Equal(256 * 1024, bytes);
        Assert.Equal(1, after.CompletedIos - before.CompletedIos);
        Assert.Equal(256 * 1024, after.CompletedBytes - before.CompletedBytes);
        // The latency (what the latency target judges) is the commands', both of them, from arrival.
        Assert.Equal(2, after.Latency.Count - before.Latency.Count);
        Assert.Equal(2, after.ReservationDispatches + after.WeightDispatches - before.ReservationDispatches - before.WeightDispatches);
    }

    /// <summary>Receives Data-In PDUs until the one with status (or a SCSI Response); returns the data bytes.</summary>
    private static async Task<int> ReceiveUntilStatusAsync(RawInitiator c)
    {
        int bytes = 0;
        while (true)
        {
            var (h, data) = await c.ReceiveAsync();
            if (h.Opcode == Opcode.DataIn)
                bytes += data.Length;
            bool status = h.Opcode == Opcode.ScsiResponse || (h.Opcode == Opcode.DataIn && (h.Flags & 0x01) != 0);
            if (status)
            {
                c.Acknowledge(h);
                return bytes;
            }
        }
    }

    [Fact]
    public async Task ConnectionClosed_WhileQueuedBehindLimit_ReleasesWaiters()
    {
        var config = Config();
        config.Functions[1].LimitIops = 1;
        await using var server = new TargetServer(config, NullLoggerFactory.Instance);
        await server.StartAsync();
        var bulk = await LoginAsync(server, BulkHost, Bulk);
        for (int i = 0; i < 6; i++)
            await bulk.SendCommandAsync(Read10(i), 512, read: true);

        Assert.True(await WaitForAsync(() => Stats(server, "bulk").QueueDepth >= 4), "requests did not queue behind the limit");
        await bulk.DisposeAsync();

        Assert.True(await WaitForAsync(() => Stats(server, "bulk").QueueDepth == 0 && Stats(server, "bulk").Outstanding == 0), "waiters not released");
    }

    [Fact]
    public async Task SetServiceLevel_AtRunTime_AppliesOnEveryDevice()
    {
        var config = Config();
        config.Targets.Add(new TargetConfig { Name = "iqn.2026-11.dev.sluice:bulk2", Luns = [new LunConfig { Backend = "memory:1MiB" }] });
        config.Functions[1].Targets.Add("iqn.2026-11.dev.sluice:bulk2");
        await using var server = new TargetServer(config, NullLoggerFactory.Instance);
        await server.StartAsync();

        var level = new ServiceLevel { LimitIops = 50, Weight = 2 };
        server.SetServiceLevel("bulk", level);

        var stats = server.Functions.GetFunctionStats("bulk");
        Assert.Equal(["iqn.2026-11.dev.sluice:bulk2/0", "pool"], stats.Keys.Order());
        Assert.All(stats.Values, s => Assert.Equal(level, s.ServiceLevel));
        Assert.Throws<KeyNotFoundException>(() => server.SetServiceLevel("nope", level));
        Assert.Throws<ArgumentException>(() => server.SetServiceLevel("bulk", new ServiceLevel { ReservationIops = 10, LimitIops = 5 }));
        Assert.Equal(level, server.Functions.GetServiceLevel("bulk"));
        Assert.True(server.Functions.TryGetLane(Gold, 0, out _, out var handle));
        Assert.Equal("gold", handle!.Name);
    }

    [Fact]
    public async Task UnscheduledTarget_HasNoScheduler()
    {
        var config = Config();
        config.Targets.Add(new TargetConfig { Name = "iqn.2026-11.dev.sluice:free", Luns = [new LunConfig { Backend = "memory:1MiB" }] });
        await using var server = new TargetServer(config, NullLoggerFactory.Instance);
        await server.StartAsync();
        Assert.Equal(["pool"], server.GetQosSnapshot().Keys);
        Assert.False(server.Functions.TryGetLane("iqn.2026-11.dev.sluice:free", 0, out _, out _));
    }

    [Fact]
    public async Task Slices_WriteInOneTarget_InvisibleToTheOther()
    {
        await using var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        await using var gold = await LoginAsync(server, GoldHost, Gold);
        await using var bulk = await LoginAsync(server, BulkHost, Bulk);

        // Fill the last block of gold's slice; bulk's first block (the next bytes on the device) stays zero.
        var payload = Enumerable.Repeat((byte)0xAB, 512).ToArray();
        int last = (16 << 20) / 512 - 1;
        byte[] write = [0x2a, 0, (byte)(last >> 24), (byte)(last >> 16), (byte)(last >> 8), (byte)last, 0, 0, 1, 0];
        await gold.SendCommandAsync(write, 512, read: false, write: true, immediate: payload);
        var (status, _) = await gold.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);
        Assert.Equal(0, status[3]);

        Assert.Equal(payload, await ReadBlockAsync(gold, last));
        Assert.Equal(new byte[512], await ReadBlockAsync(bulk, 0));
    }

    private static QosFunctionStats Stats(TargetServer server, string function) => server.Functions.GetFunctionStats(function).Values.Single();

    private static async Task<bool> WaitForAsync(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (condition())
                return true;
            await Task.Delay(20);
        }
        return false;
    }

    private static async Task<RawInitiator> LoginAsync(TargetServer server, string initiator, string target)
    {
        var c = await RawInitiator.ConnectAsync(server.LocalEndpoints[0]);
        Assert.Equal(0, (await c.LoginAsync(initiator, target)).Class);
        // Clear the power-on unit attention so later commands run.
        for (int i = 0; i < 3; i++)
        {
            await c.SendCommandAsync(new byte[6], 0, read: false);
            var (h, _) = await c.ReceiveAsync();
            c.Acknowledge(h);
            if (h[3] == 0)
                break;
        }
        return c;
    }

    private static byte[] Read10(int lba) => [0x28, 0, (byte)(lba >> 24), (byte)(lba >> 16), (byte)(lba >> 8), (byte)lba, 0, 0, 1, 0];

    private static async Task<byte[]> ReadBlockAsync(RawInitiator c, int lba)
    {
        await c.SendCommandAsync(Read10(lba), 512, read: true);
        var (h, data) = await c.ReceiveAsync();
        Assert.Equal(Opcode.DataIn, h.Opcode);
        c.Acknowledge(h);
        return data;
    }

    /// <summary>Keeps <paramref name="depth"/> one-block reads outstanding until the time is up; returns completions.</summary>
    private static async Task<int> ReadLoopAsync(RawInitiator c, int depth, Stopwatch clock, TimeSpan until)
    {
        int sent = 0, completed = 0;
        for (; sent < depth; sent++)
            await c.SendCommandAsync(Read10(sent % 1024), 512, read: true);
        while (completed < sent)
        {
            var (h, _) = await c.ReceiveAsync();
            bool status = h.Opcode == Opcode.ScsiResponse || (h.Opcode == Opcode.DataIn && (h.Flags & 0x01) != 0);
            if (!status)
                continue;
            c.Acknowledge(h);
            completed++;
            if (clock.Elapsed < until)
            {
                await c.SendCommandAsync(Read10(sent % 1024), 512, read: true);
                sent++;
            }
        }
        return completed;
    }
}
