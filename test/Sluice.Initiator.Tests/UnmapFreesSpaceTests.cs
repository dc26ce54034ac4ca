using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Target;
using Sluice.Target.Configuration;
using Xunit.Abstractions;

namespace Sluice.Initiator.Tests;

/// <summary>
/// Issue 3: UNMAP on a sparse file LU gives the space back to the file system (the file's
/// allocated blocks, what <c>du</c> shows, shrink by the range), and GET LBA STATUS (SBC-3
/// §5.7) agrees: the range is mapped before and deallocated after.
/// </summary>
[Collection("Serial")]
public sealed class UnmapFreesSpaceTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:thin";
    private const long Mib = 1024 * 1024;
    private const long WrittenBytes = 64 * Mib;
    private readonly ITestOutputHelper _output;
    private TargetServer _server = null!;
    private string _dir = null!;

    public UnmapFreesSpaceTests(ITestOutputHelper output) => _output = output;

    private string ImagePath => Path.Combine(_dir, "thin.img");

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-unmap-tests").FullName;
        _server = new TargetServer(
            new ServerConfig
            {
                DataDir = _dir,
                Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
                Targets = [new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "file:thin.img:128MiB" }] }],
            },
            NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Bytes the file system has allocated to the file: st_blocks × 512, as <c>du</c> counts.</summary>
    private long AllocatedBytes()
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%b %B", ImagePath]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return long.Parse(parts[0], CultureInfo.InvariantCulture) * long.Parse(parts[1], CultureInfo.InvariantCulture);
    }

    /// <summary>GET LBA STATUS from <paramref name="lba"/>: (start, blocks, provisioning status) per descriptor.</summary>
    private static async Task<List<(long Lba, long Blocks, int Status)>> LbaStatusAsync(IscsiLun lun, long lba)
    {
        var cdb = new byte[16];
        cdb[0] = 0x9e; // SERVICE ACTION IN (16)
        cdb[1] = 0x12; // GET LBA STATUS
        BinaryPrimitives.WriteUInt64BigEndian(cdb.AsSpan(2), (ulong)lba);
        var data = new byte[8 + (16 * 64)];
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(10), (uint)data.Length);
        var result = await lun.ExecuteAsync(cdb, dataIn: data);
        result.ThrowIfError(cdb[0]);
        int length = (int)BinaryPrimitives.ReadUInt32BigEndian(data);
        var extents = new List<(long, long, int)>();
        for (int offset = 8; offset + 16 <= Math.Min(data.Length, 4 + length); offset += 16)
        {
            extents.Add((
                (long)BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(offset)),
                BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(offset + 8)),
                data[offset + 12] & 0x0f));
        }

        return extents;
    }

    /// <summary>The provisioning status GET LBA STATUS reports for every block of [lba, lba+blocks), or -1 when it changes inside.</summary>
    private static async Task<int> StatusOfRangeAsync(IscsiLun lun, long lba, long blocks)
    {
        int status = -1;
        for (long at = lba; at < lba + blocks;)
        {
            var extents = await LbaStatusAsync(lun, at);
            Assert.NotEmpty(extents);
            Assert.Equal(at, extents[0].Lba);
            foreach (var (start, count, st) in extents)
            {
                if (start >= lba + blocks)
                {
                    break;
                }
                Assert.True(count > 0, "a descriptor of zero blocks");
                if (status == -1)
                {
                    status = st;
                }
                else if (status != st)
                {
                    return -1;
                }
                at = start + count;
            }
        }

        return status;
    }

    [SkippableFact]
    public async Task UnmapOfWrittenRange_ShrinksAllocatedBlocks_AndGetLbaStatusAgrees()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "hole punching (fallocate PUNCH_HOLE) and stat(1) are Linux's");
        await using var lun = await IscsiLun.OpenAsync(
            IscsiUrl.Parse($"iscsi://127.0.0.1:{_server.LocalEndpoints[0].Port}/{Target}/0"));
        var capacity = await lun.ReadCapacityAsync();
        Assert.True(capacity.ThinProvisioned, "a sparse file LU must report LBPME");

        // 64 MiB of random data (incompressible, so no file system can store it in less),
        // then SYNCHRONIZE CACHE so it is on disk before st_blocks is read.
        const long start = 16 * Mib;
        long lba = start / lun.BlockSize;
        long blocks = WrittenBytes / lun.BlockSize;
        var chunk = new byte[4 * Mib];
        for (long offset = 0; offset < WrittenBytes; offset += chunk.Length)
        {
            Random.Shared.NextBytes(chunk);
            await lun.WriteAsync((start + offset) / lun.BlockSize, chunk);
        }
        await lun.SynchronizeCacheAsync();

        long before = AllocatedBytes();
        Assert.True(before >= WrittenBytes, $"after writing {WrittenBytes} bytes only {before} are allocated");
        Assert.Equal(0, await StatusOfRangeAsync(lun, lba, blocks)); // 0: mapped

        // UNMAP the range, in commands within the Block Limits VPD's MAXIMUM UNMAP LBA COUNT.
        var limits = BlockLimits.Parse(await lun.InquiryAsync(0xB0));
        long perCommand = limits.MaxUnmapBlocks is > 0 and < uint.MaxValue ? limits.MaxUnmapBlocks : blocks;
        for (long at = lba; at < lba + blocks; at += perCommand)
        {
            await lun.UnmapAsync([new BlockRange(at, Math.Min(perCommand, lba + blocks - at))]);
        }
        await lun.SynchronizeCacheAsync();

        long after = AllocatedBytes();
        _output.WriteLine($"allocated: {before} bytes after writing {WrittenBytes}, {after} after UNMAP (freed {before - after})");
        Assert.True(before - after >= WrittenBytes * 95 / 100, $"UNMAP of {WrittenBytes} bytes freed only {before - after} (allocated {before} -> {after})");
        Assert.Equal(1, await StatusOfRangeAsync(lun, lba, blocks)); // 1: deallocated

        // And the blocks read back as zeros (LBPRZ).
        var back = new byte[4 * Mib];
        await lun.ReadAsync(lba, back);
        Assert.True(back.AsSpan().IndexOfAnyExcept((byte)0) < 0, "unmapped blocks must read as zeros");
    }
}
