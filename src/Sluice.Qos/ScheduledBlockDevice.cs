using System.Runtime.CompilerServices;
using Sluice.Storage;

namespace Sluice.Qos;

/// <summary>
/// One function's view of a shared back end: every read and write first waits for the function's
/// turn in the device's <see cref="QosScheduler"/> and holds its slot until the back end is done.
/// Reads and writes cost their length; unmap and flush cost one I/O (size 0), since they move no data.
/// Disposing this view does not dispose the shared device.
/// </summary>
public sealed class ScheduledBlockDevice : IBlockDevice
{
    private readonly IBlockDevice _inner;
    private readonly QosScheduler _scheduler;
    private readonly FunctionHandle _function;

    /// <summary>Wraps <paramref name="inner"/> for <paramref name="function"/> of <paramref name="scheduler"/>.</summary>
    public ScheduledBlockDevice(IBlockDevice inner, QosScheduler scheduler, FunctionHandle function)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _scheduler = scheduler ?? throw new ArgumentNullException(nameof(scheduler));
        _function = function ?? throw new ArgumentNullException(nameof(function));
        if (!ReferenceEquals(function.Owner, scheduler))
            throw new ArgumentException($"function '{function.Name}' belongs to another scheduler", nameof(function));
    }

    /// <inheritdoc/>
    public long Length => _inner.Length;

    /// <inheritdoc/>
    public bool IsReadOnly => _inner.IsReadOnly;

    /// <inheritdoc/>
    public bool SupportsUnmap => _inner.SupportsUnmap;

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        using var grant = await _scheduler.AcquireAsync(_function, destination.Length, cancellationToken).ConfigureAwait(false);
        await _inner.ReadAsync(offset, destination, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default)
    {
        using var grant = await _scheduler.AcquireAsync(_function, source.Length, cancellationToken).ConfigureAwait(false);
        await _inner.WriteAsync(offset, source, forceUnitAccess, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        using var grant = await _scheduler.AcquireAsync(_function, 0, cancellationToken).ConfigureAwait(false);
        await _inner.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        using var grant = await _scheduler.AcquireAsync(_function, 0, cancellationToken).ConfigureAwait(false);
        await _inner.UnmapAsync(offset, length, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Nothing to release: the shared device belongs to whoever created it.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
