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
}
