using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

/// <summary>
/// Issue 3, multipath: one initiator port (same InitiatorName, same ISID) logged in through two
/// portal groups has two sessions (RFC 7143 §4.4.1: a session is identified by the initiator
/// port and the target portal group) and two I_T nexuses (SPC-4 §3.1.50: initiator port and
/// target port), so persistent reservations and unit attentions tell the paths apart
/// (SPC-4 §5.13).
/// </summary>
public sealed class MultipathNexusTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:mpath";
    private const string Initiator = "iqn.2026-11.dev.sluice:mpath-host";
    private const byte ReservationConflict = 0x18;
    private TargetServer _server = null!;
    private string _dir = null!;

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-mpath-tests").FullName;
        _server = new TargetServer(
            new ServerConfig
            {
                DataDir = _dir,
                Portals =
                [
                    new PortalConfig { Host = "127.0.0.1", Port = 0, GroupTag = 1 },
                    new PortalConfig { Host = "127.0.0.1", Port = 0, GroupTag = 2 },
                ],
                Targets = [new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "memory:8MiB" }] }],
            },
            NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Logs in through portal <paramref name="portal"/> and clears the power-on unit attention.</summary>
    private async Task<RawInitiator> LoginAsync(int portal)
    {
        var c = await RawInitiator.ConnectAsync(_server.LocalEndpoints[portal]);
        var (cls, detail, _) = await c.LoginAsync(Initiator, Target);
        Assert.True(cls == 0, $"login through portal {portal}: status {cls:x2}{detail:x2}");
        for (int i = 0; i < 4; i++)
        {
            var (status, _) = await RunAsync(c, new byte[6]);
            if (status == 0)
            {
                return c;
            }
        }

        throw new InvalidOperationException("unit attention never cleared");
    }

    /// <summary>Runs one command; returns its status and the Data-In (GOOD) or sense data (CHECK CONDITION).</summary>
    private static async Task<(byte Status, byte[] Data)> RunAsync(RawInitiator c, byte[] cdb, int dataIn = 0, byte[]? dataOut = null)
    {
        await c.SendCommandAsync(cdb, dataOut?.Length ?? dataIn, read: dataIn > 0, write: dataOut is not null, immediate: dataOut);
        var received = new List<byte>();
        while (true)
        {
            var (h, data) = await c.ReceiveAsync(TimeSpan.FromSeconds(10));
            if (h.Opcode == Opcode.DataIn)
            {
                received.AddRange(data);
                if ((h[1] & 0x01) != 0) // S: status in the last Data-In
                {
                    c.Acknowledge(h);
                    return (h[3], received.ToArray());
                }
                continue;
            }

            Assert.Equal(Opcode.ScsiResponse, h.Opcode);
            c.Acknowledge(h);
            // A response's data segment is SenseLength (2 bytes) then the sense data.
            return (h[3], data.Length >= 2 ? data[2..] : []);
        }
    }

    private static (int Key, int Asc, int Ascq) Sense(byte[] sense) => (sense[2] & 0x0f, sense[12], sense[13]);

    private static byte[] ProutCdb(byte serviceAction, byte type = 0)
    {
        byte[] cdb = [0x5f, serviceAction, type, 0, 0, 0, 0, 0, 24, 0];
        return cdb;
    }

    private static byte[] ProutParameters(ulong key, ulong serviceActionKey)
    {
        var p = new byte[24];
        BinaryPrimitives.WriteUInt64BigEndian(p, key);
        BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(8), serviceActionKey);
        return p;
    }

    private static async Task<List<ulong>> ReadKeysAsync(RawInitiator c)
    {
        var (status, data) = await RunAsync(c, [0x5e, 0x00, 0, 0, 0, 0, 0, 0x01, 0x00, 0], dataIn: 256);
        Assert.Equal(0, status);
        int length = (int)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(4));
        var keys = new List<ulong>();
        for (int offset = 8; offset < 8 + length; offset += 8)
        {
            keys.Add(BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(offset)));
        }

        return keys;
    }

    private static readonly byte[] s_read10 = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    [Fact]
    public async Task SameInitiatorPortThroughTwoPortalGroups_IsTwoNexuses_ForReservationsAndUnitAttentions()
    {
        const ulong key1 = 0x1111, key2 = 0x2222;
        await using var path1 = await LoginAsync(0);
        // Same InitiatorName and ISID through portal group 2: a second session, not a
        // reinstatement of the first (which must keep working).
        await using var path2 = await LoginAsync(1);
        Assert.Equal(0, (await RunAsync(path1, new byte[6])).Status);

        // Path 1 registers; the key list is the LU's, so path 2 sees it, but path 2 itself is
        // not registered: its RESERVE with path 1's key is a RESERVATION CONFLICT.
        Assert.Equal(0, (await RunAsync(path1, ProutCdb(0x00), dataOut: ProutParameters(0, key1))).Status);
        Assert.Equal([key1], await ReadKeysAsync(path2));
        Assert.Equal(ReservationConflict, (await RunAsync(path2, ProutCdb(0x01, 0x03), dataOut: ProutParameters(key1, 0))).Status);

        // Path 1 takes EXCLUSIVE ACCESS (type 3): it may read, path 2 may not.
        Assert.Equal(0, (await RunAsync(path1, ProutCdb(0x01, 0x03), dataOut: ProutParameters(key1, 0))).Status);
        Assert.Equal(0, (await RunAsync(path1, s_read10, dataIn: 512)).Status);
        Assert.Equal(ReservationConflict, (await RunAsync(path2, s_read10, dataIn: 512)).Status);

        // Path 2 registers its own key and preempts path 1: path 2 now holds the reservation,
        // and path 1 (only path 1) gets UNIT ATTENTION, REGISTRATIONS PREEMPTED (2Ah/05h).
        Assert.Equal(0, (await RunAsync(path2, ProutCdb(0x00), dataOut: ProutParameters(0, key2))).Status);
        Assert.Equal(0, (await RunAsync(path2, ProutCdb(0x04, 0x03), dataOut: ProutParameters(key2, key1))).Status);
        Assert.Equal([key2], await ReadKeysAsync(path2));
        Assert.Equal(0, (await RunAsync(path2, s_read10, dataIn: 512)).Status);

        var (status, sense) = await RunAsync(path1, new byte[6]);
        Assert.Equal(0x02, status);
        Assert.Equal((0x6, 0x2a, 0x05), Sense(sense));
        Assert.Equal(ReservationConflict, (await RunAsync(path1, s_read10, dataIn: 512)).Status);

        // Release from path 2 (CLEAR) and both paths read again.
        Assert.Equal(0, (await RunAsync(path2, ProutCdb(0x03), dataOut: ProutParameters(key2, 0))).Status);
        Assert.Empty(await ReadKeysAsync(path2));
        var afterClear = await RunAsync(path1, s_read10, dataIn: 512);
        if (afterClear.Status == 0x02)
        {
            // CLEAR gives the other registrants' nexuses RESERVATIONS PREEMPTED; path 1 is no
            // longer registered, so a unit attention here is allowed but not required.
            afterClear = await RunAsync(path1, s_read10, dataIn: 512);
        }
        Assert.Equal(0, afterClear.Status);
    }
}
