using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Target.Configuration;
using Xunit.Abstractions;

namespace Sluice.Target.Tests;

/// <summary>
/// Issue 3: EXTENDED COPY runs inside the target. A 256 MiB LUN is cloned to another LUN of the
/// same target over a real iSCSI session and the bytes the target sends on that connection stay
/// under 1% of the copy; a copy into a target whose ACL excludes the initiator is refused.
/// </summary>
public sealed class ExtendedCopyTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Initiator = "iqn.2026-11.dev.sluice:xcopy-client";
    private const string Outsider = "iqn.2026-11.dev.sluice:someone-else";
    private const string Main = "iqn.2026-11.dev.sluice:xcopy";
    private const string Locked = "iqn.2026-11.dev.sluice:xcopy-locked";
    private const string Open = "iqn.2026-11.dev.sluice:xcopy-open";
    private const int BlockSize = 512;
    private string _dir = null!;

    public Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-xcopy-tests").FullName;
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    private static async Task<RawInitiator> LoginAsync(TargetServer server, string initiator, string target, params ulong[] luns)
    {
        var c = await RawInitiator.ConnectAsync(server.LocalEndpoints[0]);
        var (cls, _, _) = await c.LoginAsync(initiator, target);
        Assert.Equal(0, cls);
        foreach (ulong lun in luns)
        {
            // Each LU reports POWER ON once per nexus; clear it with TEST UNIT READY.
            for (int i = 0; ; i++)
            {
                Assert.True(i < 4, "unit attention never cleared");
                await c.SendCommandAsync(new byte[6], 0, read: false, lun: LunField(lun));
                var (h, _) = await c.ReceiveAsync();
                if (h.Opcode == Opcode.ScsiResponse && h[3] == 0)
                {
                    break;
                }
            }
        }

        return c;
    }

    private static ulong LunField(ulong lun) => lun << 48;

    /// <summary>Runs a command with no data out, collecting Data-In; returns status, data and sense.</summary>
    private static async Task<(byte Status, byte[] Data, byte[] Sense)> RunAsync(RawInitiator c, byte[] cdb, int expected, ulong lun = 0, byte[]? dataOut = null, TimeSpan? timeout = null)
    {
        await c.SendCommandAsync(cdb, dataOut?.Length ?? expected, read: dataOut is null && expected > 0, write: dataOut is not null, immediate: dataOut, lun: LunField(lun));
        using var data = new MemoryStream();
        while (true)
        {
            var (h, payload) = await c.ReceiveAsync(timeout);
            if (h.Opcode == Opcode.DataIn)
            {
                data.Write(payload);
                if ((h.Flags & 0x01) != 0)
                {
                    c.Acknowledge(h);
                    return (h[3], data.ToArray(), []);
                }

                continue;
            }

            Assert.Equal(Opcode.ScsiResponse, h.Opcode);
            c.Acknowledge(h);
            byte[] sense = payload.Length >= 2 ? payload[2..(2 + BinaryPrimitives.ReadUInt16BigEndian(payload))] : [];
            return (h[3], data.ToArray(), sense);
        }
    }

    private static async Task<byte[]> NaaAsync(RawInitiator c, ulong lun)
    {
        var (status, page, _) = await RunAsync(c, [0x12, 0x01, 0x83, 0, 255, 0], 255, lun);
        Assert.Equal(0, status);
        Assert.Equal(0x03, page[5] & 0x3F); // LU-associated NAA designator first
        return page[8..24];
    }

    private static byte[] ExtendedCopyCdb(int length)
    {
        var cdb = new byte[16];
        cdb[0] = 0x83;
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(10), (uint)length);
        return cdb;
    }

    /// <summary>An EXTENDED COPY(LID1) parameter list: two identification CSCDs, block → block segments of up to 65535 blocks.</summary>
    private static byte[] CopyList(byte[] source, byte[] destination, long blocks, ulong srcLba = 0, ulong dstLba = 0)
    {
        int segments = (int)((blocks + 65534) / 65535);
        var b = new byte[16 + 64 + (28 * segments)];
        b[0] = 1; // LIST IDENTIFIER, LIST ID USAGE 00b
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), 64);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), (uint)(28 * segments));
        int p = 16;
        foreach (var designator in new[] { source, destination })
        {
            b[p] = 0xE4;
            b[p + 4] = 0x01;
            b[p + 5] = 0x03;
            b[p + 7] = 16;
            designator.CopyTo(b, p + 8);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(p + 30), BlockSize);
            p += 32;
        }

        for (long done = 0; done < blocks;)
        {
            ushort n = (ushort)Math.Min(65535, blocks - done);
            b[p] = 0x02;
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(p + 2), 0x18);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(p + 4), 0);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(p + 6), 1);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(p + 10), n);
            BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(p + 12), srcLba + (ulong)done);
            BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(p + 20), dstLba + (ulong)done);
            p += 28;
            done += n;
        }

        return b;
    }

    private static void FillRandom(string path, long length, int seed)
    {
        var random = new Random(seed);
        var chunk = new byte[4 << 20];
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write);
        for (long done = 0; done < length; done += chunk.Length)
        {
            random.NextBytes(chunk);
            f.Write(chunk, 0, (int)Math.Min(chunk.Length, length - done));
        }
    }

    private static bool FilesEqual(string a, string b)
    {
        using var fa = File.OpenRead(a);
        using var fb = File.OpenRead(b);
        if (fa.Length != fb.Length)
        {
            return false;
        }

        var ba = new byte[4 << 20];
        var bb = new byte[4 << 20];
        while (true)
        {
            int n = fa.ReadAtLeast(ba, ba.Length, throwOnEndOfStream: false);
            fb.ReadExactly(bb, 0, n);
            if (n == 0)
            {
                return true;
            }

            if (!ba.AsSpan(0, n).SequenceEqual(bb.AsSpan(0, n)))
            {
                return false;
            }
        }
    }

    [Fact]
    public async Task Clone256MiBLun_BytesEqual_AndNoDataCrossesTheNetwork()
    {
        const long size = 256L << 20;
        string src = Path.Combine(_dir, "src.img");
        string dst = Path.Combine(_dir, "dst.img");
        FillRandom(src, size, seed: 256);
        var expected = new byte[1 << 20];
        using (var f = File.OpenRead(src))
        {
            f.ReadExactly(expected);
        }

        var config = new ServerConfig
        {
            DataDir = _dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets =
            [
                new TargetConfig
                {
                    Name = Main,
                    Luns =
                    [
                        new LunConfig { Number = 0, Backend = "file:src.img:256MiB" },
                        new LunConfig { Number = 1, Backend = "file:dst.img:256MiB" },
                    ],
                },
            ],
        };
        long received;
        await using (var server = new TargetServer(config, NullLoggerFactory.Instance))
        {
            await server.StartAsync();
            await using var c = await LoginAsync(server, Initiator, Main, 0, 1);
            var list = CopyList(await NaaAsync(c, 0), await NaaAsync(c, 1), size / BlockSize);
            var started = System.Diagnostics.Stopwatch.StartNew();
            var (status, _, sense) = await RunAsync(c, ExtendedCopyCdb(list.Length), 0, dataOut: list, timeout: TimeSpan.FromSeconds(120));
            output.WriteLine($"EXTENDED COPY of {size} bytes took {started.ElapsedMilliseconds} ms");
            Assert.True(status == 0, $"EXTENDED COPY status {status:X2}, sense {Convert.ToHexString(sense)}");

            // RECEIVE COPY RESULTS / COPY STATUS: done, 9 segments, 256 MiB moved (in KiB units).
            var rcr = new byte[16];
            rcr[0] = 0x84;
            rcr[2] = 1;
            rcr[13] = 64;
            var (s2, copyStatus, _) = await RunAsync(c, rcr, 64);
            Assert.Equal(0, s2);
            Assert.Equal(0x01, copyStatus[4]);
            Assert.Equal(9, BinaryPrimitives.ReadUInt16BigEndian(copyStatus.AsSpan(5)));
            Assert.Equal(size, (long)BinaryPrimitives.ReadUInt32BigEndian(copyStatus.AsSpan(8)) << (10 * copyStatus[7]));

            // Everything the target sent on this connection (login, INQUIRY, the copy, its status)
            // is counted where it arrives: the initiator's end of the connection.
            received = c.Transport.Counters.BytesReceived;
            output.WriteLine($"target sent {received} bytes on the connection ({100.0 * received / size:F4}% of the copy)");
            Assert.True(received < size / 100, $"target sent {received} bytes for a {size}-byte copy");

            // The counter does count data: reading 1 MiB of the clone moves it past 1 MiB.
            var read = new byte[10];
            read[0] = 0x28;
            read[7] = 0x08; // 2048 blocks from LBA 0
            var (s3, head, _) = await RunAsync(c, read, 1 << 20, lun: 1);
            Assert.Equal(0, s3);
            Assert.True(c.Transport.Counters.BytesReceived - received >= 1 << 20);
            Assert.Equal(expected, head);
        }

        // After the server flushed and closed the back ends: the clone is byte for byte the source.
        Assert.True(FilesEqual(src, dst), "destination differs from source");
    }

    [Fact]
    public async Task CrossTargetCopy_FollowsTheAclOfTheOtherTarget()
    {
        var config = new ServerConfig
        {
            DataDir = _dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets =
            [
                new TargetConfig { Name = Main, Luns = [new LunConfig { Number = 0, Backend = "file:main.img:8MiB" }] },
                new TargetConfig { Name = Locked, AllowedInitiators = [Outsider], Luns = [new LunConfig { Number = 0, Backend = "file:locked.img:8MiB" }] },
                new TargetConfig { Name = Open, AllowedInitiators = [Initiator], Luns = [new LunConfig { Number = 0, Backend = "file:open.img:8MiB" }] },
            ],
        };
        var block = new byte[64 * 1024];
        new Random(7).NextBytes(block);
        await File.WriteAllBytesAsync(Path.Combine(_dir, "main.img"), block);
        await using (var server = new TargetServer(config, NullLoggerFactory.Instance))
        {
            await server.StartAsync();
            await CopyAcrossTargetsAsync(server);
        }

        var open = new byte[block.Length];
        var locked = new byte[block.Length];
        using (var f = File.OpenRead(Path.Combine(_dir, "open.img")))
        {
            f.ReadExactly(open);
        }

        using (var f = File.OpenRead(Path.Combine(_dir, "locked.img")))
        {
            f.ReadExactly(locked);
        }

        Assert.Equal(block, open);
        Assert.All(locked, b => Assert.Equal(0, b));
    }

    private static async Task CopyAcrossTargetsAsync(TargetServer server)
    {

        byte[] lockedNaa;
        await using (var outsider = await LoginAsync(server, Outsider, Locked, 0))
        {
            lockedNaa = await NaaAsync(outsider, 0);
        }

        byte[] openNaa;
        await using (var other = await LoginAsync(server, Initiator, Open, 0))
        {
            openNaa = await NaaAsync(other, 0);
        }

        await using var c = await LoginAsync(server, Initiator, Main, 0);
        var mainNaa = await NaaAsync(c, 0);

        // Into a target whose ACL admits this initiator: copied.
        var list = CopyList(mainNaa, openNaa, 128);
        Assert.Equal(0, (await RunAsync(c, ExtendedCopyCdb(list.Length), 0, dataOut: list)).Status);

        // Into a target whose ACL excludes it: COPY ABORTED, COPY TARGET DEVICE NOT REACHABLE.
        list = CopyList(mainNaa, lockedNaa, 128);
        var (status, _, sense) = await RunAsync(c, ExtendedCopyCdb(list.Length), 0, dataOut: list);
        Assert.Equal(2, status);
        Assert.Equal(0x0A, sense[2] & 0x0F);
        Assert.Equal((0x0D, 0x02), (sense[12], sense[13]));
        // Nor can it read from there.
        list = CopyList(lockedNaa, mainNaa, 128);
        Assert.Equal(2, (await RunAsync(c, ExtendedCopyCdb(list.Length), 0, dataOut: list)).Status);
    }
}
