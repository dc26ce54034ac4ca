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
    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default) =>
        TransferAsync(offset, destination, default, write: false, forceUnitAccess: false, cancellationToken);

    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default) =>
        TransferAsync(offset, default, source, write: true, forceUnitAccess, cancellationToken);

    /// <summary>
    /// A read into <paramref name="destination"/> or a write from <paramref name="source"/>: whole,
    /// or in parts of <see cref="SplitBytes"/> one after another, each waiting its turn.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask TransferAsync(long offset, Memory<byte> destination, ReadOnlyMemory<byte> source, bool write, bool forceUnitAccess, CancellationToken cancellationToken)
    {
        int total = write ? source.Length : destination.Length;
        bool split = SplitBytes > 0 && total > SplitBytes;
        long start = Stopwatch.GetTimestamp();
        int done = 0;
        do // once for a zero-length transfer too, as unsplit
        {
            int length = split ? Math.Min(SplitBytes, total - done) : total;
            var grant = split
                ? await _scheduler.AcquirePartAsync(_function, length, first: done == 0, cancellationToken).ConfigureAwait(false)
                : await _scheduler.AcquireAsync(_function, length, cancellationToken).ConfigureAwait(false);
            try
            {
                // FUA on every part: the command's data is durable when the last part is (SBC-3 5.40).
                if (write)
                    await _inner.WriteAsync(offset + done, source.Slice(done, length), forceUnitAccess, cancellationToken).ConfigureAwait(false);
                else
                    await _inner.ReadAsync(offset + done, destination.Slice(done, length), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                End(grant, split, last: true, start); // the I/O ends here: count it
                throw;
            }
            done += length;
            End(grant, split, last: done == total, start);
        }
        while (done < total);
    }

    /// <summary>
    /// Ends a whole I/O or a part: a whole I/O, or the last part, counts the I/O — timed (a whole one
    /// from its enqueue, a split one with its whole latency) unless the caller times its own.
    /// </summary>
    private void End(Grant grant, bool split, bool last, long start)
    {
        if (split && !last)
            grant.Dispose();
        else if (!_timed)
            grant.CompleteUntimed();
        else if (split)
            grant.Complete(Stopwatch.GetElapsedTime(start));
        else
            grant.Dispose();
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
            End(grant, split: false, last: true, 0);
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
            End(grant, split: false, last: true, 0);
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
