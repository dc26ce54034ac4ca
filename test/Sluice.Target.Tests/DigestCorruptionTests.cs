using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Offload;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

/// <summary>
/// Issue 4: with HeaderDigest and DataDigest = CRC32C, a byte corrupted on the wire never
/// reaches the back end or the caller (RFC 7143 §7.8), at ErrorRecoveryLevel 0 and 1. A
/// <see cref="CorruptingProxy"/> flips one byte of a header, a header digest, a data segment
/// or a data digest of a Data-Out, a Data-In or a SCSI Command with immediate data; afterwards
/// the back end (read over a clean connection) must hold exactly what the target acknowledged.
/// </summary>
public sealed class DigestCorruptionTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:digest";
    private const string Initiator = "iqn.2026-11.dev.sluice:digest-client";
    private const int Blocks = 16;
    private const int Half = Blocks * 512 / 2;

    /// <summary>One data PDU on the wire: BHS, header digest, data, data digest.</summary>
    private const int PduBytes = 48 + 4 + Half + 4;

    private const byte CheckCondition = 0x02;
    private TargetServer _server = null!;
    private string _dir = null!;
    private ulong _isid = 0x400000000100;

    private IPEndPoint Endpoint => _server.LocalEndpoints[0];

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-digest-tests").FullName;
        var config = new ServerConfig
        {
            DataDir = _dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets = [new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "memory:4MiB" }] }],
            Limits = new LimitsConfig { MaxErrorRecoveryLevel = 1 },
        };
        _server = new TargetServer(config, NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    public static TheoryData<int, string, string> Cases()
    {
        var data = new TheoryData<int, string, string>();
        foreach (int erl in new[] { 0, 1 })
        {
            foreach (string direction in new[] { "data-out", "data-in", "immediate" })
            {
                foreach (string position in new[] { "header", "header-digest", "data", "data-digest" })
                {
                    data.Add(erl, direction, position);
                }
            }
        }

        return data;
    }

    /// <summary>Where the flipped byte lies inside a PDU that starts at 0.</summary>
    private static int OffsetIn(string position) => position switch
    {
        "header" => 17,                    // inside the Initiator Task Tag
        "header-digest" => 49,
        "data" => 52 + 1000,
        "data-digest" => 52 + Half + 2,
        _ => throw new ArgumentOutOfRangeException(nameof(position)),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Corruption_NeverReachesTheBackEndOrTheCaller(int erl, string direction, string position)
    {
        var clean = Pattern(1);
        var dirty = Pattern(77);
        await using (var direct = await LoginAsync(Endpoint, erl))
        {
            Assert.Equal(0, (await WriteAsync(direct, clean)).Status[3]);
        }

        bool header = position.StartsWith("header", StringComparison.Ordinal);
        var before = _server.DigestErrors();
        bool acknowledged;
        await using (var proxy = new CorruptingProxy(Endpoint))
        await using (var c = await LoginAsync(proxy.Endpoint, erl))
        {
            Assert.Equal(erl.ToString(System.Globalization.CultureInfo.InvariantCulture), c.NegotiatedErl);
            acknowledged = direction switch
            {
                "data-out" => await CorruptDataOutAsync(c, proxy, erl, position, dirty),
                "immediate" => await CorruptImmediateAsync(c, proxy, erl, position, dirty),
                _ => await CorruptDataInAsync(c, proxy, erl, position, clean),
            };
        }

        // The target counted what it detected (the initiator detects Data-In errors itself).
        if (direction != "data-in")
        {
            var after = await WaitForCountAsync(before, header);
            Assert.Equal(header ? 1 : 0, after.Header - before.Header);
            Assert.Equal(header ? 0 : 1, after.Data - before.Data);
        }

        await using var check = await LoginAsync(Endpoint, 0);
        var (status, contents) = await ReadAsync(check);
        Assert.Equal(0, status[3]);
        Assert.Equal(acknowledged ? dirty : clean, contents);
    }

    /// <summary>WRITE(10) of 8 KiB as two solicited Data-Out PDUs; the first is corrupted. Returns whether the write was acknowledged GOOD.</summary>
    private static async Task<bool> CorruptDataOutAsync(RawInitiator c, CorruptingProxy proxy, int erl, string position, byte[] data)
    {
        uint itt = await c.SendCommandAsync(WriteCdb, data.Length, read: false, write: true);
        var (r2t, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, r2t.Opcode);
        Assert.Equal(0u, r2t.DataSN); // R2TSN
        proxy.CorruptUpstreamAt(proxy.UpstreamBytes + OffsetIn(position));
        await c.SendDataOutAsync(itt, r2t.TargetTransferTag, 0, 0, data.AsMemory(0, Half), final: false);
        if (position.StartsWith("header", StringComparison.Ordinal))
        {
            // §7.8: after a header digest error the stream cannot be trusted; the target drops it.
            await AssertDroppedAsync(c);
            return false;
        }

        await c.SendDataOutAsync(itt, r2t.TargetTransferTag, 1, Half, data.AsMemory(Half, Half), final: true);
        await ExpectDigestRejectAsync(c, Opcode.DataOut, itt);
        if (erl == 0)
        {
            // §7.8 b: the command ends with PROTOCOL SERVICE CRC ERROR once its data is in, and the
            // connection goes on.
            var (status, sense) = await c.ReceiveAsync();
            Assert.Equal(Opcode.ScsiResponse, status.Opcode);
            AssertCrcError(status, sense);
            var (readStatus, _) = await ReadAsync(c);
            Assert.Equal(0, readStatus[3]);
            return false;
        }

        // §7.8 a: a recovery R2T for exactly the discarded range, with the next R2TSN.
        var (recovery, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, recovery.Opcode);
        Assert.Equal(itt, recovery.InitiatorTaskTag);
        Assert.Equal(1u, recovery.DataSN);
        Assert.Equal(0u, recovery.BufferOffset);
        Assert.Equal((uint)Half, recovery.ResidualCount);
        Assert.NotEqual(r2t.TargetTransferTag, recovery.TargetTransferTag);
        await c.SendDataOutAsync(itt, recovery.TargetTransferTag, 0, 0, data.AsMemory(0, Half), final: true);
        var (good, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, good.Opcode);
        Assert.Equal(0, good[3]);
        return true;
    }

    /// <summary>WRITE(10) of 8 KiB as immediate data in the SCSI Command PDU, which is corrupted.</summary>
    private static async Task<bool> CorruptImmediateAsync(RawInitiator c, CorruptingProxy proxy, int erl, string position, byte[] data)
    {
        uint itt = 0x1000;
        uint cmdSN = c.CmdSN;
        int at = position switch
        {
            "data" => 52 + 5000,
            "data-digest" => 52 + data.Length + 1,
            _ => OffsetIn(position),
        };
        proxy.CorruptUpstreamAt(proxy.UpstreamBytes + at);
        await c.SendCommandAsAsync(itt, cmdSN, WriteCdb, data.Length, read: false, write: true, immediate: data);
        if (position.StartsWith("header", StringComparison.Ordinal))
        {
            await AssertDroppedAsync(c);
            return false;
        }

        await ExpectDigestRejectAsync(c, Opcode.ScsiCommand, itt);
        if (erl == 0)
        {
            // The command was never received; at level 0 nothing can plug its CmdSN, so the
            // target ends the connection (session recovery).
            await AssertDroppedAsync(c);
            return false;
        }

        // §7.2.1: the initiator retries the command with the same ITT and CmdSN.
        await c.SendCommandAsAsync(itt, cmdSN, WriteCdb, data.Length, read: false, write: true, immediate: data);
        var (good, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, good.Opcode);
        Assert.Equal(itt, good.InitiatorTaskTag);
        Assert.Equal(0, good[3]);
        return true;
    }

    /// <summary>READ(10) of 8 KiB in two Data-In PDUs; the second is corrupted on its way to the initiator.</summary>
    private static async Task<bool> CorruptDataInAsync(RawInitiator c, CorruptingProxy proxy, int erl, string position, byte[] expected)
    {
        proxy.CorruptDownstreamAt(proxy.DownstreamBytes + PduBytes + OffsetIn(position));
        uint itt = await c.SendCommandAsync(ReadCdb, Blocks * 512, read: true);
        var result = new byte[Blocks * 512];
        var first = await c.ReceiveAsync();
        Assert.Equal(Opcode.DataIn, first.Header.Opcode);
        Assert.Equal(0u, first.Header.DataSN);
        first.Data.CopyTo(result, 0);
        if (position.StartsWith("header", StringComparison.Ordinal))
        {
            var ex = await Assert.ThrowsAsync<IscsiProtocolException>(async () => await c.ReceiveAsync());
            Assert.Contains("header digest", ex.Message, StringComparison.Ordinal);
            Assert.Equal(1, c.Transport.Counters.HeaderDigestErrors);
            return false;
        }

        // The payload is garbage: the receiver throws instead of handing it over.
        await Assert.ThrowsAsync<DataDigestException>(async () => await c.ReceiveAsync());
        Assert.Equal(1, c.Transport.Counters.DataDigestErrors);
        var lost = c.Transport.Header;
        Assert.Equal(1u, lost.DataSN);
        if (erl == 0)
        {
            return false; // the caller gets an error, never the bytes
        }

        // Level 1: the status comes on its own (never folded into the lost Data-In), and a Data
        // SNACK gets the lost PDU again, as first sent.
        var (status, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);
        Assert.Equal(0, status[3]);
        Assert.Equal(2u, status.DataSN); // ExpDataSN
        await c.SendSnackAsync(0, itt, begRun: lost.DataSN, runLength: 1);
        var (again, data) = await c.ReceiveAsync();
        Assert.Equal(Opcode.DataIn, again.Opcode);
        Assert.Equal(1u, again.DataSN);
        Assert.Equal((uint)Half, again.BufferOffset);
        data.CopyTo(result, Half);
        Assert.Equal(expected, result);
        c.Acknowledge(status);
        return false;
    }

    private async Task<(long Header, long Data)> WaitForCountAsync((long Header, long Data) before, bool header)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (true)
        {
            var now = _server.DigestErrors();
            if ((header ? now.Header : now.Data) > (header ? before.Header : before.Data) || DateTime.UtcNow > deadline)
            {
                return now;
            }

            await Task.Delay(20);
        }
    }

    private static async Task ExpectDigestRejectAsync(RawInitiator c, Opcode rejected, uint itt)
    {
        var (h, body) = await c.ReceiveAsync();
        Assert.Equal(Opcode.Reject, h.Opcode);
        Assert.Equal(RejectReason.DataDigestError, h[2]);
        var header = Bhs.Read(body);
        Assert.Equal(rejected, header.Opcode);
        Assert.Equal(itt, header.InitiatorTaskTag);
    }

    /// <summary>The target closed the connection (not merely stayed silent).</summary>
    private static async Task AssertDroppedAsync(RawInitiator c)
    {
        var ex = await Assert.ThrowsAnyAsync<Exception>(async () => await c.ReceiveAsync(TimeSpan.FromSeconds(5)));
        Assert.True(ex is EndOfStreamException or IscsiProtocolException or System.Net.Sockets.SocketException or IOException, ex.ToString());
    }

    private static void AssertCrcError(in Bhs status, byte[] sense)
    {
        Assert.Equal(CheckCondition, status[3]);
        Assert.Equal(0x0b, sense[2 + 2] & 0x0f);   // ABORTED COMMAND
        Assert.Equal(0x47, sense[2 + 12]);          // PROTOCOL SERVICE CRC ERROR
        Assert.Equal(0x05, sense[2 + 13]);
    }

    private static readonly byte[] WriteCdb = [0x2a, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];
    private static readonly byte[] ReadCdb = [0x28, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];

    private static byte[] Pattern(byte seed)
    {
        var data = new byte[Blocks * 512];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(seed + (i * 7));
        }

        return data;
    }

    private async Task<RawInitiator> LoginAsync(IPEndPoint endpoint, int erl)
    {
        var c = await RawInitiator.ConnectAsync(endpoint);
        c.Isid = _isid++;
        c.Digests = true;
        c.ErrorRecoveryLevel = erl;
        c.MaxRecvDataSegmentLength = Half;
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
            c.Acknowledge(h);
            if (h.Opcode == Opcode.ScsiResponse && h[3] == 0)
            {
                return;
            }
        }

        Assert.Fail("unit attention never cleared");
    }

    /// <summary>WRITE(10) of the test blocks at LBA 0 in one solicited Data-Out.</summary>
    private static async Task<(Bhs Status, byte[] Sense)> WriteAsync(RawInitiator c, byte[] data)
    {
        uint itt = await c.SendCommandAsync(WriteCdb, data.Length, read: false, write: true);
        var (r2t, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, r2t.Opcode);
        await c.SendDataOutAsync(itt, r2t.TargetTransferTag, 0, 0, data, final: true);
        var (h, body) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, h.Opcode);
        c.Acknowledge(h);
        return (h, body);
    }

    /// <summary>READ(10) of the test blocks; returns the status and the data.</summary>
    private static async Task<(Bhs Status, byte[] Data)> ReadAsync(RawInitiator c)
    {
        await c.SendCommandAsync(ReadCdb, Blocks * 512, read: true);
        var result = new byte[Blocks * 512];
        while (true)
        {
            var (h, data) = await c.ReceiveAsync();
            if (h.Opcode == Opcode.DataIn)
            {
                data.CopyTo(result, (int)h.BufferOffset);
                if ((h.Flags & 0x01) == 0)
                {
                    continue;
                }
            }

            Assert.True(h.Opcode is Opcode.DataIn or Opcode.ScsiResponse, h.Opcode.ToString());
            c.Acknowledge(h);
            return (h, result);
        }
    }
}
