using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Storage;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

/// <summary>
/// RFC 7143 §6.3.5: a write of the old session that the back end has already started cannot be
/// called back when its connection dies. If the initiator logs in again (same ISID: session
/// reinstatement; or a new ISID) and writes the same block, that acknowledged write must not be
/// undone by the old one landing later. The back end here holds writes of the "old" pattern for
/// 1.5 s and ignores cancellation, as a disk does once a write is issued; the new login must wait
/// for it, so the block ends up holding the new data.
/// </summary>
public sealed class ReinstatementOrderingTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:order";
    private const string Initiator = "iqn.2026-11.dev.sluice:order-i";
    private const byte Old = 0xAA;
    private const byte New = 0x55;
    private static readonly TimeSpan Hold = TimeSpan.FromMilliseconds(1500);
    private TargetServer _server = null!;
    private string _dir = null!;
    private SlowPatternDevice? _device;

    private IPEndPoint Endpoint => _server.LocalEndpoints[0];

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-order-tests").FullName;
        var config = new ServerConfig
        {
            DataDir = _dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets = [new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "memory:1MiB" }] }],
        };
        _server = new TargetServer(config, NullLoggerFactory.Instance)
        {
            WrapDevice = d => _device = new SlowPatternDevice(d),
        };
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WriteOfDeadConnection_StillAtBackEnd_DoesNotOvertakeTheNewSessionsWrite(bool sameIsid)
    {
        // The old connection: a WRITE of the old pattern reaches the back end, then the link dies.
        var first = await RawInitiator.ConnectAsync(Endpoint);
        first.Isid = 0x400001370001;
        Assert.Equal(0, (await first.LoginAsync(Initiator, Target)).Class);
        await ConsumeUnitAttentionAsync(first);
        await first.SendCommandAsync(Write10(lba: 8), 512, read: false, write: true, immediate: Block(Old));
        Assert.True(await _device!.OldWriteStarted.WaitAsync(TimeSpan.FromSeconds(5)), "the old write never reached the back end");
        await first.DisposeAsync();

        // The new login (reinstatement, or a new ISID) is answered only once that write is done.
        await using var second = await RawInitiator.ConnectAsync(Endpoint);
        second.Isid = sameIsid ? 0x400001370001UL : 0x400001370002UL;
        var clock = Stopwatch.StartNew();
        Assert.Equal(0, (await second.LoginAsync(Initiator, Target)).Class);
        var waited = clock.Elapsed;
        Assert.True(_device.OldWritesDone >= 1 || _device.OldWritesRunning == 0, "login answered while the old write was still at the back end");
        await ConsumeUnitAttentionAsync(second);

        // The new session's write is acknowledged ...
        await second.SendCommandAsync(Write10(lba: 8), 512, read: false, write: true, immediate: Block(New));
        var status = await NextResponseAsync(second);
        Assert.Equal(0, status[3]);

        // ... and stays: nothing of the old session lands on top of it later.
        await Task.Delay(Hold + TimeSpan.FromMilliseconds(300));
        await second.SendCommandAsync(Read10(lba: 8), 512, read: true);
        byte[] data = await ReadDataAsync(second);
        Assert.True(data.All(b => b == New), $"block holds 0x{data[0]:x2} after the old write finished; login waited {waited.TotalMilliseconds:F0} ms");
    }

    private static byte[] Block(byte value) => Enumerable.Repeat(value, 512).ToArray();

    private static byte[] Write10(uint lba) => [0x2A, 0, (byte)(lba >> 24), (byte)(lba >> 16), (byte)(lba >> 8), (byte)lba, 0, 0, 1, 0];

    private static byte[] Read10(uint lba) => [0x28, 0, (byte)(lba >> 24), (byte)(lba >> 16), (byte)(lba >> 8), (byte)lba, 0, 0, 1, 0];

    /// <summary>TEST UNIT READY until the power-on / nexus-loss unit attention is consumed.</summary>
    private static async Task ConsumeUnitAttentionAsync(RawInitiator c)
    {
        for (int i = 0; i < 4; i++)
        {
            await c.SendCommandAsync(new byte[6], 0, read: false);
            var h = await NextResponseAsync(c);
            if (h[3] == 0)
            {
                return;
            }
        }
    }

    private static async Task<Bhs> NextResponseAsync(RawInitiator c)
    {
        while (true)
        {
            var (h, _) = await c.ReceiveAsync(TimeSpan.FromSeconds(10));
            if (h.Opcode == Opcode.NopIn)
            {
                await c.SendNopOutAsync(0xffffffff, h.TargetTransferTag);
                continue;
            }

            if (h.Opcode == Opcode.ScsiResponse)
            {
                c.Acknowledge(h);
                return h;
            }
        }
    }

    private static async Task<byte[]> ReadDataAsync(RawInitiator c)
    {
        var data = new List<byte>();
        while (true)
        {
            var (h, d) = await c.ReceiveAsync(TimeSpan.FromSeconds(10));
            if (h.Opcode == Opcode.DataIn)
            {
                data.AddRange(d);
                if ((h.Flags & 0x01) != 0)
                {
                    c.Acknowledge(h);
                    return [.. data];
                }
            }
            else if (h.Opcode == Opcode.ScsiResponse)
            {
                c.Acknowledge(h);
                return [.. data];
            }
        }
    }

    /// <summary>Holds writes whose first byte is <see cref="Old"/> for <see cref="Hold"/>, deaf to cancellation.</summary>
    private sealed class SlowPatternDevice(IBlockDevice inner) : IBlockDevice
    {
        private int _running;
        private int _done;

        public SemaphoreSlim OldWriteStarted { get; } = new(0);

        public int OldWritesRunning => Volatile.Read(ref _running);

        public int OldWritesDone => Volatile.Read(ref _done);

        public long Length => inner.Length;

        public bool IsReadOnly => inner.IsReadOnly;

        public bool SupportsUnmap => inner.SupportsUnmap;

        public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default) =>
            inner.ReadAsync(offset, destination, cancellationToken);

        public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default)
        {
            if (source.Length > 0 && source.Span[0] == Old)
            {
                byte[] copy = source.ToArray();
                Interlocked.Increment(ref _running);
                OldWriteStarted.Release();
                await Task.Delay(Hold, CancellationToken.None);
                await inner.WriteAsync(offset, copy, forceUnitAccess, CancellationToken.None);
                Interlocked.Increment(ref _done);
                Interlocked.Decrement(ref _running);
                return;
            }

            await inner.WriteAsync(offset, source, forceUnitAccess, cancellationToken);
        }

        public ValueTask FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default) =>
            inner.UnmapAsync(offset, length, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
