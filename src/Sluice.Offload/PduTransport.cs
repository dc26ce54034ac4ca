using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Sluice.Iscsi.Pdu;

namespace Sluice.Offload;

/// <summary>
/// The per-connection framing engine over an ordinary <see cref="Socket"/> (the host's own TCP
/// stack, untouched). Receive: headers are parsed out of a staging buffer that takes whatever
/// the socket has in one receive call; a data segment is copied from staging if it is already
/// there and otherwise received straight into the caller's final buffer (direct placement).
/// Send: header and data go out together under one send lock, so PDUs never interleave.
/// Lengths from the wire are checked before anything is read into memory (DESIGN.md).
/// </summary>
public sealed partial class PduTransport : IAsyncDisposable
{
    /// <summary>Payloads at least this long that are not yet staged are received directly.</summary>
    private const int DirectThreshold = 2048;

    /// <summary>AHS is at most 255 words (RFC 7143 §11.2.1.2).</summary>
    private const int MaxAhsBytes = 255 * 4;

    private readonly Socket _socket;
    private readonly byte[] _rx;
    private int _rxStart;
    private int _rxEnd;
    private readonly byte[] _ahs = new byte[MaxAhsBytes];
    private int _ahsLength;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly byte[] _tx;
    private readonly ArraySegment<byte>[] _gather = new ArraySegment<byte>[3];
    private static readonly byte[] s_zeroPad = new byte[4];
    private int _disposed;
    private readonly bool _offload;
    private bool _lastSegmentLarge;
    private readonly Receiver _receiver;
    private byte[]? _batch;
    private int _batchLength;

    public PduTransport(Socket socket, int stagingBufferSize = 256 * 1024, OffloadMode mode = OffloadMode.Auto)
    {
        _socket = socket;
        _offload = mode == OffloadMode.Auto;
        _rx = GC.AllocateUninitializedArray<byte>(stagingBufferSize, pinned: true);
        _tx = GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);
        _receiver = new Receiver(this);
    }

    /// <summary>Received bytes not yet consumed (the next PDU or part of it).</summary>
    public int StagedBytes => _rxEnd - _rxStart;

    /// <summary>
    /// The whole next PDU (header, data segment, padding, digests) is already received: reading it
    /// will not wait for the socket.
    /// </summary>
    public bool PduStaged
    {
        get
        {
            int staged = _rxEnd - _rxStart;
            if (staged < Bhs.Length)
            {
                return false;
            }

            var raw = _rx.AsSpan(_rxStart);
            int dsl = (raw[5] << 16) | (raw[6] << 8) | raw[7];
            int data = dsl == 0 ? 0 : dsl + Padding(dsl) + (DataDigest ? 4 : 0);
            return staged >= (long)HeaderBytes(raw[4]) + data;
        }
    }

    /// <summary>The header of the PDU most recently received.</summary>
    public Bhs Header;

    /// <summary>Additional header segments of the PDU most recently received.</summary>
    public ReadOnlySpan<byte> Ahs => _ahs.AsSpan(0, _ahsLength);

    /// <summary>
    /// Largest data segment this side accepts (our declared MaxRecvDataSegmentLength; 8192
    /// during login, RFC 7143 §13.12). A larger segment is a protocol error.
    /// </summary>
    public int MaxReceiveDataSegmentLength { get; set; } = 8192;

    public ConnectionCounters Counters { get; } = new();

    /// <summary>HeaderDigest=CRC32C in force (RFC 7143 §13.1): 4 digest bytes follow BHS+AHS.</summary>
    public bool HeaderDigest { get; set; }

    /// <summary>DataDigest=CRC32C in force: 4 digest bytes follow every data segment and its padding.</summary>
    public bool DataDigest { get; set; }

    /// <summary>The engine: <see cref="OffloadMode.Auto"/> (SIMD CRC, direct placement) or the staged, table-driven baseline.</summary>
    public OffloadMode Mode => _offload ? OffloadMode.Auto : OffloadMode.None;

    private uint Crc(uint crc, ReadOnlySpan<byte> data) => _offload ? Crc32C.Append(crc, data) : Crc32C.AppendPortable(crc, data);

    public Socket Socket => _socket;

    /// <summary>
    /// Reads the next PDU header (and its AHS and header digest). Returns false when the peer
    /// closed the connection cleanly between PDUs; throws <see cref="IscsiProtocolException"/> on
    /// a truncated or impossible header or a header digest error (RFC 7143 §7.8: the connection
    /// cannot be trusted to be in sync after a header digest error).
    /// </summary>
    public ValueTask<bool> ReceiveHeaderAsync(CancellationToken cancellationToken = default)
    {
        int staged = _rxEnd - _rxStart;
        if (staged >= Bhs.Length)
        {
            int needed = HeaderBytes(_rx[_rxStart + 4]);
            if (staged >= needed)
            {
                return TakeHeader(needed);
            }
        }

        return _receiver.StartHeader(cancellationToken);
    }

    /// <summary>
    /// Waits for the first byte of the next PDU and returns it without consuming it (-1 when
    /// the peer closed). Lets a caller refuse a stream that is not iSCSI at all before it waits
    /// for a whole 48-byte header that may never come.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> PeekFirstByteAsync(CancellationToken cancellationToken = default)
    {
        if (_rxEnd == _rxStart && !await FillAsync(1, allowCleanEof: true, cancellationToken).ConfigureAwait(false))
        {
            return -1;
        }

        return _rx[_rxStart];
    }

    private int HeaderBytes(byte totalAhsLength) => Bhs.Length + (totalAhsLength * 4) + (HeaderDigest ? 4 : 0);

    private ValueTask<bool> TakeHeader(int needed)
    {
        var raw = _rx.AsSpan(_rxStart, needed);
        Header = Bhs.Read(raw);
        int ahs = Header.TotalAhsLength * 4;
        _ahsLength = ahs;
        if (ahs > 0)
        {
            raw.Slice(Bhs.Length, ahs).CopyTo(_ahs);
        }

        _rxStart += needed;
        if (HeaderDigest)
        {
            uint expected = BinaryPrimitives.ReadUInt32LittleEndian(raw[(Bhs.Length + ahs)..]);
            if (Crc(0, raw[..(Bhs.Length + ahs)]) != expected)
            {
                Counters.HeaderDigestError();
                return ValueTask.FromException<bool>(new IscsiProtocolException("header digest error"));
            }
        }

        return ValidateHeader();
    }

    private ValueTask<bool> ValidateHeader()
    {
        int dsl = Header.DataSegmentLength;
        _lastSegmentLarge = dsl >= LargeSegment;
        Counters.PduReceived(Bhs.Length + _ahsLength + dsl);
        if (dsl > MaxReceiveDataSegmentLength)
        {
            return ValueTask.FromException<bool>(new IscsiProtocolException(
                $"data segment of {dsl} bytes exceeds MaxRecvDataSegmentLength {MaxReceiveDataSegmentLength}")
            {
                RejectReason = RejectReason.ProtocolError,
            });
        }

        return ValueTask.FromResult(true);
    }

    /// <summary>
    /// Receives the data segment of the current PDU into <paramref name="destination"/>, whose
    /// length must equal the header's DataSegmentLength, consumes the padding and checks the
    /// data digest over the bytes where they landed. A digest mismatch throws
    /// <see cref="DataDigestException"/> with the stream still in sync at the next PDU; the
    /// caller must treat the bytes in <paramref name="destination"/> as garbage.
    /// </summary>
    public ValueTask ReceiveDataAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        int length = destination.Length;
        int pad = Padding(length);
        bool digest = DataDigest && length > 0;
        int total = length + pad + (digest ? 4 : 0);
        if (_rxEnd - _rxStart >= total)
        {
            var staged = _rx.AsSpan(_rxStart, total);
            staged[..length].CopyTo(destination.Span);
            _rxStart += total;
            Counters.Staged(length);
            return digest ? CheckDataDigest(staged[..(length + pad)], BinaryPrimitives.ReadUInt32LittleEndian(staged[(length + pad)..])) : ValueTask.CompletedTask;
        }

        return _receiver.StartData(destination, cancellationToken);
    }

    private ValueTask CheckDataDigest(ReadOnlySpan<byte> dataAndPad, uint expected)
    {
        if (Crc(0, dataAndPad) == expected)
        {
            return ValueTask.CompletedTask;
        }

        Counters.DataDigestError();
        return ValueTask.FromException(new DataDigestException());
    }

    /// <summary>Reads and drops the current PDU's data segment and padding.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask DiscardDataAsync(CancellationToken cancellationToken = default)
    {
        long remaining = Header.DataSegmentLength + Padding(Header.DataSegmentLength) + (DataDigest && Header.DataSegmentLength > 0 ? 4 : 0);
        while (remaining > 0)
        {
            if (_rxEnd == _rxStart)
            {
                await FillAsync(1, allowCleanEof: false, cancellationToken).ConfigureAwait(false);
            }

            int take = (int)Math.Min(remaining, _rxEnd - _rxStart);
            _rxStart += take;
            remaining -= take;
        }
    }

    /// <summary>Ensures at least <paramref name="needed"/> bytes are staged.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FillAsync(int needed, bool allowCleanEof, CancellationToken cancellationToken)
    {
        if (_rxStart == _rxEnd)
        {
            _rxStart = _rxEnd = 0;
        }
        else if (_rx.Length - _rxStart < needed)
        {
            Buffer.BlockCopy(_rx, _rxStart, _rx, 0, _rxEnd - _rxStart);
            _rxEnd -= _rxStart;
            _rxStart = 0;
        }

        while (_rxEnd - _rxStart < needed)
        {
            int n = await _socket.ReceiveAsync(_rx.AsMemory(_rxEnd), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                if (allowCleanEof && _rxEnd == _rxStart)
                {
                    return false;
                }

                throw new IscsiProtocolException($"connection closed with a partial PDU ({_rxEnd - _rxStart} of {needed} bytes)");
            }

            _rxEnd += n;
        }

        return true;
    }

    public static int Padding(int length) => (4 - (length & 3)) & 3;

    /// <summary>
    /// Sends one PDU: <paramref name="header"/> (its DataSegmentLength is set here) and
    /// <paramref name="data"/> with padding and, when negotiated, header and data digests, in
    /// one socket call. Large payloads are gathered from where they are, not copied.
    /// </summary>
    public ValueTask SendAsync(Bhs header, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        SendAsync(header, data, default(NoStamp), cancellationToken);

    /// <summary>
    /// Like <see cref="SendAsync(Bhs, ReadOnlyMemory{byte}, CancellationToken)"/>, with
    /// <paramref name="stamp"/> filling in header fields that must follow send order (a
    /// target's StatSN, ExpCmdSN, MaxCmdSN) inside the send lock, right before the header
    /// digest: one lock per PDU for the caller's numbering and the socket together.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync<TStamp>(Bhs header, ReadOnlyMemory<byte> data, TStamp stamp, CancellationToken cancellationToken = default)
        where TStamp : IPduStamp
    {
        header.DataSegmentLength = data.Length;
        int total = Layout(data.Length, out int headerBytes, out int pad, out int trailer);

        // The data digest is computed before taking the send lock: it is the one pass over the
        // payload, so several senders (Data-In of different commands) digest in parallel while
        // another PDU is on the socket, instead of one after another inside the lock.
        uint dataDigest = DigestData(data.Span, pad);

        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_batchLength > 0)
            {
                await SendBatchLockedAsync(cancellationToken).ConfigureAwait(false);
            }

            stamp.Stamp(ref header, data.Span);
            WriteHeader(_tx, header);
            if (total <= _tx.Length)
            {
                WriteDataAndTrailer(_tx.AsSpan(0, total), data.Span, headerBytes, pad, dataDigest);
                await SendAllAsync(_tx.AsMemory(0, total), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                // Trailer (pad + digest) lives after the header in the scratch buffer.
                var trailerSegment = new ArraySegment<byte>(_tx, headerBytes, trailer);
                WriteTrailer(trailerSegment.AsSpan(), pad, dataDigest);
                if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray(data, out var segment))
                {
                    _gather[0] = new ArraySegment<byte>(_tx, 0, headerBytes);
                    _gather[1] = segment;
                    _gather[2] = trailerSegment;
                    Counters.SendCall();
                    int sent = await _socket.SendAsync(_gather, SocketFlags.None).ConfigureAwait(false);
                    if (sent < total)
                    {
                        await SendRestAsync(headerBytes, data, trailerSegment, sent, cancellationToken).ConfigureAwait(false);
                    }
                }
                else
                {
                    await SendAllAsync(_tx.AsMemory(0, headerBytes), cancellationToken).ConfigureAwait(false);
                    await SendAllAsync(data, cancellationToken).ConfigureAwait(false);
                    await SendAllAsync(trailerSegment.AsMemory(), cancellationToken).ConfigureAwait(false);
                }
            }

            Counters.PduSent(total);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// Appends one small PDU (header, data, padding, digests) to the pending batch instead of
    /// sending it, for a connection with a single writer that has several PDUs ready at once (an
    /// initiator's send loop with a queue of commands): the batch goes out in one socket call on
    /// <see cref="FlushAsync"/> or ahead of the next <see cref="SendAsync(Bhs, ReadOnlyMemory{byte}, CancellationToken)"/>,
    /// in order. False when the PDU does not fit; nothing is appended then.
    /// </summary>
    public bool TryAppend(Bhs header, ReadOnlySpan<byte> data)
    {
        int total = Layout(data.Length, out int headerBytes, out int pad, out _);
        _batch ??= GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);
        if (_batchLength + total > _batch.Length)
        {
            return false;
        }

        header.DataSegmentLength = data.Length;
        var into = _batch.AsSpan(_batchLength, total);
        WriteHeader(into, header);
        WriteDataAndTrailer(into, data, headerBytes, pad, DigestData(data, pad));
        _batchLength += total;
        Counters.PduSent(total);
        return true;
    }

    /// <summary>Sends the PDUs appended by <see cref="TryAppend"/>, if any, in one socket call.</summary>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
        _batchLength == 0 ? ValueTask.CompletedTask : FlushCoreAsync(cancellationToken);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await SendBatchLockedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private ValueTask SendBatchLockedAsync(CancellationToken cancellationToken)
    {
        int length = _batchLength;
        _batchLength = 0;
        return length == 0 ? ValueTask.CompletedTask : SendAllAsync(_batch.AsMemory(0, length), cancellationToken);
    }

    /// <summary>A PDU's size on the wire for a data segment of <paramref name="dataLength"/> bytes, and its parts (RFC 7143 §11.2).</summary>
    private int Layout(int dataLength, out int headerBytes, out int pad, out int trailer)
    {
        pad = Padding(dataLength);
        headerBytes = Bhs.Length + (HeaderDigest ? 4 : 0);
        trailer = dataLength == 0 ? 0 : pad + (DataDigest ? 4 : 0);
        return headerBytes + dataLength + trailer;
    }

    /// <summary>The data digest over the segment and its padding (0 when DataDigest is off or there is no data).</summary>
    private uint DigestData(ReadOnlySpan<byte> data, int pad) =>
        DataDigest && data.Length > 0 ? Crc(Crc(0, data), s_zeroPad.AsSpan(0, pad)) : 0;

    /// <summary>The BHS and, when negotiated, its header digest at the start of <paramref name="into"/>.</summary>
    private void WriteHeader(Span<byte> into, in Bhs header)
    {
        header.CopyTo(into);
        if (HeaderDigest)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(into[Bhs.Length..], Crc(0, into[..Bhs.Length]));
        }
    }

    /// <summary>The data segment, padding and data digest after the header of a PDU laid out in <paramref name="pdu"/>.</summary>
    private void WriteDataAndTrailer(Span<byte> pdu, ReadOnlySpan<byte> data, int headerBytes, int pad, uint dataDigest)
    {
        data.CopyTo(pdu[headerBytes..]);
        WriteTrailer(pdu[(headerBytes + data.Length)..], pad, dataDigest);
    }

    private void WriteTrailer(Span<byte> trailer, int pad, uint dataDigest)
    {
        if (trailer.IsEmpty)
        {
            return;
        }

        trailer[..pad].Clear();
        if (DataDigest)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(trailer[pad..], dataDigest);
        }
    }

    /// <summary>Finishes a gathered send that the socket took only in part.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendRestAsync(int headerBytes, ReadOnlyMemory<byte> data, ArraySegment<byte> trailer, int sent, CancellationToken cancellationToken)
    {
        if (sent < headerBytes)
        {
            await SendAllAsync(_tx.AsMemory(sent, headerBytes - sent), cancellationToken).ConfigureAwait(false);
            sent = headerBytes;
        }

        int dataSent = sent - headerBytes;
        if (dataSent < data.Length)
        {
            await SendAllAsync(data[dataSent..], cancellationToken).ConfigureAwait(false);
            dataSent = data.Length;
        }

        int trailerSent = Math.Max(0, sent - headerBytes - data.Length);
        if (trailerSent < trailer.Count)
        {
            await SendAllAsync(trailer.AsMemory(trailerSent), cancellationToken).ConfigureAwait(false);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            Counters.SendCall();
            int n = await _socket.SendAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            buffer = buffer[n..];
        }
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            try
            {
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }

            _socket.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private readonly struct NoStamp : IPduStamp
    {
        public void Stamp(ref Bhs header, ReadOnlySpan<byte> data)
        {
        }
    }
}

/// <summary>Fills in send-order header fields inside <see cref="PduTransport"/>'s send lock.</summary>
public interface IPduStamp
{
    /// <summary>Called once, under the send lock, before the header (and its digest) is written.</summary>
    void Stamp(ref Bhs header, ReadOnlySpan<byte> data);
}
