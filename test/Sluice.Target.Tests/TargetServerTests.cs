using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

public sealed class TargetServerTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:t1";
    private const string Secret = "iqn.2026-11.dev.sluice:secret";
    private const string Initiator = "iqn.2026-11.dev.sluice:i1";
    private TargetServer _server = null!;
    private string _dir = null!;

    private IPEndPoint Endpoint => _server.LocalEndpoints[0];

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-target-tests").FullName;
        var config = new ServerConfig
        {
            DataDir = _dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets =
            [
                new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "memory:16MiB" }] },
                new TargetConfig { Name = Secret, AllowedInitiators = ["iqn.2026-11.dev.sluice:only-me"], Luns = [new LunConfig { Number = 0, Backend = "memory:1MiB" }] },
            ],
            Limits = new LimitsConfig { NopInIntervalSeconds = 1, NopInTimeoutSeconds = 1, CommandWindow = 8 },
        };
        _server = new TargetServer(config, NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Login_UnknownTarget_FailsWithNotFound()
    {
        await using var c = await RawInitiator.ConnectAsync(Endpoint);
        var (cls, detail, _) = await c.LoginAsync(Initiator, "iqn.2026-11.dev.sluice:nope");
        Assert.Equal(0x02, cls);
        Assert.Equal(0x03, detail);
    }

    [Fact]
    public async Task Login_InitiatorNotInAcl_FailsWithAuthorizationFailure()
    {
        await using var c = await RawInitiator.ConnectAsync(Endpoint);
        var (cls, detail, _) = await c.LoginAsync(Initiator, Secret);
        Assert.Equal(0x02, cls);
        Assert.Equal(0x02, detail);
    }

    [Fact]
    public async Task SendTargets_Discovery_ListsOnlyTargetsTheAclAdmits()
    {
        await using var c = await RawInitiator.ConnectAsync(Endpoint);
        var (cls, _, _) = await c.LoginAsync(Initiator, null, discovery: true);
        Assert.Equal(0, cls);
        await c.SendTextAsync("SendTargets=All\0");
        var (h, data) = await c.ReceiveAsync();
        Assert.Equal(Opcode.TextResponse, h.Opcode);
        var keys = RawInitiator.ParseKeys(data);
        Assert.Equal(Target, keys["TargetName"]);
        Assert.Equal($"127.0.0.1:{Endpoint.Port},1", keys["TargetAddress"]);
    }

    [Fact]
    public async Task ScsiCommand_InDiscoverySession_IsRejected()
    {
        await using var c = await RawInitiator.ConnectAsync(Endpoint);
        await c.LoginAsync(Initiator, null, discovery: true);
        await c.SendCommandAsync(new byte[6], 0, read: false);
        var (h, data) = await c.ReceiveAsync();
        Assert.Equal(Opcode.Reject, h.Opcode);
        Assert.Equal(RejectReason.ProtocolError, h[2]);
        Assert.Equal(Bhs.Length, data.Length);
    }

    [Fact]
    public async Task Read_StatusFoldedIntoFinalDataIn_WithUnderflowResidual()
    {
        await using var c = await RawInitiator.ConnectAsync(Endpoint);
        Assert.Equal(0, (await c.LoginAsync(Initiator, Target)).Class);
        await DrainUnitAttentionAsync(c);

        // READ(10) of 2 blocks into a 4096-byte buffer: underflow of 3072 (RFC 7143 §11.4.5).
        byte[] cdb = [0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0];
        uint itt = await c.SendCommandAsync(cdb, 4096, read: true);
        var (h, data) = await c.ReceiveAsync();
        Assert.Equal(Opcode.DataIn, h.Opcode);
        Assert.Equal(itt, h.InitiatorTaskTag);
        Assert.Equal(0x01, h.Flags & 0x01);      // S: status in this PDU
        Assert.Equal(0x02, h.Flags & 0x06);      // U: underflow
        Assert.Equal(3072u, h.ResidualCount);
        Assert.Equal(1024, data.Length);
    }

    [Fact]
    public async Task Write_BeyondImmediateData_SolicitedWithR2T()
    {
        await using var c = await RawInitiator.ConnectAsync(Endpoint);
        Assert.Equal(0, (await c.LoginAsync(Initiator, Target)).Class);
        await DrainUnitAttentionAsync(c);

        // WRITE(10) of 256 blocks with 64 KiB FirstBurst: 512 immediate bytes, F=1, the rest by R2T.
        var payload = new byte[256 * 512];
        Random.Shared.NextBytes(payload);
        byte[] cdb = [0x2a, 0, 0, 0, 0, 8, 0, 1, 0, 0];
        uint itt = await c.SendCommandAsync(cdb, payload.Length, read: false, write: true, immediate: payload[..512]);
        var (r2t, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, r2t.Opcode);
        Assert.Equal(512u, r2t.BufferOffset);
        Assert.Equal((uint)(payload.Length - 512), r2t.ResidualCount);
        var d = default(Bhs);
        d.Opcode = Opcode.DataOut;
        d.Flags = 0x80;
        d.InitiatorTaskTag = itt;
        d.TargetTransferTag = r2t.TargetTransferTag;
        d.BufferOffset = 512;
        await c.Transport.SendAsync(d, payload.AsMemory(512));
        var (status, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);
        Assert.Equal(0, status[3]);

        byte[] read = [0x28, 0, 0, 0, 0, 8, 0, 1, 0, 0];
        await c.SendCommandAsync(read, payload.Length, read: true);
        var got = new byte[payload.Length];
        int offset = 0;
        while (offset < got.Length)
        {
            var (h, data) = await c.ReceiveAsync();
            Assert.Equal(Opcode.DataIn, h.Opcode);
            data.CopyTo(got, (int)h.BufferOffset);
            offset += data.Length;
        }

        Assert.Equal(payload, got);
    }

    [Fact]
    public async Task IdleConnection_PingedAndDroppedWhenSilent()
    {
        await using var c = await RawInitiator.ConnectAsync(Endpoint);
        Assert.Equal(0, (await c.LoginAsync(Initiator, Target)).Class);
        var (ping, _) = await c.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(Opcode.NopIn, ping.Opcode);
        Assert.Equal(0xffffffffu, ping.InitiatorTaskTag);
        Assert.NotEqual(0xffffffffu, ping.TargetTransferTag);

        // No answer: the target drops the connection after NopInTimeoutSeconds.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            while (true)
            {
                await c.ReceiveAsync(TimeSpan.FromSeconds(6));
            }
        });
    }

    [Fact]
    public async Task IdleConnection_AnsweringPings_StaysUp()
    {
        await using var c = await RawInitiator.ConnectAsync(Endpoint);
        Assert.Equal(0, (await c.LoginAsync(Initiator, Target)).Class);
        for (int i = 0; i < 3; i++)
        {
            var (ping, _) = await c.ReceiveAsync(TimeSpan.FromSeconds(5));
            Assert.Equal(Opcode.NopIn, ping.Opcode);
            await c.SendNopOutAsync(0xffffffff, ping.TargetTransferTag);
        }

        await DrainUnitAttentionAsync(c);
    }

    [Fact]
    public async Task SecondLoginWithSameIsid_ReinstatesSession_ClosingTheOld()
    {
        await using var first = await RawInitiator.ConnectAsync(Endpoint);
        Assert.Equal(0, (await first.LoginAsync(Initiator, Target)).Class);
        await using var second = await RawInitiator.ConnectAsync(Endpoint);
        Assert.Equal(0, (await second.LoginAsync(Initiator, Target)).Class);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            while (true)
            {
                var (h, _) = await first.ReceiveAsync(TimeSpan.FromSeconds(5));
                if (h.Opcode == Opcode.NopIn)
                {
                    await first.SendNopOutAsync(0xffffffff, h.TargetTransferTag);
                }
            }
        });
        await DrainUnitAttentionAsync(second);
    }

    /// <summary>TEST UNIT READY until the power-on unit attention is consumed.</summary>
    private static async Task DrainUnitAttentionAsync(RawInitiator c)
    {
        for (int i = 0; i < 4; i++)
        {
            await c.SendCommandAsync(new byte[6], 0, read: false);
            (Bhs h, byte[] _) r;
            do
            {
                r = await c.ReceiveAsync();
                if (r.h.Opcode == Opcode.NopIn)
                {
                    await c.SendNopOutAsync(0xffffffff, r.h.TargetTransferTag);
                }
            }
            while (r.h.Opcode != Opcode.ScsiResponse);

            if (r.h[3] == 0)
            {
                return;
            }
        }

        Assert.Fail("unit attention never cleared");
    }
}
