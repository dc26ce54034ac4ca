namespace Sluice.Storage.Tests;

/// <summary>
/// A manual clock for <see cref="ModelBlockDevice"/> tests: time moves only in <see cref="Advance"/>,
/// which fires due timers in order with the clock set to each one's due time.
/// </summary>
internal sealed class ModelBlockDeviceClock : TimeProvider
{
    private readonly Lock _lock = new();
    private readonly List<Timer> _timers = [];
    private long _now = 1_000_000;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp()
    {
        lock (_lock)
            return _now;
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new Timer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    public void Advance(TimeSpan delta)
    {
        long end;
        lock (_lock)
            end = _now + delta.Ticks;
        while (true)
        {
            Timer? next = null;
            lock (_lock)
            {
                foreach (var t in _timers)
                {
                    if (t.Due <= end && (next is null || t.Due < next.Due))
                        next = t;
                }
                if (next is null)
                {
                    _now = end;
                    return;
                }
                _now = Math.Max(_now, next.Due);
                _timers.Remove(next);
            }
            next.Fire();
        }
    }

    private sealed class Timer(ModelBlockDeviceClock clock, TimerCallback callback, object? state) : ITimer
    {
        public long Due { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (clock._lock)
            {
                clock._timers.Remove(this);
                if (dueTime == Timeout.InfiniteTimeSpan)
                    return true;
                Due = clock._now + dueTime.Ticks;
                clock._timers.Add(this);
            }
            return true;
        }

        public void Fire() => callback(state);

        public void Dispose() => Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
