using System.Diagnostics;
using System.Runtime.CompilerServices;
using Sluice.Storage;

namespace Sluice.Qos;

/// <summary>
/// One function's view of a shared back end: every read and write first waits for the function's
/// turn in the device's <see cref="QosScheduler"/> and holds its slot until the back end is done.
/// Reads and writes cost their length; unmap and flush cost one I/O (size 0), since they move no data.
/// A read or write longer than <see cref="SplitBytes"/> is run as parts of at most that size, one
/// after another, each waiting for its turn (<see cref="QosScheduler.AcquirePartAsync"/>): the device
/// serves a transfer's bytes in order, so an unsplit 1 MiB write would keep every small read queued
/// behind it for its whole transfer time, whatever the scheduler's order. Data still moves straight
/// between the caller's buffer and the device (a part is a slice of it).
/// Disposing this view does not dispose the shared device.
/// </summary>
public sealed class ScheduledBlockDevice : IBlockDevice, IAllocationMap
{
    private readonly IBlockDevice _inner;
    private readonly QosScheduler _scheduler;
    private readonly FunctionHandle _function;
    private readonly bool _timed;

    /// <summary>Wraps <paramref name="inner"/> for <paramref name="function"/> of <paramref name="scheduler"/>.</summary>
    /// <param name="inner">The shared device.</param>
    /// <param name="scheduler">Its scheduler.</param>
    /// <param name="function">The function this view charges.</param>
    /// <param name="splitBytes">Reads and writes longer than this go in parts; 0 = never.</param>
    /// <param name="timed">
    /// Record each I/O's latency (enqueue to completion) for the function; false when the caller
    /// reports latencies of its own (<see cref="QosScheduler.RecordLatency"/>), as the target does per command.
    /// </param>
    public ScheduledBlockDevice(IBlockDevice inner, QosScheduler scheduler, FunctionHandle function, int splitBytes = 0, bool timed = true)
    {
        _timed = timed;
        ArgumentOutOfRangeException.ThrowIfNegative(splitBytes);
        SplitBytes = splitBytes;
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _scheduler = scheduler ?? throw new ArgumentNullException(nameof(scheduler));
        _function = function ?? throw new ArgumentNullException(nameof(function));
        if (!ReferenceEquals(function.Owner, scheduler))
            throw new ArgumentException($"function '{function.Name}' belongs to another scheduler", nameof(function));
    }

    /// <summary>Reads and writes longer than this are split into parts of at most this many bytes; 0 = never split.</summary>
    public int SplitBytes { get; }

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
        if (SplitBytes == 0 || destination.Length <= SplitBytes)
        {
            var grant = await _scheduler.AcquireAsync(_function, destination.Length, cancellationToken).ConfigureAwait(false);
            try
            {
                await _inner.ReadAsync(offset, destination, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                End(grant);
            }
            return;
        }
        long start = Stopwatch.GetTimestamp();
        for (int done = 0; done < destination.Length;)
        {
            int length = Math.Min(SplitBytes, destination.Length - done);
            var grant = await _scheduler.AcquirePartAsync(_function, length, first: done == 0, cancellationToken).ConfigureAwait(false);
            try
            {
                await _inner.ReadAsync(offset + done, destination.Slice(done, length), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                EndPart(grant, last: true, start); // the I/O ends here: count it
                throw;
            }
            done += length;
            EndPart(grant, last: done == destination.Length, start);
        }
    }

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default)
    {
        if (SplitBytes == 0 || source.Length <= SplitBytes)
        {
            var grant = await _scheduler.AcquireAsync(_function, source.Length, cancellationToken).ConfigureAwait(false);
            try
            {
                await _inner.WriteAsync(offset, source, forceUnitAccess, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                End(grant);
            }
            return;
        }
        long start = Stopwatch.GetTimestamp();
        for (int done = 0; done < source.Length;)
        {
            int length = Math.Min(SplitBytes, source.Length - done);
            var grant = await _scheduler.AcquirePartAsync(_function, length, first: done == 0, cancellationToken).ConfigureAwait(false);
            try
            {
                // FUA on every part: the command's data is durable when the last part is (SBC-3 5.40).
                await _inner.WriteAsync(offset + done, source.Slice(done, length), forceUnitAccess, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                EndPart(grant, last: true, start); // the I/O ends here: count it
                throw;
            }
            done += length;
            EndPart(grant, last: done == source.Length, start);
        }
    }

    /// <summary>Ends a whole I/O: counted, and timed from its enqueue unless the caller times its own.</summary>
    private void End(Grant grant)
    {
        if (_timed)
            grant.Dispose();
        else
            grant.CompleteUntimed();
    }

    /// <summary>Ends a part: the last one counts the I/O (with the whole I/O's latency when timed).</summary>
    private void EndPart(Grant grant, bool last, long start)
    {
        if (!last)
            grant.Dispose();
        else if (_timed)
            grant.Complete(Stopwatch.GetElapsedTime(start));
        else
            grant.CompleteUntimed();
    }

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        var grant = await _scheduler.AcquireAsync(_function, 0, cancellationToken).ConfigureAwait(false);
        try
        {
            await _inner.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            End(grant);
        }
    }

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        var grant = await _scheduler.AcquireAsync(_function, 0, cancellationToken).ConfigureAwait(false);
        try
        {
            await _inner.UnmapAsync(offset, length, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            End(grant);
        }
    }

    /// <summary>
    /// The inner device's allocation map, not scheduled (a metadata lookup, not a transfer); all
    /// mapped when the inner device has none.
    /// </summary>
    public ValueTask<IReadOnlyList<(long Offset, long Length, bool Mapped)>> GetAllocationAsync(
        long offset, long length, CancellationToken cancellationToken = default) =>
        _inner is IAllocationMap map
            ? map.GetAllocationAsync(offset, length, cancellationToken)
            : ValueTask.FromResult<IReadOnlyList<(long Offset, long Length, bool Mapped)>>([(offset, length, true)]);

    /// <summary>Nothing to release: the shared device belongs to whoever created it.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
