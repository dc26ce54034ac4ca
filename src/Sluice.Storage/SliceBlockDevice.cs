namespace Sluice.Storage;

/// <summary>
/// A window <c>[Offset, Offset + Length)</c> of another device, so several logical units can be
/// carved out of one shared device (config <c>device:NAME[:OFFSET]:SIZE</c>). Every call is
/// checked against the window before it reaches the inner device, so a slice can never read or
/// write its neighbours. The inner device is not owned: disposing a slice leaves it open.
/// </summary>
public sealed class SliceBlockDevice : IBlockDevice, IAllocationMap
{
    private readonly IBlockDevice _inner;
    private readonly bool _writeThrough;
    private bool _disposed;

    /// <summary>Creates the window; it must lie inside <paramref name="inner"/>.</summary>
    /// <param name="inner">The shared device.</param>
    /// <param name="offset">First byte of the window on the inner device.</param>
    /// <param name="length">Window size in bytes, greater than 0.</param>
    /// <param name="readOnly">Refuse writes and unmaps through this window.</param>
    /// <param name="writeThrough">Pass every write down with force-unit-access.</param>
    public SliceBlockDevice(IBlockDevice inner, long offset, long length, bool readOnly = false, bool writeThrough = false)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (offset > inner.Length - length)
        {
            throw new ArgumentOutOfRangeException(
                nameof(length), $"slice [{offset}, +{length}) does not fit the device (length {inner.Length})");
        }

        _inner = inner;
        Offset = offset;
        Length = length;
        IsReadOnly = readOnly || inner.IsReadOnly;
        _writeThrough = writeThrough;
    }

    /// <summary>Where the window starts on the inner device.</summary>
    public long Offset { get; }

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public bool IsReadOnly { get; }

    /// <inheritdoc/>
    public bool SupportsUnmap => !IsReadOnly && _inner.SupportsUnmap;

    /// <inheritdoc/>
    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default) =>
        Check(offset, destination.Length, write: false) is { } failure
            ? ValueTask.FromException(failure)
            : _inner.ReadAsync(Offset + offset, destination, cancellationToken);

    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default) =>
        Check(offset, source.Length, write: true) is { } failure
            ? ValueTask.FromException(failure)
            : _inner.WriteAsync(Offset + offset, source, forceUnitAccess || _writeThrough, cancellationToken);

    /// <summary>Flushes the whole inner device (a device cache has no per-range flush).</summary>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) =>
        _disposed ? ValueTask.FromException(new ObjectDisposedException(nameof(SliceBlockDevice))) : _inner.FlushAsync(cancellationToken);

    /// <inheritdoc/>
    public ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        Check(offset, length, write: true) is { } failure
            ? ValueTask.FromException(failure)
            : _inner.UnmapAsync(Offset + offset, length, cancellationToken);

    /// <summary>The inner device's map, shifted into the window; all mapped when it has none.</summary>
    public async ValueTask<IReadOnlyList<(long Offset, long Length, bool Mapped)>> GetAllocationAsync(
        long offset, long length, CancellationToken cancellationToken = default)
    {
        if (Check(offset, length, write: false) is { } failure)
            throw failure;
        if (_inner is not IAllocationMap map)
            return [(offset, length, true)];

        var inner = await map.GetAllocationAsync(Offset + offset, length, cancellationToken).ConfigureAwait(false);
        var extents = new List<(long Offset, long Length, bool Mapped)>(inner.Count);
        foreach (var (o, l, m) in inner)
            extents.Add((o - Offset, l, m));
        return extents;
    }

    /// <summary>Closes the window only; the inner device belongs to whoever opened it.</summary>
    public ValueTask DisposeAsync()
    {
        _disposed = true;
        return ValueTask.CompletedTask;
    }

    private Exception? Check(long offset, long length, bool write)
    {
        if (_disposed)
            return new ObjectDisposedException(nameof(SliceBlockDevice));
        if (write && IsReadOnly)
            return new InvalidOperationException("slice is read-only");
        if (offset < 0 || length < 0 || offset > Length - length)
            return new ArgumentOutOfRangeException(nameof(offset), $"range [{offset}, +{length}) is outside the slice (length {Length})");
        return null;
    }
}
