using System.Net;
using System.Net.Sockets;
using Sluice.Iscsi.Pdu;

namespace Sluice.Offload.Tests;

public sealed class PduTransportTests
{
    private static async Task<(Socket Client, Socket Server)> PairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = listener.AcceptAsync();
        await client.ConnectAsync(listener.LocalEndPoint!);
        return (client, await accept);
    }

    private static byte[] BuildPdu(int dataLength, byte fill, int ahsWords = 0)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.ScsiCommand;
        h.Flags = 0xa1;
        h.InitiatorTaskTag = 0x11223344;
        h.TotalAhsLength = (byte)ahsWords;
        h.DataSegmentLength = dataLength;
        int pad = PduTransport.Padding(dataLength);
        var bytes = new byte[Bhs.Length + (ahsWords * 4) + dataLength + pad];
        h.CopyTo(bytes);
        for (int i = 0; i < ahsWords * 4; i++)
        {
            bytes[Bhs.Length + i] = (byte)(0xA0 + i);
        }

        for (int i = 0; i < dataLength; i++)
        {
            bytes[Bhs.Length + (ahsWords * 4) + i] = (byte)(fill + i);
        }

        return bytes;
    }

    [Fact]
    public async Task ReceiveHeaderAndData_SplitAtEveryByte_ReassemblesPdu()
    {
        var (client, server) = await PairAsync();
        using var c = client;
        await using var transport = new PduTransport(server);
        var pdu = BuildPdu(dataLength: 37, fill: 7, ahsWords: 2);
        for (int split = 0; split <= pdu.Length; split++)
        {
            var send = Task.Run(async () =>
            {
                await client.SendAsync(pdu.AsMemory(0, split));
                await Task.Delay(1);
                await client.SendAsync(pdu.AsMemory(split));
            });
            Assert.True(await transport.ReceiveHeaderAsync());
            Assert.Equal(Opcode.ScsiCommand, transport.Header.Opcode);
            Assert.Equal(0x11223344u, transport.Header.InitiatorTaskTag);
            Assert.Equal(8, transport.Ahs.Length);
            Assert.Equal(0xA0, transport.Ahs[0]);
            var data = new byte[transport.Header.DataSegmentLength];
            await transport.ReceiveDataAsync(data);
            Assert.Equal(pdu.AsSpan(Bhs.Length + 8, 37).ToArray(), data);
            await send;
        }
    }

    [Fact]
    public async Task ReceiveData_LargePayloadNotYetStaged_PlacesDirectly()
    {
        var (client, server) = await PairAsync();
        using var c = client;
        await using var transport = new PduTransport(server) { MaxReceiveDataSegmentLength = 1 << 20 };
        var pdu = BuildPdu(dataLength: 256 * 1024, fill: 1);
        var send = Task.Run(async () =>
        {
            await client.SendAsync(pdu.AsMemory(0, Bhs.Length));
            await Task.Delay(50);
            await client.SendAsync(pdu.AsMemory(Bhs.Length));
        });
        Assert.True(await transport.ReceiveHeaderAsync());
        var data = new byte[transport.Header.DataSegmentLength];
        await transport.ReceiveDataAsync(data);
        await send;
        Assert.Equal(pdu.AsSpan(Bhs.Length).ToArray(), data);
        Assert.True(transport.Counters.DirectBytes > 0);
    }

    [Fact]
    public async Task ReceiveHeader_DataSegmentBeyondLimit_ThrowsWithProtocolErrorReject()
    {
        var (client, server) = await PairAsync();
        using var c = client;
        await using var transport = new PduTransport(server) { MaxReceiveDataSegmentLength = 8192 };
        var pdu = BuildPdu(dataLength: 8193, fill: 0);
        await client.SendAsync(pdu.AsMemory(0, Bhs.Length));
        var ex = await Assert.ThrowsAsync<IscsiProtocolException>(async () => await transport.ReceiveHeaderAsync());
        Assert.Equal(RejectReason.ProtocolError, ex.RejectReason);
    }

    [Fact]
    public async Task ReceiveHeader_PeerClosesBetweenPdus_ReturnsFalse()
    {
        var (client, server) = await PairAsync();
        await using var transport = new PduTransport(server);
        client.Shutdown(SocketShutdown.Send);
        Assert.False(await transport.ReceiveHeaderAsync());
        client.Dispose();
    }

    [Fact]
    public async Task ReceiveHeader_PeerClosesInsideHeader_ThrowsProtocolError()
    {
        var (client, server) = await PairAsync();
        await using var transport = new PduTransport(server);
        await client.SendAsync(new byte[20]);
        client.Shutdown(SocketShutdown.Send);
        await Assert.ThrowsAsync<IscsiProtocolException>(async () => await transport.ReceiveHeaderAsync());
        client.Dispose();
    }

    [Fact]
    public async Task Send_HeaderAndPaddedData_ArriveAsOnePdu()
    {
        var (client, server) = await PairAsync();
        using var c = client;
        await using var sender = new PduTransport(server);
        await using var receiver = new PduTransport(client);
        foreach (int length in new[] { 0, 1, 3, 4, 5, 70000, 131075 })
        {
            var h = default(Bhs);
            h.Opcode = Opcode.DataIn;
            h.InitiatorTaskTag = (uint)length;
            var payload = new byte[length];
            Random.Shared.NextBytes(payload);
            var send = sender.SendAsync(h, payload).AsTask();
            receiver.MaxReceiveDataSegmentLength = 1 << 20;
            Assert.True(await receiver.ReceiveHeaderAsync());
            Assert.Equal((uint)length, receiver.Header.InitiatorTaskTag);
            Assert.Equal(length, receiver.Header.DataSegmentLength);
            var got = new byte[length];
            await receiver.ReceiveDataAsync(got);
            Assert.Equal(payload, got);
            await send;
        }
    }

    [Theory]
    [InlineData(OffloadMode.Auto, 0)]
    [InlineData(OffloadMode.Auto, 5)]
    [InlineData(OffloadMode.Auto, 70000)]
    [InlineData(OffloadMode.None, 70000)]
    public async Task Send_WithDigests_ReceiverVerifiesBoth(OffloadMode mode, int length)
    {
        var (client, server) = await PairAsync();
        using var c = client;
        await using var sender = new PduTransport(server, mode: mode) { HeaderDigest = true, DataDigest = true };
        await using var receiver = new PduTransport(client, mode: mode) { HeaderDigest = true, DataDigest = true, MaxReceiveDataSegmentLength = 1 << 20 };
        var payload = new byte[length];
        Random.Shared.NextBytes(payload);
        var h = default(Bhs);
        h.Opcode = Opcode.DataIn;
        var send = sender.SendAsync(h, payload).AsTask();
        Assert.True(await receiver.ReceiveHeaderAsync());
        var got = new byte[receiver.Header.DataSegmentLength];
        await receiver.ReceiveDataAsync(got);
        await send;
        Assert.Equal(payload, got);
        Assert.Equal(0, receiver.Counters.HeaderDigestErrors + receiver.Counters.DataDigestErrors);
    }

    [Fact]
    public async Task ReceiveData_CorruptedPayload_ThrowsDataDigestAndStaysInSync()
    {
        var (client, server) = await PairAsync();
        using var c = client;
        await using var receiver = new PduTransport(server) { HeaderDigest = true, DataDigest = true };
        byte[] first = BuildDigestedPdu(100, corruptData: true);
        byte[] second = BuildDigestedPdu(8, corruptData: false);
        await client.SendAsync(first.Concat(second).ToArray());

        Assert.True(await receiver.ReceiveHeaderAsync());
        await Assert.ThrowsAsync<DataDigestException>(async () => await receiver.ReceiveDataAsync(new byte[100]));
        Assert.Equal(1, receiver.Counters.DataDigestErrors);

        Assert.True(await receiver.ReceiveHeaderAsync());
        var got = new byte[8];
        await receiver.ReceiveDataAsync(got);
        Assert.Equal(second.AsSpan(52, 8).ToArray(), got);
    }

    [Fact]
    public async Task ReceiveHeader_CorruptedHeader_ThrowsAndCounts()
    {
        var (client, server) = await PairAsync();
        using var c = client;
        await using var receiver = new PduTransport(server) { HeaderDigest = true, DataDigest = true };
        byte[] pdu = BuildDigestedPdu(0, corruptData: false);
        pdu[17] ^= 0x01;
        await client.SendAsync(pdu);
        await Assert.ThrowsAsync<IscsiProtocolException>(async () => await receiver.ReceiveHeaderAsync());
        Assert.Equal(1, receiver.Counters.HeaderDigestErrors);
    }

    /// <summary>A PDU with header and data digests (little-endian on the wire, RFC 3720 B.4).</summary>
    private static byte[] BuildDigestedPdu(int dataLength, bool corruptData)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.DataOut;
        h.InitiatorTaskTag = 7;
        h.DataSegmentLength = dataLength;
        int pad = PduTransport.Padding(dataLength);
        var bytes = new byte[48 + 4 + dataLength + pad + (dataLength > 0 ? 4 : 0)];
        h.CopyTo(bytes);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(48), Crc32C.Compute(bytes.AsSpan(0, 48)));
        for (int i = 0; i < dataLength; i++)
        {
            bytes[52 + i] = (byte)i;
        }

        if (dataLength > 0)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(52 + dataLength + pad), Crc32C.Compute(bytes.AsSpan(52, dataLength + pad)));
            if (corruptData)
            {
                bytes[52 + (dataLength / 2)] ^= 0x40;
            }
        }

        return bytes;
    }
}
