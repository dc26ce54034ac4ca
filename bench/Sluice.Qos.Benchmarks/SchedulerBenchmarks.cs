using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;

namespace Sluice.Qos.Benchmarks;

/// <summary>
/// One request's trip through a device scheduler with <see cref="Functions"/> backlogged functions
/// (4 requests each) behind 16 slots: the back end completes the oldest outstanding request
/// (grant disposed, which tags and dispatches the next request and wakes its waiter), and the
/// function that got the completion enqueues a new request. Continuations run inline, as a real
/// back end's completion path would be measured without thread-pool hops. The scheduler's own timer
/// may dispatch too (a reservation falls due while the adaptive window is full), on a timer thread,
/// so the ring of granted requests is locked; the uncontended lock (~20 ns) is in the figure.
/// </summary>
[MemoryDiagnoser]
public class SchedulerBenchmarks
{
    private const int Depth = 4;
    private const int Slots = 16;

    private readonly (Grant Grant, Slot Slot)[] _ring = new (Grant, Slot)[256];
    private readonly Lock _ringLock = new();
    private int _head, _count;
    private QosScheduler _scheduler = null!;

    [Params(QosMode.MClock, QosMode.Fifo)]
    public QosMode Mode { get; set; }

    [Params(64)]
    public int Functions { get; set; }

    /// <summary>With the adaptive bound on outstanding cost (its window and latency samples).</summary>
    [Params(false, true)]
    public bool Adaptive { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _scheduler = new QosScheduler(new QosSchedulerOptions
        {
            Mode = Mode,
            MaxOutstanding = Slots,
            AdaptiveOutstanding = Adaptive,
            RunContinuationsAsynchronously = false,
        });
        for (int i = 0; i < Functions; i++)
        {
            // A mix: every 8th function has a reservation, weights 1..4, no limits (limits would idle the device).
            var level = new ServiceLevel { Weight = 1 + i % 4, ReservationIops = i % 8 == 0 ? 1000 : 0 };
            var function = _scheduler.RegisterFunction($"fn{i}", level);
            for (int d = 0; d < Depth; d++)
                new Slot(this, function).Issue();
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _scheduler.Dispose();

    [Benchmark(Description = "complete + enqueue + dispatch")]
    public void CompleteAndEnqueue()
    {
        Grant grant;
        Slot slot;
        var spin = default(SpinWait);
        while (true)
        {
            lock (_ringLock)
            {
                if (_count > 0)
                {
                    (grant, slot) = _ring[_head];
                    _ring[_head] = default;
                    _head = (_head + 1) % _ring.Length;
                    _count--;
                    break;
                }
            }
            spin.SpinOnce(); // every grant is out: the timer thread is about to push the next one
        }
        grant.Dispose(); // dispatches one queued request; its continuation pushes it to the ring
        slot.Issue();
    }

    private void Push(Grant grant, Slot slot)
    {
        lock (_ringLock)
        {
            _ring[(_head + _count) % _ring.Length] = (grant, slot);
            _count++;
        }
    }

    private sealed class Slot
    {
        private readonly SchedulerBenchmarks _owner;
        private readonly FunctionHandle _function;
        private readonly Action _onGranted;
        private ConfiguredValueTaskAwaitable<Grant>.ConfiguredValueTaskAwaiter _awaiter;

        public Slot(SchedulerBenchmarks owner, FunctionHandle function)
        {
            _owner = owner;
            _function = function;
            _onGranted = OnGranted;
        }

        public void Issue()
        {
            var pending = _owner._scheduler.AcquireAsync(_function, 4096);
            if (pending.IsCompleted)
            {
                _owner.Push(pending.Result, this);
                return;
            }
            _awaiter = pending.ConfigureAwait(false).GetAwaiter();
            _awaiter.UnsafeOnCompleted(_onGranted);
        }

        private void OnGranted()
        {
            try
            {
                _owner.Push(_awaiter.GetResult(), this);
            }
            catch (ObjectDisposedException)
            {
                // GlobalCleanup disposed the scheduler, which fails the waiting requests.
            }
        }
    }
}
