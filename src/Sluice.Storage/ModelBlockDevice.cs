namespace Sluice.Storage;

/// <summary>
/// A RAM-backed device that performs like a real one of known speed, for tests and demos
/// (<see cref="ModelBackendSpec"/>). An I/O of <c>b</c> bytes takes <c>max(latency, b / bandwidth)</c>
/// when the device is idle. The device has <c>P = max(1, ceil(iops x latency))</c> internal lanes, each
/// busy for <c>max(latency, P / iops)</c> per I/O, and one transfer pipe of the given bandwidth, so
/// under load its throughput saturates at the configured IOPS (small I/O) or MB/s (large I/O), and
/// latency grows with queueing, as on a real device.
/// </summary>
/// <remarks>
/// Service is booked on a schedule when the I/O arrives (earliest free lane, then the pipe) and the
/// call completes when its booked finish time has passed on the <see cref="TimeProvider"/>; the data
/// is moved then. Booking ahead means a late timer adds latency but does not lose throughput.
/// On the system clock the finish times are kept by <see cref="DeadlineTimer"/> (one thread, a
/// deadline-ordered queue, a fine sleep and a short spin: tens of microseconds late rather than
/// the milliseconds of <c>Task.Delay</c> on a loaded host); any other <see cref="TimeProvider"/>
/// (a test's fake clock) is waited on with its own timers.
/// Flush and unmap take no time. Concurrent calls are safe, like <see cref="MemoryBlockDevice"/>.
/// </remarks>
public sealed class ModelBlockDevice : IBlockDevice
{
    private readonly MemoryBlockDevice _data;
    private readonly TimeProvider _time;
    private readonly DeadlineTimer? _precise;
    private readonly Lock _lock = new();
    private readonly long[] _laneFree;
    private readonly long _laneTicks;
    private readonly long _latencyTicks;
    private readonly double _ticksPerByte;
    private long _pipeFree;

    /// <summary>Creates the device <paramref name="spec"/> describes, all zeros.</summary>
    public ModelBlockDevice(ModelBackendSpec spec, bool readOnly = false, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentOutOfRangeException.ThrowIfNegative(spec.Iops);
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.Latency, TimeSpan.Zero);
        if (!(spec.Mbps >= 0) || !double.IsFinite(spec.Mbps))
            throw new ArgumentOutOfRangeException(nameof(spec), spec.Mbps, "mbps must be a finite number >= 0");
        Spec = spec;
        _data = new MemoryBlockDevice(spec.Size, readOnly);
        _time = timeProvider ?? TimeProvider.System;
        _precise = ReferenceEquals(_time, TimeProvider.System) ? DeadlineTimer.Shared : null;
        double frequency = _time.TimestampFrequency;
        _latencyTicks = (long)Math.Ceiling(spec.Latency.TotalSeconds * frequency);
        if (spec.Iops > 0)
        {
            int lanes = (int)Math.Clamp(Math.Ceiling(spec.Iops * spec.Latency.TotalSeconds), 1, 4096);
            _laneFree = new long[lanes];
            _laneTicks = Math.Max(_latencyTicks, (long)Math.Ceiling(lanes * frequency / spec.Iops));
        }
        else
        {
            _laneFree = [];
        }
        _ticksPerByte = spec.Mbps > 0 ? frequency / (spec.Mbps * 1e6) : 0;
    }

    /// <summary>The model this device follows.</summary>
    public ModelBackendSpec Spec { get; }

    /// <summary>Internal parallelism (0 when IOPS are unlimited).</summary>
    public int Lanes => _laneFree.Length;

    /// <inheritdoc/>
    public long Length => _data.Length;

    /// <inheritdoc/>
    public bool IsReadOnly => _data.IsReadOnly;

    /// <inheritdoc/>
    public bool SupportsUnmap => _data.SupportsUnmap;

    /// <inheritdoc/>
    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        long finish = 0;
        long wait = InRange(offset, destination.Length) ? Book(destination.Length, out finish) : 0;
        return wait <= 0 ? _data.ReadAsync(offset, destination, cancellationToken) : ReadLaterAsync(wait, finish, offset, destination, cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default)
    {
        long finish = 0;
        long wait = InRange(offset, source.Length) && !IsReadOnly ? Book(source.Length, out finish) : 0;
        return wait <= 0
            ? _data.WriteAsync(offset, source, forceUnitAccess, cancellationToken)
            : WriteLaterAsync(wait, finish, offset, source, forceUnitAccess, cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => _data.FlushAsync(cancellationToken);

    /// <inheritdoc/>
    public ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        _data.UnmapAsync(offset, length, cancellationToken);

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _data.DisposeAsync();

    private bool InRange(long offset, long length) => offset >= 0 && length >= 0 && offset <= Length - length;

    /// <summary>Books an I/O of <paramref name="bytes"/>; returns the ticks until it is done (at <paramref name="finish"/>).</summary>
    private long Book(int bytes, out long finish)
    {
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            long start = now;
            int lane = -1;
            if (_laneFree.Length > 0)
            {
                lane = 0;
                for (int i = 1; i < _laneFree.Length; i++)
                {
                    if (_laneFree[i] < _laneFree[lane])
                        lane = i;
                }
                start = Math.Max(now, _laneFree[lane]);
            }
            finish = start + _latencyTicks;
            if (_ticksPerByte > 0)
            {
                _pipeFree = Math.Max(_pipeFree, start) + (long)Math.Ceiling(bytes * _ticksPerByte);
                finish = Math.Max(finish, _pipeFree);
            }
            if (lane >= 0)
                _laneFree[lane] = Math.Max(start + _laneTicks, finish);
            return finish - now;
        }
    }

    private TimeSpan ToTimeSpan(long ticks) =>
        TimeSpan.FromTicks((long)Math.Ceiling(ticks * (double)TimeSpan.TicksPerSecond / _time.TimestampFrequency));

    private Task WaitAsync(long wait, long finish, CancellationToken cancellationToken) =>
        _precise is { } precise
            ? precise.WaitUntilAsync(finish, cancellationToken)
            : Task.Delay(ToTimeSpan(wait), _time, cancellationToken);

    private async ValueTask ReadLaterAsync(long wait, long finish, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        await WaitAsync(wait, finish, cancellationToken).ConfigureAwait(false);
        await _data.ReadAsync(offset, destination, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask WriteLaterAsync(long wait, long finish, long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken)
    {
        await WaitAsync(wait, finish, cancellationToken).ConfigureAwait(false);
        await _data.WriteAsync(offset, source, forceUnitAccess, cancellationToken).ConfigureAwait(false);
    }
}
