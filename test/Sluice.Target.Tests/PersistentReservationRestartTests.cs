using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

/// <summary>Issue 3: a registration made with APTPL=1 survives a restart of the server (SPC-4 5.12.4).</summary>
public sealed class PersistentReservationRestartTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:aptpl";
    private const string Initiator = "iqn.2026-11.dev.sluice:aptpl-client";
    private string _dir = null!;

    public Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-aptpl-tests").FullName;
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    private TargetServer NewServer() => new(
        new ServerConfig
        {
            DataDir = _dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets = [new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "file:lun0.img:8MiB" }] }],
        },
        NullLoggerFactory.Instance);

    private static async Task<RawInitiator> LoginAsync(TargetServer server)
    {
        var c = await RawInitiator.ConnectAsync(server.LocalEndpoints[0]);
        var (cls, _, _) = await c.LoginAsync(Initiator, Target);
        Assert.Equal(0, cls);
        for (int i = 0; i < 4; i++)
        {
            await c.SendCommandAsync(new byte[6], 0, read: false);
            var (h, _) = await c.ReceiveAsync();
            if (h.Opcode == Opcode.ScsiResponse && h[3] == 0)
            {
                return c;
            }
        }

        throw new InvalidOperationException("unit attention never cleared");
    }

    private static async Task<List<ulong>> ReadKeysAsync(RawInitiator c)
    {
        byte[] cdb = [0x5e, 0x00, 0, 0, 0, 0, 0, 0x01, 0x00, 0];
        await c.SendCommandAsync(cdb, 256, read: true);
        var (h, data) = await c.ReceiveAsync();
        Assert.Equal(Opcode.DataIn, h.Opcode);
        Assert.Equal(0, h[3]);
        int length = (int)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(4));
        var keys = new List<ulong>();
        for (int offset = 8; offset < 8 + length; offset += 8)
        {
            keys.Add(BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(offset)));
        }

        return keys;
    }

    [Fact]
    public async Task RegisterWithAptpl_SurvivesServerRestart()
    {
        const ulong key = 0x5eed_0000_0000_0001;
        await using (var server = NewServer())
        {
            await server.StartAsync();
            await using var c = await LoginAsync(server);

            // PERSISTENT RESERVE OUT, REGISTER, with APTPL=1 in the parameter list (SPC-4 6.16.3).
            var parameters = new byte[24];
            BinaryPrimitives.WriteUInt64BigEndian(parameters.AsSpan(8), key);
            parameters[20] = 0x01;
            byte[] cdb = [0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0];
            await c.SendCommandAsync(cdb, 24, read: false, write: true, immediate: parameters);
            var (status, sense) = await c.ReceiveAsync();
            Assert.Equal(Opcode.ScsiResponse, status.Opcode);
            Assert.True(status[3] == 0, $"REGISTER failed: {Convert.ToHexString(sense)}");
            Assert.Equal([key], await ReadKeysAsync(c));
        }

        await using (var restarted = NewServer())
        {
            await restarted.StartAsync();
            await using var c = await LoginAsync(restarted);
            Assert.Equal([key], await ReadKeysAsync(c));
        }
    }
}
