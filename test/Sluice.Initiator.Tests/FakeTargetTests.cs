using System.Buffers.Binary;
using System.Text;
using Sluice.Iscsi.Pdu;

namespace Sluice.Initiator.Tests;

/// <summary>Protocol edge cases against a scripted fake target.</summary>
public sealed class FakeTargetTests
{
    private static readonly IscsiClientOptions Quiet = new()
    {
        NopInterval = TimeSpan.Zero,
        ReconnectDelay = TimeSpan.FromMilliseconds(20),
        LoginTimeout = TimeSpan.FromSeconds(5),
    };

    private static readonly byte[] Tur = new byte[6];

    private static byte[] Read10(uint lba, ushort blocks)
    {
        var cdb = new byte[10];
        cdb[0] = 0x28;
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(7), blocks);
        return cdb;
    }

    private static byte[] Write10(uint lba, ushort blocks)
    {
        var cdb = Read10(lba, blocks);
        cdb[0] = 0x2A;
        return cdb;
    }

    private static async Task<IscsiSession> ConnectAsync(FakeTarget target, IscsiClientOptions? options = null) =>
        await IscsiSession.ConnectAsync(target.Url, options ?? Quiet).WaitAsync(TimeSpan.FromSeconds(10));

    private static void AssertNoErrors(FakeTarget target)
    {
        Assert.True(target.Errors.Count == 0, string.Join("\n", target.Errors));
    }

    [Fact]
    public async Task WindowClosed_CommandsWaitUntilMaxCmdSNOpens()
    {
        var released = new List<uint>();
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            var (first, _) = await conn.ReceiveCommandAsync();
            for (int i = 0; i < 3; i++)
            {
                // The window holds exactly one command: the next must not arrive until we raise MaxCmdSN.
                var next = i < 2 ? conn.ReceiveCommandAsync() : null;
                if (next is not null)
                {
                    await Task.Delay(300);
                    Assert.False(next.IsCompleted, "a command was sent outside the CmdSN window");
                }

                conn.MaxCmdSN++;
                released.Add(first.CmdSN);
                await conn.SendStatusAsync(first.InitiatorTaskTag, 0);
                if (next is not null)
                {
                    var (h, _) = await next;
                    Assert.Equal(first.CmdSN + 1, h.CmdSN);
                    first = h;
                }
            }
        }, window: 1);

        await using var session = await ConnectAsync(target);
        var results = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => session.ExecuteAsync(0, Tur).AsTask()));
        Assert.All(results, r => Assert.True(r.IsGood));
        Assert.Equal(3, released.Count);
        AssertNoErrors(target);
    }

    [Fact]
    public async Task Write_InitialR2T_BurstsHonourMaxBurstAndTargetSegmentLength()
    {
        var received = new byte[65536];
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            var (cmd, immediate) = await conn.ReceiveCommandAsync();
            Assert.Empty(immediate);
            Assert.True(cmd.Final);
            Assert.Equal(65536u, cmd.ExpectedDataTransferLength);
            uint r2tsn = 0;
            for (int offset = 0; offset < 65536; offset += 16384)
            {
                uint ttt = 0x100 + r2tsn;
                await conn.SendR2TAsync(cmd.InitiatorTaskTag, ttt, offset, 16384, r2tsn++);
                uint dataSN = 0;
                int at = offset;
                while (true)
                {
                    var (d, data) = await conn.ReceiveCommandAsync();
                    Assert.Equal(Opcode.DataOut, d.Opcode);
                    Assert.Equal(ttt, d.TargetTransferTag);
                    Assert.Equal(dataSN++, d.DataSN);
                    Assert.Equal((uint)at, d.BufferOffset);
                    Assert.True(data.Length <= 8192);
                    data.CopyTo(received, at);
                    at += data.Length;
                    if (d.Final)
                    {
                        break;
                    }
                }

                Assert.Equal(offset + 16384, at);
            }

            await conn.SendStatusAsync(cmd.InitiatorTaskTag, 0);
        }, keys =>
        {
            keys["InitialR2T"] = "Yes";
            keys["ImmediateData"] = "No";
            keys["MaxRecvDataSegmentLength"] = "8192";
            keys["MaxBurstLength"] = "16384";
            keys["FirstBurstLength"] = "8192";
        });

        await using var session = await ConnectAsync(target);
        Assert.True(session.Parameters.InitialR2T);
        Assert.False(session.Parameters.ImmediateData);
        var data = new byte[65536];
        new Random(1).NextBytes(data);
        var r = await session.ExecuteAsync(0, Write10(0, 128), data, default);
        Assert.True(r.IsGood);
        Assert.True(data.AsSpan().SequenceEqual(received));
        AssertNoErrors(target);
    }

    [Fact]
    public async Task Write_ImmediateAndUnsolicitedData_UpToFirstBurst_ThenR2T()
    {
        var received = new byte[65536];
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            var (cmd, immediate) = await conn.ReceiveCommandAsync();
            Assert.Equal(8192, immediate.Length); // min(FirstBurstLength, target MaxRecvDataSegmentLength)
            Assert.False(cmd.Final); // unsolicited Data-Out follows
            immediate.CopyTo(received, 0);
            int at = 8192;
            uint dataSN = 0;
            while (true)
            {
                var (d, data) = await conn.ReceiveCommandAsync();
                Assert.Equal(0xFFFFFFFFu, d.TargetTransferTag);
                Assert.Equal(dataSN++, d.DataSN);
                Assert.Equal((uint)at, d.BufferOffset);
                data.CopyTo(received, at);
                at += data.Length;
                if (d.Final)
                {
                    break;
                }
            }

            Assert.Equal(24576, at); // FirstBurstLength
            await conn.SendR2TAsync(cmd.InitiatorTaskTag, 9, at, 65536 - at, 0);
            while (at < 65536)
            {
                var (d, data) = await conn.ReceiveCommandAsync();
                Assert.Equal(9u, d.TargetTransferTag);
                data.CopyTo(received, (int)d.BufferOffset);
                at += data.Length;
                Assert.Equal(at == 65536, d.Final);
            }

            await conn.SendStatusAsync(cmd.InitiatorTaskTag, 0);
        }, keys =>
        {
            keys["InitialR2T"] = "No";
            keys["ImmediateData"] = "Yes";
            keys["MaxRecvDataSegmentLength"] = "8192";
            keys["FirstBurstLength"] = "24576";
        });

        await using var session = await ConnectAsync(target);
        var data = new byte[65536];
        new Random(2).NextBytes(data);
        Assert.True((await session.ExecuteAsync(0, Write10(0, 128), data, default)).IsGood);
        Assert.True(data.AsSpan().SequenceEqual(received));
        AssertNoErrors(target);
    }

    [Fact]
    public async Task DataIn_SplitAcrossPdus_StatusInLastPdu_PlacesEveryByte()
    {
        var payload = new byte[10240];
        new Random(3).NextBytes(payload);
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            for (int round = 0; round < 2; round++)
            {
                var (cmd, _) = await conn.ReceiveCommandAsync();
                await conn.SendDataInAsync(cmd.InitiatorTaskTag, 0, payload.AsMemory(0, 3001), 0, false);
                await conn.SendDataInAsync(cmd.InitiatorTaskTag, 3001, payload.AsMemory(3001, 4000), 1, false);
                await conn.SendDataInAsync(cmd.InitiatorTaskTag, 7001, payload.AsMemory(7001), 2, true);
            }
        });

        await using var session = await ConnectAsync(target);
        var buffer = new byte[10240];
        var r = await session.ExecuteAsync(0, Read10(0, 20), default, buffer);
        Assert.True(r.IsGood);
        Assert.True(payload.AsSpan().SequenceEqual(buffer));

        // The same into a scatter-gather list whose pieces do not line up with the PDUs.
        var a = new byte[1];
        var b = new byte[4095];
        var c = new byte[6144];
        r = await session.ExecuteReadAsync(0, Read10(0, 20), new Memory<byte>[] { a, b, c });
        Assert.True(r.IsGood);
        Assert.True(payload.AsSpan().SequenceEqual(a.Concat(b).Concat(c).ToArray()));
        AssertNoErrors(target);
    }

    [Fact]
    public async Task ScsiResponse_UnderflowResidual_IsReported()
    {
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            var (cmd, _) = await conn.ReceiveCommandAsync();
            await conn.SendDataInAsync(cmd.InitiatorTaskTag, 0, new byte[36], 0, false);
            await conn.SendStatusAsync(cmd.InitiatorTaskTag, 0, residual: 219, underflow: true);
        });

        await using var session = await ConnectAsync(target);
        var r = await session.ExecuteAsync(0, [0x12, 0, 0, 0, 255, 0], default, new byte[255]);
        Assert.True(r.IsGood);
        Assert.True(r.Underflow);
        Assert.Equal(219, r.ResidualCount);
        AssertNoErrors(target);
    }

    [Fact]
    public async Task ScsiResponse_WithSense_BecomesExceptionWithDecodedFields()
    {
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            var (cmd, _) = await conn.ReceiveCommandAsync();
            await conn.SendStatusAsync(cmd.InitiatorTaskTag, ScsiStatus.CheckCondition, FakeConnection.FixedSense(SenseKey.IllegalRequest, 0x24, 0x00));
            (cmd, _) = await conn.ReceiveCommandAsync();
            await conn.SendStatusAsync(cmd.InitiatorTaskTag, ScsiStatus.CheckCondition, [0x72, 0x03, 0x11, 0x00, 0, 0, 0, 0]);
        });

        await using var session = await ConnectAsync(target);
        var r = await session.ExecuteAsync(0, Read10(0, 1), default, new byte[512]);
        var e = Assert.Throws<ScsiCommandException>(() => r.ThrowIfError(0x28));
        Assert.Equal(ScsiStatus.CheckCondition, e.Status);
        Assert.Equal(SenseKey.IllegalRequest, e.SenseKey);
        Assert.Equal(0x24, e.Asc);
        Assert.Equal(0x00, e.Ascq);
        Assert.Equal("invalid field in CDB", e.Description);
        Assert.Contains("ILLEGAL REQUEST", e.Message, StringComparison.Ordinal);

        r = await session.ExecuteAsync(0, Read10(0, 1), default, new byte[512]);
        e = Assert.Throws<ScsiCommandException>(() => r.ThrowIfError(0x28));
        Assert.Equal(SenseKey.MediumError, e.SenseKey);
        Assert.Equal("unrecovered read error", e.Description);
        AssertNoErrors(target);
    }

    /// <summary>Answers READ CAPACITY(10)/(16) and INQUIRY B0 the way IscsiLun.OpenAsync asks them.</summary>
    private static async Task AnswerOpenAsync(FakeConnection conn, bool unitAttentionFirst)
    {
        bool ua = unitAttentionFirst;
        for (int answered = 0; answered < 3;)
        {
            var (cmd, _) = await conn.ReceiveCommandAsync();
            if (ua)
            {
                ua = false;
                await conn.SendStatusAsync(cmd.InitiatorTaskTag, ScsiStatus.CheckCondition, FakeConnection.FixedSense(SenseKey.UnitAttention, 0x29, 0));
                continue;
            }

            answered++;
            switch (cmd.Cdb[0])
            {
                case 0x25:
                    var cap10 = new byte[8];
                    BinaryPrimitives.WriteUInt32BigEndian(cap10, 2047);
                    BinaryPrimitives.WriteUInt32BigEndian(cap10.AsSpan(4), 512);
                    await conn.SendDataInAsync(cmd.InitiatorTaskTag, 0, cap10, 0, true);
                    break;
                case 0x9E:
                    var cap16 = new byte[32];
                    BinaryPrimitives.WriteUInt64BigEndian(cap16, 2047);
                    BinaryPrimitives.WriteUInt32BigEndian(cap16.AsSpan(8), 512);
                    await conn.SendDataInAsync(cmd.InitiatorTaskTag, 0, cap16, 0, true);
                    break;
                default:
                    await conn.SendStatusAsync(cmd.InitiatorTaskTag, ScsiStatus.CheckCondition, FakeConnection.FixedSense(SenseKey.IllegalRequest, 0x24, 0));
                    break;
            }
        }
    }

    [Fact]
    public async Task UnitAttention_OnFirstCommand_IsRetried()
    {
        await using var target = new FakeTarget((conn, _) => AnswerOpenAsync(conn, unitAttentionFirst: true));
        await using var lun = await IscsiLun.OpenAsync(target.Url, Quiet);
        Assert.Equal(2048, lun.BlockCount);
        Assert.Equal(512, lun.BlockSize);
        AssertNoErrors(target);
    }

    [Fact]
    public async Task ConnectionCut_Reconnects_ReplaysOnlyCommandsWithoutStatus()
    {
        var payload = new byte[512];
        payload.AsSpan().Fill(0x5A);
        var secondConnectionOpcodes = new List<byte>();
        await using var target = new FakeTarget(async (conn, index) =>
        {
            if (index == 0)
            {
                var (write, _) = await conn.ReceiveCommandAsync();
                Assert.Equal(0x2A, write.Cdb[0]);
                await conn.SendStatusAsync(write.InitiatorTaskTag, 0);
                var (read, _) = await conn.ReceiveCommandAsync();
                Assert.Equal(0x28, read.Cdb[0]);
                return; // cut the connection with the READ outstanding
            }

            var (h, _) = await conn.ReceiveCommandAsync();
            secondConnectionOpcodes.Add(h.Cdb[0]);
            await conn.SendDataInAsync(h.InitiatorTaskTag, 0, payload, 0, true);
            try
            {
                while (true)
                {
                    var (more, _) = await conn.ReceiveCommandAsync();
                    if (more.Opcode == Opcode.LogoutRequest)
                    {
                        await conn.Transport.SendAsync(conn.Response(Opcode.LogoutResponse, more.InitiatorTaskTag), ReadOnlyMemory<byte>.Empty);
                        return;
                    }

                    secondConnectionOpcodes.Add(more.Cdb[0]);
                }
            }
            catch (Exception e) when (e is EndOfStreamException or Sluice.Offload.IscsiProtocolException or IOException)
            {
            }
        });

        var session = await ConnectAsync(target);
        Assert.True((await session.ExecuteAsync(0, Write10(0, 1), payload, default)).IsGood);
        var buffer = new byte[512];
        var r = await session.ExecuteAsync(0, Read10(0, 1), default, buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(r.IsGood);
        Assert.Equal(payload, buffer);
        Assert.Equal(1, session.Reconnects);
        await session.DisposeAsync();
        Assert.Equal(new List<byte> { 0x28 }, secondConnectionOpcodes);
        Assert.Equal(2, target.Logins.Count);
        Assert.Equal(target.Logins[0].Isid, target.Logins[1].Isid);
        Assert.Equal((ushort)0, target.Logins[1].Tsih);
        AssertNoErrors(target);
    }

    [Fact]
    public async Task TargetNopIn_IsAnsweredWithEchoedTagAndData()
    {
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            var nop = conn.Response(Opcode.NopIn, 0xFFFFFFFF, statSN: false);
            nop.TargetTransferTag = 0x77;
            nop.Lun = 0x0001000000000000;
            await conn.Transport.SendAsync(nop, "ping"u8.ToArray());
            var (reply, data) = await conn.ReceiveAsync();
            Assert.Equal(Opcode.NopOut, reply.Opcode);
            Assert.Equal(0xFFFFFFFFu, reply.InitiatorTaskTag);
            Assert.Equal(0x77u, reply.TargetTransferTag);
            Assert.Equal(0x0001000000000000UL, reply.Lun);
            Assert.Equal("ping", Encoding.ASCII.GetString(data));
            var (cmd, _) = await conn.ReceiveCommandAsync();
            await conn.SendStatusAsync(cmd.InitiatorTaskTag, 0);
        });

        await using var session = await ConnectAsync(target);
        await Task.Delay(100);
        Assert.True((await session.ExecuteAsync(0, Tur)).IsGood);
        AssertNoErrors(target);
    }

    [Fact]
    public async Task Cancel_SentCommand_SendsAbortTask_ThenThrows()
    {
        uint abortedItt = 0;
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            var (cmd, _) = await conn.ReceiveCommandAsync();
            var (tmf, _) = await conn.ReceiveCommandAsync();
            Assert.Equal(Opcode.TaskManagementRequest, tmf.Opcode);
            Assert.Equal(TmfFunction.AbortTask, tmf.Flags & 0x7f);
            Assert.Equal(cmd.InitiatorTaskTag, tmf.U32(20));
            Assert.Equal(cmd.CmdSN, tmf.U32(32));
            abortedItt = tmf.U32(20);
            await conn.Transport.SendAsync(conn.Response(Opcode.TaskManagementResponse, tmf.InitiatorTaskTag), ReadOnlyMemory<byte>.Empty);
            (cmd, _) = await conn.ReceiveCommandAsync();
            await conn.SendStatusAsync(cmd.InitiatorTaskTag, 0);
        });

        await using var session = await ConnectAsync(target);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => session.ExecuteAsync(0, Read10(0, 1), default, new byte[512], cts.Token).AsTask());
        Assert.NotEqual(0u, abortedItt);
        Assert.True((await session.ExecuteAsync(0, Tur)).IsGood);
        AssertNoErrors(target);
    }

    [Fact]
    public async Task CommandTimeout_AbortsAndThrowsTimeout()
    {
        await using var target = new FakeTarget(async (conn, connIndex) =>
        {
            await conn.ReceiveCommandAsync();
            var (tmf, _) = await conn.ReceiveCommandAsync();
            Assert.Equal(Opcode.TaskManagementRequest, tmf.Opcode);
            var r = conn.Response(Opcode.TaskManagementResponse, tmf.InitiatorTaskTag);
            r.SetByte(2, TmfResponse.TaskDoesNotExist);
            await conn.Transport.SendAsync(r, ReadOnlyMemory<byte>.Empty);
            await conn.ReceiveCommandAsync(); // logout
        });

        await using var session = await ConnectAsync(target, Quiet with { CommandTimeout = TimeSpan.FromMilliseconds(300) });
        var e = await Assert.ThrowsAsync<TimeoutException>(() => session.ExecuteAsync(0, Tur).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("timed out", e.Message, StringComparison.Ordinal);
        AssertNoErrors(target);
    }

    [Fact]
    public async Task UnansweredNopOut_DeclaresConnectionDead_AndReconnects()
    {
        await using var target = new FakeTarget(async (conn, index) =>
        {
            if (index == 0)
            {
                await conn.ReceiveAsync(); // the ping, never answered
                await Task.Delay(3000);
                return;
            }

            var (cmd, _) = await conn.ReceiveCommandAsync();
            await conn.SendStatusAsync(cmd.InitiatorTaskTag, 0);
            await conn.ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(5)); // logout
        });

        await using var session = await ConnectAsync(target, Quiet with
        {
            NopInterval = TimeSpan.FromMilliseconds(100),
            NopTimeout = TimeSpan.FromMilliseconds(300),
        });
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (session.Reconnects == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(1, session.Reconnects);
        Assert.True((await session.ExecuteAsync(0, Tur)).IsGood);
    }

    [Fact]
    public async Task AsyncLogoutRequest_LogsOut_ThenReconnectsAndReplays()
    {
        await using var target = new FakeTarget(async (conn, index) =>
        {
            if (index == 0)
            {
                var (cmd, _) = await conn.ReceiveCommandAsync();
                var msg = conn.Response(Opcode.AsyncMessage, 0xFFFFFFFF);
                msg.SetByte(36, AsyncEvent.LogoutRequested);
                await conn.Transport.SendAsync(msg, ReadOnlyMemory<byte>.Empty);
                var (logout, _) = await conn.ReceiveCommandAsync();
                Assert.Equal(Opcode.LogoutRequest, logout.Opcode);
                await conn.Transport.SendAsync(conn.Response(Opcode.LogoutResponse, logout.InitiatorTaskTag), ReadOnlyMemory<byte>.Empty);
                return;
            }

            var (again, _) = await conn.ReceiveCommandAsync();
            await conn.SendStatusAsync(again.InitiatorTaskTag, 0);
            await conn.ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(5));
        });

        await using var session = await ConnectAsync(target);
        Assert.True((await session.ExecuteAsync(0, Tur).AsTask().WaitAsync(TimeSpan.FromSeconds(10))).IsGood);
        Assert.Equal(1, session.Reconnects);
        AssertNoErrors(target);
    }

    [Fact]
    public async Task LoginRejected_LoginExceptionCarriesStatus()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var s = await listener.AcceptSocketAsync();
            await using var t = new Sluice.Offload.PduTransport(s);
            await t.ReceiveHeaderAsync();
            await t.DiscardDataAsync();
            var r = default(Bhs);
            r.Opcode = Opcode.LoginResponse;
            r.SetByte(36, 2);
            r.SetByte(37, 2);
            await t.SendAsync(r, ReadOnlyMemory<byte>.Empty);
            await Task.Delay(200);
        });

        var e = await Assert.ThrowsAsync<LoginException>(() => IscsiSession.ConnectAsync("127.0.0.1", port, "iqn.x:y", Quiet));
        Assert.Equal(2, e.StatusClass);
        Assert.Equal(2, e.StatusDetail);
        Assert.Contains("authorization failure", e.Message, StringComparison.Ordinal);
        await server;
    }
}
