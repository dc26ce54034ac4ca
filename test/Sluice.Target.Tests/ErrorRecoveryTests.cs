using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

/// <summary>
/// ErrorRecoveryLevel 1 on the target (RFC 7143 §7.1.5, §11.16): SNACKs for R2Ts, Data-In and
/// status are answered from what the target still holds, and recovery R2Ts cover unsolicited
/// data lost to a digest error. Level 0 refuses SNACKs.
/// </summary>
public sealed class ErrorRecoveryTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:erl";
    private const string Initiator = "iqn.2026-11.dev.sluice:erl-client";
    private const int Blocks = 16;
    private const int Length = Blocks * 512;
    private TargetServer _server = null!;
    private string _dir = null!;
    private ulong _isid = 0x400000000200;

    private IPEndPoint Endpoint => _server.LocalEndpoints[0];

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-erl-tests").FullName;
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

    [Fact]
    public async Task TargetMaximumCapsTheLevel()
    {
        await using var c = await LoginAsync(Endpoint, erl: 1);
        Assert.Equal("1", c.NegotiatedErl);
        await using var low = await LoginAsync(Endpoint, erl: 0);
        Assert.Equal("0", low.NegotiatedErl);
    }

    [Fact]
    public async Task R2TSnack_ResendsTheSameR2T_AndTheWriteCompletes()
    {
        await using var c = await LoginAsync(Endpoint, erl: 1);
        var data = Pattern(3);
        uint itt = await c.SendCommandAsync(WriteCdb, Length, read: false, write: true);
        var (r2t, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, r2t.Opcode);

        // Pretend the R2T was lost: ask for R2TSN 0 again.
        await c.SendSnackAsync(0, itt, begRun: r2t.DataSN, runLength: 1);
        var (again, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, again.Opcode);
        Assert.Equal(r2t.TargetTransferTag, again.TargetTransferTag);
        Assert.Equal(r2t.DataSN, again.DataSN);
        Assert.Equal(r2t.BufferOffset, again.BufferOffset);
        Assert.Equal(r2t.ResidualCount, again.ResidualCount);

        await c.SendDataOutAsync(itt, again.TargetTransferTag, 0, 0, data, final: true);
        var (status, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);
        Assert.Equal(0, status[3]);
        c.Acknowledge(status);
        Assert.Equal(data, await ReadAsync(c));
    }

    [Fact]
    public async Task R2TSnack_AfterPartOfTheBurst_RestartsTheBurst()
    {
        await using var c = await LoginAsync(Endpoint, erl: 1);
        var stale = Pattern(40);
        var data = Pattern(41);
        uint itt = await c.SendCommandAsync(WriteCdb, Length, read: false, write: true);
        var (r2t, _) = await c.ReceiveAsync();
        await c.SendDataOutAsync(itt, r2t.TargetTransferTag, 0, 0, stale.AsMemory(0, 1024), final: false);
        await c.SendSnackAsync(0, itt, begRun: 0, runLength: 0);
        var (again, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, again.Opcode);
        Assert.Equal(0u, again.BufferOffset);
        Assert.Equal((uint)Length, again.ResidualCount);

        // The burst is answered from its first byte with DataSN 0 again.
        await c.SendDataOutAsync(itt, again.TargetTransferTag, 0, 0, data.AsMemory(0, 4096), final: false);
        await c.SendDataOutAsync(itt, again.TargetTransferTag, 1, 4096, data.AsMemory(4096), final: true);
        var (status, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);
        Assert.Equal(0, status[3]);
        c.Acknowledge(status);
        Assert.Equal(data, await ReadAsync(c));
    }

    [Fact]
    public async Task R2TSnack_ForAnR2TNeverSent_IsRejected_AndEndsTheCommand()
    {
        await using var c = await LoginAsync(Endpoint, erl: 1);
        uint itt = await c.SendCommandAsync(WriteCdb, Length, read: false, write: true);
        var (r2t, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, r2t.Opcode);
        await c.SendSnackAsync(0, itt, begRun: 5, runLength: 1);
        var (reject, body) = await c.ReceiveAsync();
        Assert.Equal(Opcode.Reject, reject.Opcode);
        Assert.Equal(RejectReason.SnackReject, reject[2]);
        Assert.Equal(Opcode.SnackRequest, Bhs.Read(body).Opcode);
        var (status, sense) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);
        Assert.Equal(0x02, status[3]);
        Assert.Equal(0x11, sense[2 + 12]); // SNACK REJECTED (§11.4.7.2)
        Assert.Equal(0x13, sense[2 + 13]);
    }

    [Fact]
    public async Task StatusSnack_ResendsTheUnacknowledgedStatus_UntilExpStatSNPassesIt()
    {
        await using var c = await LoginAsync(Endpoint, erl: 1);
        uint itt = await c.SendCommandAsync(new byte[6], 0, read: false); // TEST UNIT READY
        var (status, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);

        // Not acknowledged yet (our ExpStatSN is still the response's StatSN): it comes again.
        await c.SendSnackAsync(1, 0xffffffff, begRun: status.StatSN, runLength: 1);
        var (again, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, again.Opcode);
        Assert.Equal(status.StatSN, again.StatSN);
        Assert.Equal(itt, again.InitiatorTaskTag);
        Assert.Equal(status[3], again[3]);

        // Once acknowledged, the target no longer holds it.
        c.Acknowledge(status);
        await c.SendNopOutAsync(0xffffffff, 0xffffffff);
        await c.SendSnackAsync(1, 0xffffffff, begRun: status.StatSN, runLength: 1);
        var (reject, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.Reject, reject.Opcode);
        Assert.Equal(RejectReason.SnackReject, reject[2]);
    }

    [Fact]
    public async Task DataSnack_ForTheWholeRead_ResendsEveryDataIn_UntilTheStatusIsAcknowledged()
    {
        await using var c = await LoginAsync(Endpoint, erl: 1, maxRecv: 2048);
        var data = Pattern(9);
        await WriteAsync(c, data);
        uint itt = await c.SendCommandAsync(ReadCdb, Length, read: true);
        for (uint sn = 0; sn < 4; sn++)
        {
            var (d, _) = await c.ReceiveAsync();
            Assert.Equal(Opcode.DataIn, d.Opcode);
            Assert.Equal(0, d.Flags & 0x01); // level 1: never the status in a Data-In
        }

        var (status, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);
        Assert.Equal(4u, status.DataSN);
        await c.SendSnackAsync(0, itt, begRun: 0, runLength: 0);
        var result = new byte[Length];
        for (uint sn = 0; sn < 4; sn++)
        {
            var (d, body) = await c.ReceiveAsync();
            Assert.Equal(Opcode.DataIn, d.Opcode);
            Assert.Equal(sn, d.DataSN);
            body.CopyTo(result, (int)d.BufferOffset);
        }

        Assert.Equal(data, result);

        // After the acknowledgement the buffer is gone: a Data SNACK is rejected.
        c.Acknowledge(status);
        await c.SendNopOutAsync(0xffffffff, 0xffffffff);
        await c.SendSnackAsync(0, itt, begRun: 0, runLength: 1);
        var (reject, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.Reject, reject.Opcode);
        Assert.Equal(RejectReason.SnackReject, reject[2]);
    }

    [Fact]
    public async Task UnsolicitedDataOutLostToADigestError_IsAskedForWithARecoveryR2T()
    {
        await using var proxy = new CorruptingProxy(Endpoint);
        await using var c = await LoginAsync(proxy.Endpoint, erl: 1);
        var data = Pattern(21);

        // 2 KiB immediate, then two unsolicited Data-Out of 2 KiB (the first corrupted), then
        // the rest by R2T.
        long start = proxy.UpstreamBytes;
        const int commandPdu = 48 + 4 + 2048 + 4;
        proxy.CorruptUpstreamAt(start + commandPdu + 52 + 100);
        uint itt = await c.SendCommandAsync(WriteCdb, Length, read: false, write: true, immediate: data[..2048], final: false);
        await c.SendDataOutAsync(itt, 0xffffffff, 0, 2048, data.AsMemory(2048, 2048), final: false);
        await c.SendDataOutAsync(itt, 0xffffffff, 1, 4096, data.AsMemory(4096, 2048), final: true);
        var (reject, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.Reject, reject.Opcode);
        Assert.Equal(RejectReason.DataDigestError, reject[2]);

        // MaxOutstandingR2T is 1: first the lost range, then the rest.
        var (recovery, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, recovery.Opcode);
        Assert.Equal(2048u, recovery.BufferOffset);
        Assert.Equal(2048u, recovery.ResidualCount);
        Assert.Equal(0u, recovery.DataSN);
        await c.SendDataOutAsync(itt, recovery.TargetTransferTag, 0, 2048, data.AsMemory(2048, 2048), final: true);
        var (rest, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, rest.Opcode);
        Assert.Equal(6144u, rest.BufferOffset);
        Assert.Equal(2048u, rest.ResidualCount);
        Assert.Equal(1u, rest.DataSN);
        await c.SendDataOutAsync(itt, rest.TargetTransferTag, 0, 6144, data.AsMemory(6144), final: true);
        var (status, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, status.Opcode);
        Assert.Equal(0, status[3]);
        c.Acknowledge(status);
        Assert.Equal(data, await ReadAsync(c));
    }

    [Fact]
    public async Task Snack_AtLevelZero_IsRejectedAsAProtocolError()
    {
        await using var c = await LoginAsync(Endpoint, erl: 0);
        await c.SendSnackAsync(1, 0xffffffff, begRun: 0, runLength: 0);
        var (reject, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.Reject, reject.Opcode);
        Assert.Equal(RejectReason.ProtocolError, reject[2]);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(9)]
    public async Task DataAckRDataAndUnknownSnacks_AreRejected(byte type)
    {
        await using var c = await LoginAsync(Endpoint, erl: 1);
        await c.SendSnackAsync(type, 0x77, begRun: 0, runLength: 0);
        var (reject, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.Reject, reject.Opcode);
        Assert.Equal(RejectReason.SnackReject, reject[2]);
    }

    private static readonly byte[] WriteCdb = [0x2a, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];
    private static readonly byte[] ReadCdb = [0x28, 0, 0, 0, 0, 0, 0, 0, Blocks, 0];

    private static byte[] Pattern(byte seed)
    {
        var data = new byte[Length];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(seed + (i * 13));
        }

        return data;
    }

    private async Task<RawInitiator> LoginAsync(IPEndPoint endpoint, int erl, int maxRecv = 262144)
    {
        var c = await RawInitiator.ConnectAsync(endpoint);
        c.Isid = _isid++;
        c.Digests = true;
        c.ErrorRecoveryLevel = erl;
        c.MaxRecvDataSegmentLength = maxRecv;
        var (cls, _, _) = await c.LoginAsync(Initiator, Target);
        Assert.Equal(0, cls);
        for (int i = 0; i < 4; i++)
        {
            await c.SendCommandAsync(new byte[6], 0, read: false);
            var (h, _) = await c.ReceiveAsync();
            c.Acknowledge(h);
            if (h.Opcode == Opcode.ScsiResponse && h[3] == 0)
            {
                return c;
            }
        }

        throw new InvalidOperationException("unit attention never cleared");
    }

    private static async Task WriteAsync(RawInitiator c, byte[] data)
    {
        uint itt = await c.SendCommandAsync(WriteCdb, data.Length, read: false, write: true);
        var (r2t, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ReadyToTransfer, r2t.Opcode);
        await c.SendDataOutAsync(itt, r2t.TargetTransferTag, 0, 0, data, final: true);
        var (h, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.ScsiResponse, h.Opcode);
        Assert.Equal(0, h[3]);
        c.Acknowledge(h);
    }

    private static async Task<byte[]> ReadAsync(RawInitiator c)
    {
        await c.SendCommandAsync(ReadCdb, Length, read: true);
        var result = new byte[Length];
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

            Assert.Equal(0, h[3]);
            c.Acknowledge(h);
            return result;
        }
    }
}
