using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Offload;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

/// <summary>
/// Issue 4: with HeaderDigest and DataDigest = CRC32C, a byte corrupted on the wire never
/// reaches the back end or the caller (RFC 7143 §7.8), at ErrorRecoveryLevel 0.
/// </summary>
public sealed class DigestCorruptionTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:digest";
    private const string Initiator = "iqn.2026-11.dev.sluice:digest-client";
    private const int Blocks = 16;
    private TargetServer _server = null!;
    private string _dir = null!;

    private IPEndPoint Endpoint => _server.LocalEndpoints[0];

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-digest-tests").FullName;
        var config = new ServerConfig
        {
            DataDir = _dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets = [new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "memory:4MiB" }] }],
        };
        _server = new TargetServer(config, NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static byte[] Pattern(byte seed)
    {
        var data = new byte[Blocks * 512];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(seed + (i * 7));
        }

        return data;
    }

    private async Task<RawInitiator> LoginAsync(IPEndPoint endpoint, ulong isid)
    {
        var c = await RawInitiator.ConnectAsync(endpoint);
        c.Isid = isid;
        c.Digests = true;
        var (cls, _, keys) = await c.LoginAsync(Initiator, Target);
        Assert.Equal(0, cls);
        Assert.Equal("CRC32C", keys["HeaderDigest"]);
        Assert.Equal("CRC32C", keys["DataDigest"]);
        await TestUnitReadyUntilGoodAsync(c);
        return c;
    }

    private static async Task TestUnitReadyUntilGoodAsync(RawInitiator c)
    {
        for (int i = 0; i < 4; i++)
        {
            await c.SendCommandAsync(new byte[6], 0, read: false);
            var (h, _) = await c.ReceiveAsync();
            if (h.Opcode == Opcode.ScsiResponse && h[3] == 0)
            {
                return;
            }
        }

        Assert.Fail("unit attention never cleared");
    }

    /// <summary>WRITE(10) of the test blocks at LBA 0 without immediate data: the data goes in one solicited Data-Out.</summary>
    private static async Task<(Bhs Status, byte[] Sense)> WriteSolicitedAsync(RawInitiator c, byte[] data, Action? beforeDataOut = null)
    {
        byte[] cdb = [0x2a, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];
        uint itt = await c.SendCommandAsync(cdb, data.Length, read: false, write: true);
        var (r2t, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, r2t.Opcode);
        var d = default(Bhs);
        d.Opcode = Opcode.DataOut;
        d.Flags = 0x80;
        d.InitiatorTaskTag = itt;
        d.TargetTransferTag = r2t.TargetTransferTag;
        beforeDataOut?.Invoke();
        await c.Transport.SendAsync(d, data);
        while (true)
        {
            var (h, body) = await c.ReceiveAsync();
            if (h.Opcode == Opcode.ScsiResponse)
            {
                return (h, body);
            }

            Assert.Equal(Opcode.Reject, h.Opcode);
            Assert.Equal(RejectReason.DataDigestError, h[2]);
        }
    }

    private static async Task<byte[]> ReadAsync(RawInitiator c)
    {
        byte[] cdb = [0x28, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];
        await c.SendCommandAsync(cdb, Blocks * 512, read: true);
        var result = new byte[Blocks * 512];
        while (true)
        {
            var (h, data) = await c.ReceiveAsync();
            Assert.Equal(Opcode.DataIn, h.Opcode);
            data.CopyTo(result, (int)h.BufferOffset);
            if ((h.Flags & 0x01) != 0)
            {
                Assert.Equal(0, h[3]);
                return result;
            }
        }
    }

    [Theory]
    [InlineData("data", 100)]
    [InlineData("data", 8191)]
    [InlineData("digest", 0)]
    [InlineData("digest", 3)]
    public async Task CorruptedDataOut_IsRejected_AndNeverWritten(string where, int index)
    {
        var clean = Pattern(1);
        var dirty = Pattern(77);
        await using (var direct = await LoginAsync(Endpoint, 0x400000000001))
        {
            var (ok, _) = await WriteSolicitedAsync(direct, clean);
            Assert.Equal(0, ok[3]);
        }

        await using var proxy = new CorruptingProxy(Endpoint);
        await using var c = await LoginAsync(proxy.Endpoint, 0x400000000002);
        var (status, sense) = await WriteSolicitedAsync(c, dirty, () =>
        {
            // Data-Out on the wire: BHS (48) + header digest (4) + data + data digest (4).
            long at = proxy.UpstreamBytes + 52 + (where == "data" ? index : dirty.Length + index);
            proxy.CorruptUpstreamAt(at);
        });

        Assert.Equal(ScsiStatusCheckCondition, status[3]);
        Assert.Equal(0x0b, sense[2 + 2] & 0x0f);   // ABORTED COMMAND
        Assert.Equal(0x47, sense[2 + 12]);          // PROTOCOL SERVICE CRC ERROR
        Assert.Equal(0x05, sense[2 + 13]);

        // The session goes on, and the blocks still hold the clean data.
        Assert.Equal(clean, await ReadAsync(c));
    }

    private const byte ScsiStatusCheckCondition = 0x02;

    [Fact]
    public async Task CorruptedCommandHeader_DropsConnection_AndNothingIsWritten()
    {
        var clean = Pattern(3);
        await using (var direct = await LoginAsync(Endpoint, 0x400000000003))
        {
            await WriteSolicitedAsync(direct, clean);
        }

        await using (var proxy = new CorruptingProxy(Endpoint))
        {
            await using var c = await LoginAsync(proxy.Endpoint, 0x400000000004);
            proxy.CorruptUpstreamAt(proxy.UpstreamBytes + 33);  // inside the CDB: WRITE becomes something else
            byte[] cdb = [0x2a, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];
            await c.SendCommandAsync(cdb, Blocks * 512, read: false, write: true, immediate: Pattern(99)[..4096], final: true);
            await Assert.ThrowsAnyAsync<Exception>(async () => await c.ReceiveAsync(TimeSpan.FromSeconds(5)));
        }

        await using var check = await LoginAsync(Endpoint, 0x400000000005);
        Assert.Equal(clean, await ReadAsync(check));
    }

    [Fact]
    public async Task CorruptedImmediateData_IsRejected_AndNeverWritten()
    {
        var clean = Pattern(5);
        await using (var direct = await LoginAsync(Endpoint, 0x400000000006))
        {
            await WriteSolicitedAsync(direct, clean);
        }

        await using (var proxy = new CorruptingProxy(Endpoint))
        {
            await using var c = await LoginAsync(proxy.Endpoint, 0x400000000007);
            proxy.CorruptUpstreamAt(proxy.UpstreamBytes + 52 + 10);
            byte[] cdb = [0x2a, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];
            await c.SendCommandAsync(cdb, Blocks * 512, read: false, write: true, immediate: Pattern(66), final: true);
            var (h, _) = await c.ReceiveAsync();
            Assert.Equal(Opcode.Reject, h.Opcode);
            Assert.Equal(RejectReason.DataDigestError, h[2]);
        }

        await using var check = await LoginAsync(Endpoint, 0x400000000008);
        Assert.Equal(clean, await ReadAsync(check));
    }

    [Fact]
    public async Task CorruptedDataIn_IsDetectedByTheReceiver_NotHandedToTheCaller()
    {
        var clean = Pattern(9);
        await using var proxy = new CorruptingProxy(Endpoint);
        await using var c = await LoginAsync(proxy.Endpoint, 0x400000000009);
        await WriteSolicitedAsync(c, clean);
        byte[] cdb = [0x28, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];
        proxy.CorruptDownstreamAt(proxy.DownstreamBytes + 52 + 1000);
        await c.SendCommandAsync(cdb, Blocks * 512, read: true);
        await Assert.ThrowsAsync<DataDigestException>(async () => await c.ReceiveAsync());
        Assert.Equal(1, c.Transport.Counters.DataDigestErrors);
    }
}
