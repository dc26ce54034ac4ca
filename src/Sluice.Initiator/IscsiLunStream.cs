using System.Buffers;

namespace Sluice.Initiator;

/// <summary>
/// A seekable <see cref="Stream"/> over a logical unit. Block-aligned requests go straight to the
/// unit; unaligned heads and tails are read (and for writes, modified and written back) a block
/// at a time. The length is the unit's capacity and cannot change.
/// </summary>
public sealed class IscsiLunStream : Stream
{
    private readonly IscsiLun _lun;
    private long _position;

    internal IscsiLunStream(IscsiLun lun) => _lun = lun;

    /// <inheritdoc />
    public override bool CanRead => true;

    /// <inheritdoc />
    public override bool CanSeek => true;

    /// <inheritdoc />
    public override bool CanWrite => true;

    /// <inheritdoc />
    public override long Length => _lun.SizeBytes;

    /// <inheritdoc />
    public override long Position
    {
        get => _position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _position = value;
        }
    }

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => _position + offset,
        SeekOrigin.End => Length + offset,
        _ => throw new ArgumentOutOfRangeException(nameof(origin)),
    };

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException("a logical unit has a fixed size");

    /// <inheritdoc />
    public override void Flush() => FlushAsync(CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc />
    public override Task FlushAsync(CancellationToken cancellationToken) => _lun.SynchronizeCacheAsync(cancellationToken: cancellationToken);

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        var rented = ArrayPool<byte>.Shared.Rent(buffer.Length);
        try
        {
            int n = ReadAsync(rented.AsMemory(0, buffer.Length)).AsTask().GetAwaiter().GetResult();
            rented.AsSpan(0, n).CopyTo(buffer);
            return n;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        long available = Length - _position;
        if (available <= 0 || buffer.IsEmpty)
        {
            return 0;
        }

        int count = (int)Math.Min(buffer.Length, available);
        int bs = _lun.BlockSize;
        int done = 0;
        while (done < count)
        {
            long pos = _position + done;
            int inBlock = (int)(pos % bs);
            if (inBlock == 0 && count - done >= bs)
            {
                int aligned = (count - done) / bs * bs;
                await _lun.ReadAsync(pos / bs, buffer.Slice(done, aligned), cancellationToken).ConfigureAwait(false);
                done += aligned;
                continue;
            }

            var block = ArrayPool<byte>.Shared.Rent(bs);
            try
            {
                await _lun.ReadAsync(pos / bs, block.AsMemory(0, bs), cancellationToken).ConfigureAwait(false);
                int take = Math.Min(bs - inBlock, count - done);
                block.AsMemory(inBlock, take).CopyTo(buffer[done..]);
                done += take;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(block);
            }
        }

        _position += done;
        return done;
    }

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        var copy = buffer.ToArray();
        WriteAsync(copy.AsMemory()).AsTask().GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position + buffer.Length > Length)
        {
            throw new IOException($"write of {buffer.Length} bytes at {_position} runs past the end of the {Length}-byte unit");
        }

        int bs = _lun.BlockSize;
        int done = 0;
        while (done < buffer.Length)
        {
            long pos = _position + done;
            int inBlock = (int)(pos % bs);
            if (inBlock == 0 && buffer.Length - done >= bs)
            {
                int aligned = (buffer.Length - done) / bs * bs;
                await _lun.WriteAsync(pos / bs, buffer.Slice(done, aligned), cancellationToken: cancellationToken).ConfigureAwait(false);
                done += aligned;
                continue;
            }

            // Read-modify-write of a partial block.
            var block = ArrayPool<byte>.Shared.Rent(bs);
            try
            {
                await _lun.ReadAsync(pos / bs, block.AsMemory(0, bs), cancellationToken).ConfigureAwait(false);
                int take = Math.Min(bs - inBlock, buffer.Length - done);
                buffer.Slice(done, take).CopyTo(block.AsMemory(inBlock));
                await _lun.WriteAsync(pos / bs, block.AsMemory(0, bs), cancellationToken: cancellationToken).ConfigureAwait(false);
                done += take;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(block);
            }
        }

        _position += done;
    }
}
