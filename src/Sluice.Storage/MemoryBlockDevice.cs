namespace Sluice.Storage;

/// <summary>
/// A RAM disk that allocates only what has been written. Capacity is split into fixed chunks
/// (1 MiB by default); a chunk is allocated on its first non-zero write, an unallocated chunk reads
/// as zeros, and unmapping a whole chunk frees it, so a 64 GiB LUN costs what its data costs.
/// Every call completes synchronously and allocates nothing once its chunks exist.
/// </summary>
public sealed class MemoryBlockDevice : IBlockDevice, IAllocationMap
{
    /// <summary>The default allocation unit.</summary>
    public const int DefaultChunkSize = 1 << 20;

    private readonly byte[]?[] _chunks;
    private readonly int _chunkShift;
    private readonly int _chunkMask;
    private long _allocatedBytes;
    private volatile bool _disposed;

    /// <summary>Creates a device of <paramref name="length"/> bytes, all zeros.</summary>
    public MemoryBlockDevice(long length, bool readOnly = false)
        : this(length, readOnly, DefaultChunkSize)
    {
    }

    /// <param name="chunkSize">Allocation unit; a power of two from 4 KiB to 1 GiB.</param>
    internal MemoryBlockDevice(long length, bool readOnly, int chunkSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (chunkSize < 4096 || chunkSize > (1 << 30) || !int.IsPow2(chunkSize))
            throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "chunk size must be a power of two from 4 KiB to 1 GiB");
        long count = (length + chunkSize - 1) / chunkSize;
        if (count > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(length), length, "capacity too large for the chunk size");
        Length = length;
        IsReadOnly = readOnly;
        ChunkSize = chunkSize;
        _chunkShift = int.Log2(chunkSize);
        _chunkMask = chunkSize - 1;
        _chunks = new byte[]?[count];
    }

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public bool IsReadOnly { get; }

    /// <summary>
    /// Always true: RAM is allocated chunk by chunk on first write, so the medium is thin whether
    /// or not it may be written. A write-protected thin LU still reports LBPME and answers UNMAP
    /// with DATA PROTECT (SBC-3 4.7.3.1, 5.28); the device itself refuses <see cref="UnmapAsync"/>
    /// when read-only.
    /// </summary>
    public bool SupportsUnmap => true;

    /// <summary>Allocation unit in bytes.</summary>
    public int ChunkSize { get; }

    /// <summary>Bytes of RAM held by allocated chunks.</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    /// <inheritdoc/>
    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (Check(offset, destination.Length, write: false, cancellationToken) is { } failure)
            return ValueTask.FromException(failure);

        var dest = destination.Span;
        while (!dest.IsEmpty)
        {
            long index = offset >> _chunkShift;
            int within = (int)(offset & _chunkMask);
            int n = Math.Min(dest.Length, ChunkSize - within);
            var chunk = Volatile.Read(ref _chunks[index]);
            if (chunk is null)
                dest[..n].Clear();
            else
                chunk.AsSpan(within, n).CopyTo(dest);
            dest = dest[n..];
            offset += n;
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default)
    {
        if (Check(offset, source.Length, write: true, cancellationToken) is { } failure)
            return ValueTask.FromException(failure);

        var src = source.Span;
        while (!src.IsEmpty)
        {
            long index = offset >> _chunkShift;
            int within = (int)(offset & _chunkMask);
            int n = Math.Min(src.Length, ChunkSize - within);
            var part = src[..n];
            var chunk = Volatile.Read(ref _chunks[index]);
            // Zeros into an unallocated chunk change nothing (WRITE SAME of zeros stays thin).
            if (chunk is not null || part.ContainsAnyExcept((byte)0))
                part.CopyTo((chunk ?? Allocate(index)).AsSpan(within, n));
            src = src[n..];
            offset += n;
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
        _disposed ? ValueTask.FromException(new ObjectDisposedException(nameof(MemoryBlockDevice))) : ValueTask.CompletedTask;

    /// <inheritdoc/>
    public ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        if (Check(offset, length, write: true, cancellationToken) is { } failure)
            return ValueTask.FromException(failure);

        long end = offset + length;
        while (offset < end)
        {
            long index = offset >> _chunkShift;
            int within = (int)(offset & _chunkMask);
            long chunkEnd = Math.Min((index + 1) << _chunkShift, Length);
            int n = (int)(Math.Min(end, chunkEnd) - offset);
            if (within == 0 && offset + n == chunkEnd)
            {
                // The whole chunk is in the range, so no concurrent (non-overlapping) call touches it.
                if (Interlocked.Exchange(ref _chunks[index], null) is { } freed)
                    Interlocked.Add(ref _allocatedBytes, -freed.Length);
            }
            else if (Volatile.Read(ref _chunks[index]) is { } chunk)
            {
                chunk.AsSpan(within, n).Clear();
            }
            offset += n;
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<(long Offset, long Length, bool Mapped)>> GetAllocationAsync(
        long offset, long length, CancellationToken cancellationToken = default)
    {
        if (Check(offset, length, write: false, cancellationToken) is { } failure)
            return ValueTask.FromException<IReadOnlyList<(long, long, bool)>>(failure);

        var extents = new List<(long Offset, long Length, bool Mapped)>();
        long end = offset + length;
        while (offset < end)
        {
            long index = offset >> _chunkShift;
            long next = Math.Min((index + 1) << _chunkShift, end);
            bool mapped = Volatile.Read(ref _chunks[index]) is not null;
            if (extents.Count > 0 && extents[^1].Mapped == mapped)
                extents[^1] = (extents[^1].Offset, next - extents[^1].Offset, mapped);
            else
                extents.Add((offset, next - offset, mapped));
            offset = next;
        }
        return ValueTask.FromResult<IReadOnlyList<(long, long, bool)>>(extents);
    }

    /// <summary>Frees all chunks; later calls fail with <see cref="ObjectDisposedException"/>.</summary>
    public ValueTask DisposeAsync()
    {
        _disposed = true;
        for (int i = 0; i < _chunks.Length; i++)
            Volatile.Write(ref _chunks[i], null);
        Interlocked.Exchange(ref _allocatedBytes, 0);
        return ValueTask.CompletedTask;
    }

    private byte[] Allocate(long index)
    {
        var fresh = new byte[ChunkSize];
        var existing = Interlocked.CompareExchange(ref _chunks[index], fresh, null);
        if (existing is not null)
            return existing; // a concurrent writer to another part of the chunk won the race
        Interlocked.Add(ref _allocatedBytes, fresh.Length);
        return fresh;
    }

    private Exception? Check(long offset, long length, bool write, CancellationToken cancellationToken)
    {
        if (_disposed)
            return new ObjectDisposedException(nameof(MemoryBlockDevice));
        if (cancellationToken.IsCancellationRequested)
            return new OperationCanceledException(cancellationToken);
        if (write && IsReadOnly)
            return new InvalidOperationException("memory device is read-only");
        if (offset < 0 || length < 0 || offset > Length - length)
            return new ArgumentOutOfRangeException(nameof(offset), $"range [{offset}, +{length}) is outside the device (length {Length})");
        return null;
    }
}
