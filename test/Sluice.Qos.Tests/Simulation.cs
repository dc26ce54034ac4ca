using Microsoft.Extensions.Time.Testing;

namespace Sluice.Qos.Tests;

/// <summary>
/// A discrete-time model of a back end behind a <see cref="QosScheduler"/> on a fake clock: closed-loop
/// clients keep a fixed number of requests in flight, the device serves each dispatched request in a
/// fixed time with <c>MaxOutstanding</c> in parallel, so its capacity is <c>MaxOutstanding / service</c>.
/// With <see cref="Lanes"/> set, the device instead has that many servers and its own FIFO queue
/// (a request waits for the earliest free lane), like a real device with a deep queue.
/// Continuations run inline, so the whole run is deterministic.
/// </summary>
internal sealed class Simulation : IDisposable
{
    private readonly PriorityQueue<(Grant Grant, Client Client), long> _device = new();
    private long[] _laneFree = [];

    public Simulation(int maxOutstanding = 8, TimeSpan? service = null, QosMode mode = QosMode.MClock,
        Func<QosSchedulerOptions, QosSchedulerOptions>? configure = null)
    {
        var options = new QosSchedulerOptions
        {
            Mode = mode,
            MaxOutstanding = maxOutstanding,
            TimeProvider = Time,
            RunContinuationsAsynchronously = false,
        };
        Scheduler = new QosScheduler(configure is null ? options : configure(options));
        Service = service ?? TimeSpan.FromMilliseconds(1);
        Start = Time.GetTimestamp();
    }

    public FakeTimeProvider Time { get; } = new();

    public QosScheduler Scheduler { get; }

    /// <summary>Device service time of one request (any size).</summary>
    public TimeSpan Service { get; set; }

    /// <summary>Device servers with a FIFO queue in front (0: every dispatched request is served at once).</summary>
    public int Lanes
    {
        get => _laneFree.Length;
        set => _laneFree = new long[value];
    }

    /// <summary>Dispatch-to-completion times of completed requests, in seconds, by client.</summary>
    public double DeviceSeconds(Client c) => c.DeviceTicks / (double)Time.TimestampFrequency;

    /// <summary>Clock step; completions are delivered on step boundaries.</summary>
    public TimeSpan Step { get; set; } = TimeSpan.FromMicroseconds(100);

    public TimeSpan Elapsed => Time.GetElapsedTime(Start);

    private long Start { get; }

    public Client AddClient(string name, ServiceLevel level, int bytes = 4096, int depth = 16) =>
        new(this, Scheduler.RegisterFunction(name, level), bytes, depth);

    /// <summary>Advances the clock by <paramref name="duration"/>, serving completions as they fall due.</summary>
    public void Run(TimeSpan duration)
    {
        long end = Time.GetTimestamp() + (long)(duration.TotalSeconds * Time.TimestampFrequency);
        while (Time.GetTimestamp() < end)
        {
            Time.Advance(Step);
            long now = Time.GetTimestamp();
            while (_device.TryPeek(out var item, out long due) && due <= now)
            {
                _device.Dequeue();
                item.Grant.Dispose();
                item.Client.OnCompleted(now);
            }
        }
    }

    public void Dispose() => Scheduler.Dispose();

    internal sealed class Client
    {
        private readonly Simulation _sim;
        private readonly List<long> _completions = [];
        private int _inFlight;

        public Client(Simulation sim, FunctionHandle function, int bytes, int depth)
        {
            _sim = sim;
            Function = function;
            Bytes = bytes;
            Depth = depth;
        }

        public FunctionHandle Function { get; }

        public int Bytes { get; set; }

        public int Depth { get; set; }

        public bool Running { get; private set; }

        public long Issued { get; private set; }

        public long Completed => _completions.Count;

        /// <summary>Sum of dispatch-to-completion ticks of this client's requests.</summary>
        public long DeviceTicks { get; set; }

        public List<Grant> Grants { get; } = [];

        public void Start()
        {
            Running = true;
            while (_inFlight < Depth)
                Issue();
        }

        public void Stop() => Running = false;

        /// <summary>Completions in [from, to) of the simulated clock.</summary>
        public int CompletedBetween(TimeSpan from, TimeSpan to)
        {
            long a = (long)(from.TotalSeconds * _sim.Time.TimestampFrequency);
            long b = (long)(to.TotalSeconds * _sim.Time.TimestampFrequency);
            return _completions.Count(t => t >= a && t < b);
        }

        public double Iops(TimeSpan from, TimeSpan to) => CompletedBetween(from, to) / (to - from).TotalSeconds;

        internal void OnCompleted(long now)
        {
            _completions.Add(now - _sim.Start);
            _inFlight--;
            if (Running && _inFlight < Depth)
                Issue();
        }

        private void Issue()
        {
            _inFlight++;
            Issued++;
            var pending = _sim.Scheduler.AcquireAsync(Function, Bytes);
            if (pending.IsCompleted)
            {
                OnGranted(pending.Result);
                return;
            }
            // ConfigureAwait(false): no synchronization context, so the continuation runs inline
            // when the scheduler dispatches it, on the simulation's thread.
            var awaiter = pending.ConfigureAwait(false).GetAwaiter();
            awaiter.UnsafeOnCompleted(() =>
            {
                try
                {
                    OnGranted(awaiter.GetResult());
                }
                catch (ObjectDisposedException)
                {
                    // The simulation is over.
                }
            });
        }

        private void OnGranted(Grant grant)
        {
            long now = _sim.Time.GetTimestamp();
            long service = (long)(_sim.Service.TotalSeconds * _sim.Time.TimestampFrequency);
            long due = now + service;
            var lanes = _sim._laneFree;
            if (lanes.Length > 0)
            {
                int lane = 0;
                for (int i = 1; i < lanes.Length; i++)
                {
                    if (lanes[i] < lanes[lane])
                        lane = i;
                }
                due = Math.Max(now, lanes[lane]) + service;
                lanes[lane] = due;
            }
            DeviceTicks += due - now;
            _sim._device.Enqueue((grant, this), due);
        }
    }
}

internal static class GrantExtensions
{
    /// <summary>The grant of a request the scheduler has already dispatched.</summary>
    public static Grant Done(this ValueTask<Grant> pending)
    {
        Assert.True(pending.IsCompleted, "request not dispatched");
        return pending.Result;
    }
}
