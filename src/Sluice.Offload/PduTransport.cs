using System.Net.Sockets;
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
public sealed class PduTransport : IAsyncDisposable
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

    public PduTransport(Socket socket, int stagingBufferSize = 256 * 1024)
    {
        _socket = socket;
        _rx = GC.AllocateUninitializedArray<byte>(stagingBufferSize, pinned: true);
        _tx = GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);
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

    public Socket Socket => _socket;

    /// <summary>
    /// Reads the next PDU header (and its AHS). Returns false when the peer closed the
    /// connection cleanly between PDUs; throws <see cref="IscsiProtocolException"/> on a
    /// truncated or impossible header.
    /// </summary>
    public ValueTask<bool> ReceiveHeaderAsync(CancellationToken cancellationToken = default)
    {
        bool taken = false;
        if (_rxEnd - _rxStart >= Bhs.Length)
        {
            TakeHeader();
            if (Header.TotalAhsLength == 0)
            {
                return ValidateHeader();
            }

            taken = true;
        }

        return ReceiveHeaderSlowAsync(taken, cancellationToken);
    }

    private async ValueTask<bool> ReceiveHeaderSlowAsync(bool taken, CancellationToken cancellationToken)
    {
        if (!taken)
        {
            if (!await FillAsync(Bhs.Length, allowCleanEof: true, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }

            TakeHeader();
        }

        if (Header.TotalAhsLength != 0)
        {
            int ahs = Header.TotalAhsLength * 4;
            await FillAsync(ahs, allowCleanEof: false, cancellationToken).ConfigureAwait(false);
            _rx.AsSpan(_rxStart, ahs).CopyTo(_ahs);
            _ahsLength = ahs;
            _rxStart += ahs;
        }

        return await ValidateHeader().ConfigureAwait(false);
    }

    private void TakeHeader()
    {
        Header = Bhs.Read(_rx.AsSpan(_rxStart, Bhs.Length));
        _rxStart += Bhs.Length;
        _ahsLength = 0;
    }

    private ValueTask<bool> ValidateHeader()
    {
        int dsl = Header.DataSegmentLength;
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
    /// length must equal the header's DataSegmentLength, and consumes the padding.
    /// </summary>
    public ValueTask ReceiveDataAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        int length = destination.Length;
        int total = length + Padding(length);
        if (_rxEnd - _rxStart >= total)
        {
            _rx.AsSpan(_rxStart, length).CopyTo(destination.Span);
            _rxStart += total;
            Counters.Staged(length);
            return ValueTask.CompletedTask;
        }

        return ReceiveDataSlowAsync(destination, cancellationToken);
    }

    private async ValueTask ReceiveDataSlowAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        int length = destination.Length;
        int staged = Math.Min(_rxEnd - _rxStart, length);
        _rx.AsSpan(_rxStart, staged).CopyTo(destination.Span);
        _rxStart += staged;
        int remaining = length - staged;
        if (remaining >= DirectThreshold)
        {
            // Fast path: the rest of the payload lands in its final buffer with no copy.
            int received = staged;
            while (received < length)
            {
                int n = await _socket.ReceiveAsync(destination[received..], SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    throw new IscsiProtocolException("connection closed inside a data segment");
                }

                received += n;
            }

            Counters.Direct(remaining);
        }
        else if (remaining > 0)
        {
            await FillAsync(remaining, allowCleanEof: false, cancellationToken).ConfigureAwait(false);
            _rx.AsSpan(_rxStart, remaining).CopyTo(destination.Span[staged..]);
            _rxStart += remaining;
            Counters.Staged(length);
        }
        else
        {
            Counters.Staged(length);
        }

        int pad = Padding(length);
        if (pad > 0)
        {
            await FillAsync(pad, allowCleanEof: false, cancellationToken).ConfigureAwait(false);
            _rxStart += pad;
        }
    }

    /// <summary>Reads and drops the current PDU's data segment and padding.</summary>
    public async ValueTask DiscardDataAsync(CancellationToken cancellationToken = default)
    {
        long remaining = Header.DataSegmentLength + Padding(Header.DataSegmentLength);
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
    /// <paramref name="data"/> with padding, in one socket call.
    /// </summary>
    public async ValueTask SendAsync(Bhs header, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        header.DataSegmentLength = data.Length;
        int pad = Padding(data.Length);
        int total = Bhs.Length + data.Length + pad;
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (total <= _tx.Length)
            {
                header.CopyTo(_tx);
                data.Span.CopyTo(_tx.AsSpan(Bhs.Length));
                _tx.AsSpan(Bhs.Length + data.Length, pad).Clear();
                await SendAllAsync(_tx.AsMemory(0, total), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                header.CopyTo(_tx);
                if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray(data, out var segment))
                {
                    _gather[0] = new ArraySegment<byte>(_tx, 0, Bhs.Length);
                    _gather[1] = segment;
                    _gather[2] = new ArraySegment<byte>(s_zeroPad, 0, pad);
                    int sent = await _socket.SendAsync(_gather, SocketFlags.None).ConfigureAwait(false);
                    if (sent < total)
                    {
                        await SendTailAsync(data, sent, pad, cancellationToken).ConfigureAwait(false);
                    }
                }
                else
                {
                    await SendAllAsync(_tx.AsMemory(0, Bhs.Length), cancellationToken).ConfigureAwait(false);
                    await SendAllAsync(data, cancellationToken).ConfigureAwait(false);
                    if (pad > 0)
                    {
                        await SendAllAsync(s_zeroPad.AsMemory(0, pad), cancellationToken).ConfigureAwait(false);
                    }
                }
            }

            Counters.PduSent(total);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private async ValueTask SendTailAsync(ReadOnlyMemory<byte> data, int sent, int pad, CancellationToken cancellationToken)
    {
        if (sent < Bhs.Length)
        {
            await SendAllAsync(_tx.AsMemory(sent, Bhs.Length - sent), cancellationToken).ConfigureAwait(false);
            sent = Bhs.Length;
        }

        int dataSent = sent - Bhs.Length;
        if (dataSent < data.Length)
        {
            await SendAllAsync(data[dataSent..], cancellationToken).ConfigureAwait(false);
            dataSent = data.Length;
        }

        int padSent = sent - Bhs.Length - data.Length;
        if (padSent < 0)
        {
            padSent = 0;
        }

        if (padSent < pad)
        {
            await SendAllAsync(s_zeroPad.AsMemory(0, pad - padSent), cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
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
}
