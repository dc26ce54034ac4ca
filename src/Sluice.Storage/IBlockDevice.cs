namespace Sluice.Storage;

/// <summary>
/// A byte-addressed storage device behind a logical unit. Offsets and lengths are in bytes; the
/// logical unit above decides the block size and checks ranges before it calls. Implementations
/// are safe for concurrent calls on non-overlapping ranges.
/// </summary>
public interface IBlockDevice : IAsyncDisposable
{
    /// <summary>Capacity in bytes.</summary>
    long Length { get; }

    /// <summary>True when the device cannot be written (opened read-only).</summary>
    bool IsReadOnly { get; }

    /// <summary>True when <see cref="UnmapAsync"/> really deallocates (thin provisioning).</summary>
    bool SupportsUnmap { get; }

    /// <summary>Reads exactly <c>destination.Length</c> bytes at <paramref name="offset"/>.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes <paramref name="source"/> at <paramref name="offset"/>. With
    /// <paramref name="forceUnitAccess"/> the bytes are on stable storage when the task completes.
    /// </summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default);

    /// <summary>Makes every completed write durable (SYNCHRONIZE CACHE).</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>Deallocates a range; it reads back as zeros afterwards.</summary>
    ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default);
}
