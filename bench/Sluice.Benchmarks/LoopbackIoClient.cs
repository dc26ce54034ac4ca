using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;

namespace Sluice.Benchmarks;

/// <summary>
/// A minimal iSCSI initiator for measuring the target: after login it issues 4 KiB READ(10) /
/// WRITE(10) commands one at a time (immediate data for writes) from preallocated buffers over
/// a plain socket, so its I/O loop allocates no managed memory itself and whatever the process
/// allocates per I/O is the target's. Digests off; ErrorRecoveryLevel 0. Shared by the
/// allocation benchmark (bench/Sluice.Benchmarks) and the allocation test (test/Sluice.Target.Tests).
/// </summary>
public sealed class LoopbackIoClient : IAsyncDisposable
{
    public const int BlockBytes = 4096;
    private const int HeaderBytes = 48;

    private readonly Socket _socket;
    private readonly byte[] _tx = GC.AllocateUninitializedArray<byte>(HeaderBytes + BlockBytes, pinned: true);
    private readonly byte[] _rx = GC.AllocateUninitializedArray<byte>(HeaderBytes + BlockBytes + 1024, pinned: true);
    private uint _cmdSN = 1;
    private uint _expStatSN;
    private uint _itt = 1;
    private uint _random = 2463534242;

    private LoopbackIoClient(Socket socket) => _socket = socket;

    /// <summary>Connects and logs in to <paramref name="target"/> (AuthMethod=None, digests off).</summary>
    public static async Task<LoopbackIoClient> ConnectAsync(IPEndPoint endpoint, string target, string initiator = "iqn.2026-11.dev.sluice:alloc-client")
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endpoint).ConfigureAwait(false);
        var c = new LoopbackIoClient(socket);
        await c.LoginAsync(target, initiator).ConfigureAwait(false);
        return c;
    }

    private async Task LoginAsync(string target, string initiator)
    {
        string security = $"InitiatorName={initiator}\0SessionType=Normal\0TargetName={target}\0AuthMethod=None\0";
        string operational = "HeaderDigest=None\0DataDigest=None\0MaxRecvDataSegmentLength=262144\0InitialR2T=No\0ImmediateData=Yes\0"
            + "MaxBurstLength=1048576\0FirstBurstLength=65536\0ErrorRecoveryLevel=0\0";
        int csg = 0;
        for (int step = 0; step < 8; step++)
        {
            byte[] text = Encoding.UTF8.GetBytes(step == 0 ? security : step == 1 ? operational : "");
            Array.Clear(_tx, 0, HeaderBytes);
            _tx[0] = 0x43; // Login Request, immediate
            _tx[1] = (byte)(0x80 | (csg << 2) | (csg == 0 ? 1 : 3));
            WriteLength(text.Length);
            _tx[8] = 0x40; // ISID: random format
            _tx[13] = 1;
            BinaryPrimitives.WriteUInt32BigEndian(_tx.AsSpan(16), _itt);
            BinaryPrimitives.WriteUInt32BigEndian(_tx.AsSpan(24), _cmdSN);
            BinaryPrimitives.WriteUInt32BigEndian(_tx.AsSpan(28), _expStatSN);
            byte[] pdu = new byte[HeaderBytes + ((text.Length + 3) & ~3)];
            _tx.AsSpan(0, HeaderBytes).CopyTo(pdu);
            text.CopyTo(pdu, HeaderBytes);
            await SendAsync(pdu).ConfigureAwait(false);
            int dsl = await ReceivePduAsync().ConfigureAwait(false);
            if ((_rx[0] & 0x3f) != 0x23 || _rx[36] != 0)
            {
                throw new InvalidOperationException($"login failed: opcode 0x{_rx[0]:x2} status {_rx[36]}/{_rx[37]}: {Encoding.UTF8.GetString(_rx, HeaderBytes, dsl)}");
            }

            _expStatSN = BinaryPrimitives.ReadUInt32BigEndian(_rx.AsSpan(24)) + 1;
            bool transit = (_rx[1] & 0x80) != 0;
            int nsg = _rx[1] & 3;
            if (transit && nsg == 3)
            {
                // Clear the power-on unit attention before measuring.
                for (int i = 0; i < 4; i++)
                {
                    SendCommandHeader(read: false, write: false, length: 0, cdb0: 0x00, lba: 0);
                    await SendAsync(_tx.AsMemory(0, HeaderBytes)).ConfigureAwait(false);
                    await ReceivePduAsync().ConfigureAwait(false);
                    if (_rx[3] == 0)
                    {
                        return;
                    }
                }

                throw new InvalidOperationException("unit attention never cleared");
            }

            if (transit)
            {
                csg = nsg;
            }
        }

        throw new InvalidOperationException("login did not reach full-feature phase");
    }

    /// <summary>
    /// Runs <paramref name="count"/> 4 KiB commands at queue depth 1 on random 4 KiB-aligned
    /// blocks below <paramref name="blocks"/>; returns how many did not end with GOOD.
    /// Allocates nothing per command.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> RunAsync(int count, bool write, int blocks)
    {
        int failures = 0;
        for (int i = 0; i < count; i++)
        {
            uint block = NextRandom() % (uint)blocks;
            uint lba = block * (BlockBytes / 512);
            SendCommandHeader(read: !write, write: write, length: BlockBytes, cdb0: write ? (byte)0x2a : (byte)0x28, lba: lba);
            if (write)
            {
                WriteLength(BlockBytes);
                _tx[HeaderBytes] = (byte)i;
                await SendAsync(_tx.AsMemory(0, HeaderBytes + BlockBytes)).ConfigureAwait(false);
            }
            else
            {
                await SendAsync(_tx.AsMemory(0, HeaderBytes)).ConfigureAwait(false);
            }

            while (true)
            {
                await ReceivePduAsync().ConfigureAwait(false);
                int opcode = _rx[0] & 0x3f;
                if (opcode == 0x25 && (_rx[1] & 0x01) == 0)
                {
                    continue; // Data-In without status
                }

                if (opcode is 0x25 or 0x21)
                {
                    _expStatSN = BinaryPrimitives.ReadUInt32BigEndian(_rx.AsSpan(24)) + 1;
                    if (_rx[3] != 0)
                    {
                        failures++;
                    }

                    break;
                }

                if (opcode == 0x20)
                {
                    // A NOP-In ping (TTT set) wants an answer; one without status is ignored.
                    uint ttt = BinaryPrimitives.ReadUInt32BigEndian(_rx.AsSpan(20));
                    if (ttt != 0xffffffff)
                    {
                        await AnswerPingAsync(ttt).ConfigureAwait(false);
                    }

                    continue;
                }

                failures++;
                break;
            }
        }

        return failures;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AnswerPingAsync(uint ttt)
    {
        Array.Clear(_tx, 0, HeaderBytes);
        _tx[0] = 0x40; // NOP-Out, immediate
        _tx[1] = 0x80;
        BinaryPrimitives.WriteUInt32BigEndian(_tx.AsSpan(16), 0xffffffff);
        BinaryPrimitives.WriteUInt32BigEndian(_tx.AsSpan(20), ttt);
        BinaryPrimitives.WriteUInt32BigEndian(_tx.AsSpan(24), _cmdSN);
        BinaryPrimitives.WriteUInt32BigEndian(_tx.AsSpan(28), _expStatSN);
        await SendAsync(_tx.AsMemory(0, HeaderBytes)).ConfigureAwait(false);
    }

    private void SendCommandHeader(bool read, bool write, int length, byte cdb0, uint lba)
    {
        var h = _tx.AsSpan(0, HeaderBytes);
        h.Clear();
        h[0] = 0x01; // SCSI Command
        h[1] = (byte)(0x80 | (read ? 0x40 : 0) | (write ? 0x20 : 0) | 1);
        _itt = _itt == 0xfffffffe ? 1 : _itt + 1;
        BinaryPrimitives.WriteUInt32BigEndian(h[16..], _itt);
        BinaryPrimitives.WriteUInt32BigEndian(h[20..], (uint)length);
        BinaryPrimitives.WriteUInt32BigEndian(h[24..], _cmdSN++);
        BinaryPrimitives.WriteUInt32BigEndian(h[28..], _expStatSN);
        h[32] = cdb0;
        if (cdb0 != 0)
        {
            BinaryPrimitives.WriteUInt32BigEndian(h[34..], lba);
            BinaryPrimitives.WriteUInt16BigEndian(h[39..], (ushort)(length / 512));
        }
    }

    private void WriteLength(int length)
    {
        _tx[5] = (byte)(length >> 16);
        _tx[6] = (byte)(length >> 8);
        _tx[7] = (byte)length;
    }

    private uint NextRandom()
    {
        uint x = _random;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        _random = x;
        return x;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendAsync(ReadOnlyMemory<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int n = await _socket.SendAsync(buffer, SocketFlags.None).ConfigureAwait(false);
            buffer = buffer[n..];
        }
    }

    /// <summary>Receives one PDU (header, then data and padding) into <see cref="_rx"/>; returns its data length.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReceivePduAsync()
    {
        await ReceiveExactlyAsync(0, HeaderBytes).ConfigureAwait(false);
        int dsl = (_rx[5] << 16) | (_rx[6] << 8) | _rx[7];
        int padded = (dsl + 3) & ~3;
        if (HeaderBytes + padded > _rx.Length)
        {
            throw new InvalidOperationException($"data segment of {dsl} bytes is too large");
        }

        await ReceiveExactlyAsync(HeaderBytes, padded).ConfigureAwait(false);
        return dsl;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReceiveExactlyAsync(int offset, int count)
    {
        int end = offset + count;
        while (offset < end)
        {
            int n = await _socket.ReceiveAsync(_rx.AsMemory(offset, end - offset), SocketFlags.None).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException("target closed the connection");
            }

            offset += n;
        }
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
