namespace Sluice.Qos;

/// <summary>
/// One device's I/O scheduler: an mClock tag scheduler (Gulati, Merchant, Varman, "mClock: Handling
/// Throughput Variability for Hypervisor IO Scheduling", OSDI 2010) in front of a back end that is
/// allowed <see cref="MaxOutstanding"/> requests at once.
/// </summary>
/// <remarks>
/// <para><b>Tags.</b> Each function's requests wait in arrival order; the request at the head of a
/// function's queue carries three tags, computed when it reaches the head (so a service-level change
/// applies to the very next tag) from the previous request's tags and the request's arrival time
/// <c>t</c>:
/// <c>R = max(R' + dR, t - B)</c>, <c>L = max(L' + dL, t)</c>, <c>P = P' + cost / weight</c>, where
/// <c>B</c> is <see cref="QosSchedulerOptions.ReservationBurst"/> (10 ms of unused reservation carry over,
/// so a closed-loop client is not paced below its reservation; the paper has <c>B = 0</c>).
/// <c>dR</c> and <c>dL</c> are in real time: the reservation spacing is the smaller of
/// <c>1/ReservationIops</c> and <c>bytes/ReservationBytesPerSecond</c> (a reservation is met by either
/// figure), the limit spacing the larger of <c>1/LimitIops</c> and <c>bytes/LimitBytesPerSecond</c>
/// (both limits hold). The proportional cost is <c>1 + bytes / CostUnitBytes</c> (64 KiB by default):
/// one unit per I/O plus one per 64 KiB moved, so a 4 KiB read costs 1.06 and a 1 MiB read 17.
/// An I/O that the caller runs as several parts (<see cref="AcquirePartAsync"/>, so that a long
/// transfer does not hold the device while other functions' small requests wait behind it) is tagged
/// part by part with the per-I/O terms (<c>1/ReservationIops</c>, <c>1/LimitIops</c>, the fixed unit)
/// on its first part only: split or not, it costs the same.</para>
/// <para><b>Dispatch</b>, whenever a slot is free: first the constraint phase, the head with the
/// smallest <c>R &lt;= now</c>; otherwise the weight phase, the head with the smallest <c>P</c> among
/// functions whose <c>L &lt;= now</c>. A request sent in the weight phase moves its function's later
/// reservation tags back by its <c>dR</c> (paper, section 3.1), so it is not counted twice. If nothing is
/// eligible (every backlogged function is at its limit and none is due a reservation) the device is
/// left idle and a timer wakes the scheduler at the earliest tag; otherwise it is work-conserving.</para>
/// <para><b>Idle functions earn no credit.</b> <c>R</c> and <c>L</c> never fall behind the arrival time;
/// when a function becomes backlogged again its <c>P</c> is raised to the smallest <c>P</c> among the
/// functions already backlogged (or to the last <c>P</c> dispatched by weight when there are none).</para>
/// <para><b>Latency targets and priority</b> (like Linux io.latency): latencies (enqueue to completion)
/// go into a log-linear histogram per function, kept as <see cref="QosSchedulerOptions.LatencyWindowSlices"/>
/// slices of the <see cref="QosSchedulerOptions.LatencyWindow"/>. When a slice closes, it is pooled
/// into each target function's pending samples; a function with at least
/// <see cref="QosSchedulerOptions.LatencyMinSamples"/> pending (or a whole window of them, or a
/// slice without completions) is judged
/// and has missed if their p99 is above its <see cref="ServiceLevel.LatencyTargetMs"/>; on a
/// judgement every function of lower <see cref="ServiceLevel.Priority"/> than the highest-priority
/// miss is held back, all of them together: their weight-phase dispatches share one rate, in cost
/// units (the proportional cost above) per second, which starts at the rate they completed since the
/// previous judgement and is scaled by <see cref="QosSchedulerOptions.HoldBackDecrease"/> per missed
/// judgement, down to <see cref="QosSchedulerOptions.HoldBackMinScale"/> (and never below
/// <see cref="QosSchedulerOptions.HoldBackMinIops"/> units per second), and raised by
/// <see cref="QosSchedulerOptions.HoldBackRecovery"/> per judgement without a miss (or slice in which
/// no target function has completions), back to 1 (no hold). Each weight dispatch of a held function
/// books its cost on that shared rate, and which held function goes is still decided by the
/// proportional tags, so the held functions keep their weights relative to one another (a cap per
/// function, from each one's own recent rate, would freeze whatever split the moment of the miss had);
/// up to 5 ms of unused rate carries over, since dispatch chances come when slots free up. When the
/// hold ends, held functions get no credit for it: their proportional tags are raised to the smallest
/// tag of the others, as for a function returning from idle.
/// A function that completed less than its reservation (plus 5%) in a slice while it had work all
/// along (requests outstanding or queued, and completions) counts as a miss at its priority too,
/// which cuts the held rate by the share it fell short rather than by half: a
/// closed-loop client with a few commands in flight has nothing queued for its reservation tags to
/// put first, so its rate is 4 ÷ its latency at QD4, which the others' load sets.
/// Reservations are never held back.</para>
/// <para><b>Adaptive bound</b> (<see cref="QosSchedulerOptions.AdaptiveOutstanding"/>; in the spirit of
/// TCP Vegas and of PARDA, Gulati, Ahmad, Waldspurger, FAST 2009): a request is sent only while the
/// cost outstanding at the back end (<c>1 + bytes / CostUnitBytes</c> per request) is below a window
/// <c>W</c>, so that requests wait here, in the scheduler's order, rather than in the device's own
/// queue (a large request may take the outstanding cost above <c>W</c>; nothing else is sent until
/// it drops below again; a request due by its reservation is sent even then, at the next
/// completion). Once per slice, the mean dispatch-to-completion time of the slice's small
/// requests (512 bytes to <c>CostUnitBytes</c>: their time is latency rather than transfer, and a
/// command without a block of data may never reach the device) is compared
/// with the base, the smallest slice median of small requests over the last ten latency windows
/// (like BBR's minimum round-trip time; the slices at the minimum window measure it): above
/// <c>base x (1 + AdaptiveLatencyTolerance)</c> the device is queueing and <c>W</c> moves half-way to
/// <c>W x (1 + tolerance) / ratio</c> (not below <see cref="QosSchedulerOptions.AdaptiveMinCost"/>);
/// within it, and if <c>W</c> held a request back during the slice, <c>W</c> grows towards the same
/// figure by at least one unit and at most a quarter. Slices without enough small completions grow
/// <c>W</c> by one unit if it held requests back (nothing to protect). <c>W</c> starts at the
/// minimum (so the first slices see the device unloaded), and once per ten windows one slice runs
/// at the minimum again to re-measure the base (like BBR's ProbeRTT), which would otherwise creep
/// up under constant load. Work conservation: the window
/// only holds requests back while the device already has enough to keep its latency at the
/// tolerated level, and grows whenever it binds without raising latency.</para>
/// <para><b>Cost.</b> One lock per device; a scan over the backlogged functions per dispatch
/// (O(backlogged functions)); request objects are pooled and awaited through
/// <see cref="System.Threading.Tasks.Sources.ManualResetValueTaskSourceCore{TResult}"/>, so steady state
/// allocates nothing. Dispatched callers are woken after the lock is released.</para>
/// </remarks>
public sealed class QosScheduler : IDisposable
{
    private static readonly Action<object?, CancellationToken> s_cancel =
        static (state, token) => ((QosRequest)state!).Scheduler.Cancel((QosRequest)state, token);

    private readonly Lock _lock = new();
    private readonly QosSchedulerOptions _options;
    private readonly TimeProvider _time;
    private readonly SchedulerConstants _k;
    private readonly bool _fifo;
    private readonly long _origin;
    private readonly Dictionary<string, FunctionHandle> _byName = new(StringComparer.Ordinal);
    private readonly List<FunctionHandle> _functions = [];
    private readonly ITimer _timer;
    private readonly long _sliceTicks;

    // Backlogged functions and, at the same index, their heads' tags: the dispatch scan reads the
    // dense tag array only.
    private FunctionHandle[] _active = new FunctionHandle[16];
    private HeadTags[] _tags = new HeadTags[16];
    private int _activeCount;
    private QosRequest[] _pool = new QosRequest[64];
    private int _poolCount;
    private QosRequest? _fifoHead, _fifoTail;
    private int _maxOutstanding, _outstanding, _queued;
    private double _virtualTime;
    private long _timerDue = long.MaxValue;
    private long _sliceEnd;
    private int _slice;
    private int _holdSlices;

    // Hold-back (class remarks): functions of priority below _heldBelow share one weight-phase rate,
    // _holdRate = max(_holdBaseCost x _holdScale, HoldBackMinIops) cost units per second, booked on _holdNext.
    private bool _holding;
    private int _heldBelow;
    private double _holdScale = 1, _holdBaseCost, _holdRate, _holdNext;
    private readonly double _holdBurstTicks;
    private bool _disposed;

    // Adaptive bound (class remarks); _window is +infinity when the bound is fixed.
    private readonly bool _adaptive;
    private double _window = double.PositiveInfinity;
    private double _outstandingCost;
    private bool _windowBound;
    private double _smallSum;
    private int _smallCount;
    private readonly LatencyHistogram _smallSlice = new();
    private readonly double[] _baseRing = [];
    private int _baseCount, _baseNext;
    private double _baseLatency;
    private int _slicesSinceProbe;
    private bool _probing;
    private double _windowBeforeProbe;

    /// <summary>A function in a slice under (1 + this) x its reservation counts as in deficit (class remarks, hold-back).</summary>
    internal const double ReservationDeficitMargin = 0.05;

    /// <summary>Unused held rate carried over at most (class remarks, hold-back).</summary>
    internal static readonly TimeSpan HoldBurst = TimeSpan.FromMilliseconds(5);

    /// <summary>Small completions a slice needs before the adaptive controller judges it.</summary>
    internal const int AdaptiveMinSamples = 8;

    /// <summary>The smallest request the adaptive controller samples: one 512-byte block.</summary>
    internal const int AdaptiveMinBytes = 512;

    /// <summary>Creates a scheduler with <paramref name="options"/> (defaults when null).</summary>
    public QosScheduler(QosSchedulerOptions? options = null)
    {
        _options = options ?? new QosSchedulerOptions();
        _options.Validate();
        _time = _options.TimeProvider;
        _k = new SchedulerConstants(_options);
        _fifo = _options.Mode == QosMode.Fifo;
        _maxOutstanding = _options.MaxOutstanding;
        _origin = _time.GetTimestamp();
        _sliceTicks = Math.Max(1, (long)(_options.LatencyWindow.TotalSeconds * _k.Frequency / _options.LatencyWindowSlices));
        _sliceEnd = _sliceTicks;
        _holdBurstTicks = HoldBurst.TotalSeconds * _k.Frequency;
        _adaptive = _options.AdaptiveOutstanding;
        if (_adaptive)
        {
            _window = _options.AdaptiveMinCost; // slow start: the first slices measure the unloaded latency
            _baseRing = new double[10 * _options.LatencyWindowSlices];
        }
        _timer = _time.CreateTimer(static s => ((QosScheduler)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Scheduling or FIFO.</summary>
    public QosMode Mode => _options.Mode;

    /// <summary>Requests allowed at the back end at once; may be changed at run time.</summary>
    public int MaxOutstanding
    {
        get => Volatile.Read(ref _maxOutstanding);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            QosRequest? wake;
            lock (_lock)
            {
                _maxOutstanding = value;
                wake = _disposed ? null : Dispatch(Now(), null, out _);
            }
            Signal(wake);
        }
    }

    /// <summary>Adds a function; its name must be new to this scheduler.</summary>
    /// <exception cref="ArgumentException">The level is invalid or the name is taken.</exception>
    public FunctionHandle RegisterFunction(string name, ServiceLevel level)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(level);
        level.Validate();
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_byName.ContainsKey(name))
                throw new ArgumentException($"function '{name}' is already registered", nameof(name));
            var function = new FunctionHandle(this, name, level, _k);
            // No history: the first request's R and L tags are its arrival time.
            function.RLast = function.LLast = double.NegativeInfinity;
            function.PLast = _virtualTime;
            _byName.Add(name, function);
            _functions.Add(function);
            return function;
        }
    }

    /// <summary>The function called <paramref name="name"/>, if registered.</summary>
    public bool TryGetFunction(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out FunctionHandle? function)
    {
        lock (_lock)
            return _byName.TryGetValue(name, out function);
    }

    /// <summary>Removes an idle function (nothing queued or outstanding); false if it is busy or unknown.</summary>
    public bool TryRemoveFunction(string name)
    {
        lock (_lock)
        {
            if (!_byName.TryGetValue(name, out var function) || function.Queued > 0 || function.Outstanding > 0)
                return false;
            function.Removed = true;
            _byName.Remove(name);
            _functions.Remove(function);
            return true;
        }
    }

    /// <summary>
    /// Changes a function's service level at run time. Queued requests stay queued; the request at
    /// the head of the function's queue is re-tagged at once and later ones are tagged with the new level.
    /// </summary>
    /// <exception cref="KeyNotFoundException">No such function.</exception>
    public void UpdateServiceLevel(string name, ServiceLevel level)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(level);
        level.Validate();
        QosRequest? wake = null;
        lock (_lock)
        {
            if (!_byName.TryGetValue(name, out var function))
                throw new KeyNotFoundException($"no function '{name}'");
            function.Apply(level, _k);
            if (!_disposed && !_fifo)
            {
                long now = Now();
                if (function.Head is not null)
                {
                    Untag(function);
                    Tag(function, activation: false);
                }
                wake = Dispatch(now, null, out _);
            }
        }
        Signal(wake);
    }

    /// <summary>
    /// Queues a request of <paramref name="bytes"/> for <paramref name="function"/>; completes when the
    /// scheduler sends it to the back end. Dispose the <see cref="Grant"/> when the I/O is done.
    /// Completes synchronously when the request can go at once.
    /// </summary>
    /// <exception cref="OperationCanceledException">Canceled while waiting (the request is withdrawn).</exception>
    /// <exception cref="ObjectDisposedException">The scheduler was disposed.</exception>
    public ValueTask<Grant> AcquireAsync(FunctionHandle function, int bytes, CancellationToken cancellationToken = default) =>
        Acquire(function, bytes, ios: 1, part: false, cancellationToken);

    /// <summary>
    /// Queues one part of an I/O that the caller splits into parts of at most a few hundred KiB and
    /// runs one after another, so that a large transfer does not hold the device for its whole
    /// length while small requests of other functions wait behind it (a device serves a transfer's
    /// bytes in order). The parts are scheduled like separate requests of their sizes, but the
    /// per-I/O charge (the IOPS spacing of reservation, limit and hold-back, and the fixed unit of
    /// the proportional cost) is made once, by the part with <paramref name="first"/> set, so the
    /// I/O costs what it would unsplit. Disposing a part's grant counts its bytes only; complete the
    /// last part with <see cref="Grant.Complete"/> and the latency of the whole I/O, which counts the
    /// I/O and records that latency.
    /// </summary>
    /// <exception cref="OperationCanceledException">Canceled while waiting (the request is withdrawn).</exception>
    /// <exception cref="ObjectDisposedException">The scheduler was disposed.</exception>
    public ValueTask<Grant> AcquirePartAsync(FunctionHandle function, int bytes, bool first, CancellationToken cancellationToken = default) =>
        Acquire(function, bytes, first ? 1 : 0, part: true, cancellationToken);

    private ValueTask<Grant> Acquire(FunctionHandle function, int bytes, int ios, bool part, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (!ReferenceEquals(function.Owner, this))
            throw new ArgumentException($"function '{function.Name}' belongs to another scheduler", nameof(function));
        if (cancellationToken.IsCancellationRequested)
            return ValueTask.FromCanceled<Grant>(cancellationToken);

        QosRequest request;
        QosRequest? wake;
        bool immediate;
        int version;
        short token;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (function.Removed)
                throw new InvalidOperationException($"function '{function.Name}' was removed");
            long now = Now();
            if (now >= _sliceEnd)
                Rotate(now);
            request = Rent();
            request.Function = function;
            request.Bytes = bytes;
            request.Ios = ios;
            request.Part = part;
            request.Arrival = now;
            request.State = QosRequest.States.Queued;
            Enqueue(request);
            wake = Dispatch(now, request, out immediate);
            version = request.Version;
            token = request.Core.Version;
            // Registered under the lock so no dispatch can run before the registration exists
            // (an already-canceled token runs the callback inline; the lock is re-entrant).
            if (!immediate && cancellationToken.CanBeCanceled)
                request.Registration = cancellationToken.UnsafeRegister(s_cancel, request);
        }
        Signal(wake);
        return immediate ? new ValueTask<Grant>(new Grant(request, version)) : new ValueTask<Grant>(request, token);
    }

    /// <summary>How many buckets a function's latency histogram has (see <see cref="TryCopyLatencyCounts"/>).</summary>
    public static int LatencyBucketCount => LatencyHistogram.BucketCount;

    /// <summary>
    /// The smallest latency, in microseconds, that bucket <paramref name="index"/> holds; the bucket
    /// holds values below the next bucket's bound (the last one holds everything above its bound).
    /// </summary>
    public static long LatencyBucketLowerBoundMicros(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, LatencyHistogram.BucketCount);
        return LatencyHistogram.LowerBoundOf(index);
    }

    /// <summary>
    /// Copies a function's latency histogram since registration (enqueue to completion, the one
    /// behind <see cref="QosFunctionStats.Latency"/>) into <paramref name="counts"/>, which holds
    /// <see cref="LatencyBucketCount"/> values; false when no such function. For exporters that
    /// need the buckets, e.g. a Prometheus histogram, read at scrape time.
    /// </summary>
    public bool TryCopyLatencyCounts(string name, Span<long> counts)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(counts.Length, LatencyHistogram.BucketCount, nameof(counts));
        lock (_lock)
        {
            if (!_byName.TryGetValue(name, out var function))
                return false;
            function.Total.CopyTo(counts);
            return true;
        }
    }

    /// <summary>Per-function counters and latency quantiles.</summary>
    public QosSnapshot GetSnapshot()
    {
        lock (_lock)
        {
            long now = Now();
            if (now >= _sliceEnd && !_disposed)
                Rotate(now);
            var list = new List<QosFunctionStats>(_functions.Count);
            var window = new LatencyHistogram();
            foreach (var f in _functions)
            {
                window.Clear();
                foreach (var slice in f.Slices)
                    window.Add(slice);
                list.Add(new QosFunctionStats(
                    f.Name, f.Level, f.CompletedIos, f.CompletedBytes, f.Queued, f.Outstanding,
                    f.ReservationDispatches, f.WeightDispatches,
                    TimeSpan.FromSeconds(Math.Max(0, Math.Min(f.ThrottledTicks, f.ThrottledTicks - (f.ThrottleEnd - now))) / _k.Frequency),
                    f.TargetMisses, f.SlaWindowsMissed, f.HoldScale,
                    LatencySummary.From(f.Total), LatencySummary.From(window)));
            }
            return new QosSnapshot(Mode, _maxOutstanding, _outstanding, _queued, list)
            {
                OutstandingCostWindow = _window,
                OutstandingCost = _outstandingCost,
                BaseLatency = TimeSpan.FromSeconds(_baseLatency / _k.Frequency),
            };
        }
    }

    /// <summary>Fails every waiting request with <see cref="ObjectDisposedException"/>; outstanding grants may still be disposed.</summary>
    public void Dispose()
    {
        QosRequest? head = null, tail = null;
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            var failure = new ObjectDisposedException(nameof(QosScheduler));
            void Fail(QosRequest? r)
            {
                while (r is not null)
                {
                    var next = r.Next;
                    r.Prev = r.Next = null;
                    r.State = QosRequest.States.Canceled;
                    r.Failure = failure;
                    r.Function!.Queued--;
                    Append(ref head, ref tail, r);
                    r = next;
                }
            }
            Fail(_fifoHead);
            _fifoHead = _fifoTail = null;
            for (int i = 0; i < _activeCount; i++)
            {
                var f = _active[i];
                Fail(f.Head);
                f.Head = f.Tail = null;
                f.ActiveIndex = -1;
                _active[i] = null!;
            }
            _activeCount = 0;
            _queued = 0;
        }
        _timer.Dispose();
        Signal(head);
    }

    internal void Release(QosRequest request, int version, long latencyMicros)
    {
        QosRequest? wake;
        lock (_lock)
        {
            if (request.Version != version || request.State != QosRequest.States.Dispatched)
                return; // disposed twice
            long now = Now();
            if (now >= _sliceEnd && !_disposed)
                Rotate(now);
            var f = request.Function!;
            f.CompletedBytes += request.Bytes;
            f.ReservationSliceBytes += request.Bytes;
            f.SliceCost += request.Ios + request.Bytes / _k.CostUnitBytes;
            // A part of a split I/O counts the I/O (and its latency) only when the caller completes
            // the last part with the whole I/O's latency (or untimed).
            if (!request.Part || latencyMicros != -1)
            {
                f.CompletedIos++;
                f.ReservationSliceIos++;
                if (latencyMicros != Untimed)
                    RecordLocked(f, latencyMicros >= 0 ? latencyMicros : (long)((now - request.Arrival) * 1e6 / _k.Frequency));
            }
            f.Outstanding--;
            _outstanding--;
            _outstandingCost = _outstanding == 0 ? 0 : _outstandingCost - request.Cost;
            // Small data transfers only: at least a block (commands without data or with a few
            // bytes of it, INQUIRY, READ CAPACITY, never reach the device) and at most a cost unit.
            if (_adaptive && request.Bytes >= AdaptiveMinBytes && request.Bytes <= _k.CostUnitBytes)
            {
                double service = now - request.Dispatched;
                _smallSum += service;
                _smallSlice.Record((long)(service * 1e6 / _k.Frequency));
                _smallCount++;
            }
            Return(request);
            wake = _disposed ? null : Dispatch(now, null, out _);
        }
        Signal(wake);
    }

    /// <summary>
    /// Records a latency of <paramref name="function"/>'s that the caller measured on its own, for a
    /// user whose I/Os complete untimed (<see cref="Grant.CompleteUntimed"/>): the target reports each
    /// SCSI command's latency from its arrival, which is what the tenant sees and what the latency
    /// target is judged on, while the device operations count the I/Os.
    /// </summary>
    public void RecordLatency(FunctionHandle function, TimeSpan latency)
    {
        ArgumentNullException.ThrowIfNull(function);
        if (!ReferenceEquals(function.Owner, this))
            throw new ArgumentException($"function '{function.Name}' belongs to another scheduler", nameof(function));
        lock (_lock)
        {
            if (function.Removed)
                return;
            long now = Now();
            if (now >= _sliceEnd && !_disposed)
                Rotate(now);
            RecordLocked(function, Math.Max(0, (long)latency.TotalMicroseconds));
        }
    }

    /// <summary>What <see cref="Grant.CompleteUntimed"/> passes for the latency.</summary>
    internal const long Untimed = -2;

    private void RecordLocked(FunctionHandle f, long micros)
    {
        f.Total.Record(micros);
        f.Slices[_slice].Record(micros);
        if (f.TargetMicros > 0 && micros > f.TargetMicros)
            f.TargetMisses++;
    }

    internal void Recycle(QosRequest request)
    {
        lock (_lock)
            Return(request);
    }

    private void Cancel(QosRequest request, CancellationToken token)
    {
        lock (_lock)
        {
            if (request.State != QosRequest.States.Queued)
                return; // dispatched (or failed) first
            var f = request.Function!;
            if (_fifo)
            {
                Unlink(ref _fifoHead, ref _fifoTail, request);
            }
            else
            {
                bool wasHead = f.Head == request;
                if (wasHead)
                    Untag(f);
                Unlink(ref f.Head, ref f.Tail, request);
                if (f.Head is null)
                    Deactivate(f);
                else if (wasHead)
                    Tag(f, activation: false);
            }
            f.Queued--;
            _queued--;
            request.State = QosRequest.States.Canceled;
        }
        request.Core.SetException(new OperationCanceledException(token));
    }

    private void OnTimer()
    {
        QosRequest? wake;
        lock (_lock)
        {
            if (_disposed)
                return;
            _timerDue = long.MaxValue;
            long now = Now();
            if (now >= _sliceEnd)
                Rotate(now);
            wake = Dispatch(now, null, out _);
        }
        Signal(wake);
    }

    private long Now() => _time.GetTimestamp() - _origin;

    private QosRequest Rent()
    {
        if (_poolCount > 0)
        {
            var r = _pool[--_poolCount];
            _pool[_poolCount] = null!;
            return r;
        }
        return new QosRequest(this, _options.RunContinuationsAsynchronously);
    }

    private void Return(QosRequest r)
    {
        r.Version++;
        r.State = QosRequest.States.Free;
        r.Function = null;
        r.Prev = r.Next = r.NextSignal = null;
        r.Failure = null;
        r.Registration = default;
        r.Core.Reset();
        if (_poolCount == _pool.Length)
            Array.Resize(ref _pool, _pool.Length * 2);
        _pool[_poolCount++] = r;
    }

    private void Enqueue(QosRequest r)
    {
        var f = r.Function!;
        f.Queued++;
        _queued++;
        if (_fifo)
        {
            Append(ref _fifoHead, ref _fifoTail, r);
            return;
        }
        bool activation = f.Head is null;
        Append(ref f.Head, ref f.Tail, r);
        if (activation)
        {
            if (_activeCount == _active.Length)
            {
                Array.Resize(ref _active, _active.Length * 2);
                Array.Resize(ref _tags, _tags.Length * 2);
            }
            f.ActiveIndex = _activeCount;
            _active[_activeCount++] = f;
            Tag(f, activation: true);
        }
    }

    /// <summary>Computes the tags of <paramref name="f"/>'s head from the previous tags (class remarks).</summary>
    private void Tag(FunctionHandle f, bool activation)
    {
        var h = f.Head!;
        double arrival = h.Arrival;
        if (f.HasReservation)
        {
            double d = f.ReservationDelta(h.Ios, h.Bytes);
            // Up to ReservationBurst of unused reservation carries over (a closed-loop client).
            f.RLast = Math.Max(f.RLast + d, arrival - _k.ReservationBurstTicks);
            f.HeadR = f.RLast;
            f.HeadDeltaR = d;
        }
        else
        {
            f.RLast = arrival;
            f.HeadR = double.PositiveInfinity;
            f.HeadDeltaR = 0;
        }

        double dl = f.LimitDelta(h.Ios, h.Bytes);
        f.LLast = Math.Max(f.LLast + dl, arrival);
        f.HeadL = f.LLast;
        f.HeadDeltaL = dl;

        double dp = (h.Ios + h.Bytes / _k.CostUnitBytes) * f.InverseWeight;
        if (activation)
        {
            // No credit for idling: start level with the backlogged functions.
            double basis = double.PositiveInfinity;
            var tags = _tags;
            for (int i = 0; i < _activeCount; i++)
            {
                if (i != f.ActiveIndex && tags[i].P < basis)
                    basis = tags[i].P;
            }
            if (double.IsPositiveInfinity(basis))
                basis = _virtualTime;
            f.PLast = Math.Max(f.PLast + dp, basis);
        }
        else
        {
            f.PLast += dp;
        }
        f.HeadP = f.PLast;
        f.HeadDeltaP = dp;
        _tags[f.ActiveIndex] = new HeadTags(f.HeadR, f.HeadL, f.HeadP, IsHeld(f));
    }

    /// <summary>Takes back the head's increments (before it is re-tagged or withdrawn).</summary>
    private static void Untag(FunctionHandle f)
    {
        f.RLast -= f.HeadDeltaR;
        f.LLast -= f.HeadDeltaL;
        f.PLast -= f.HeadDeltaP;
    }

    private void Deactivate(FunctionHandle f)
    {
        int i = f.ActiveIndex;
        var last = _active[--_activeCount];
        _active[i] = last;
        _tags[i] = _tags[_activeCount];
        last.ActiveIndex = i;
        _active[_activeCount] = null!;
        f.ActiveIndex = -1;
    }

    /// <summary>
    /// Sends requests while slots are free. Returns the dispatched requests (other than
    /// <paramref name="self"/>) to wake once the lock is released.
    /// </summary>
    private QosRequest? Dispatch(long nowTicks, QosRequest? self, out bool selfDispatched)
    {
        selfDispatched = false;
        QosRequest? head = null, tail = null;
        if (_fifo)
        {
            while (_outstanding < _maxOutstanding && _fifoHead is { } r)
            {
                if (_outstandingCost >= _window)
                {
                    _windowBound = true;
                    break;
                }
                Unlink(ref _fifoHead, ref _fifoTail, r);
                r.Function!.WeightDispatches++;
                Start(r, DispatchPhase.Fifo, nowTicks, self, ref selfDispatched, ref head, ref tail);
            }
            return head;
        }

        double now = nowTicks;
        while (_outstanding < _maxOutstanding && _activeCount > 0)
        {
            // A full adaptive window holds back the weight phase only: a request due by its
            // reservation still goes (a reservation is a guarantee; the window orders the rest).
            bool windowFull = _outstandingCost >= _window;
            FunctionHandle? byReservation = null, byWeight = null;
            double bestR = double.PositiveInfinity, bestP = double.PositiveInfinity, wakeAt = double.PositiveInfinity;
            int reservationIndex = -1, weightIndex = -1;
            var tags = _tags;
            for (int i = 0; i < _activeCount; i++)
            {
                ref readonly var t = ref tags[i];
                double r = t.R;
                if (r <= now)
                {
                    if (r < bestR)
                    {
                        bestR = r;
                        reservationIndex = i;
                    }
                }
                else if (r < wakeAt)
                {
                    wakeAt = r;
                }

                double own = t.L;
                // A held-back function also waits for the held class's next slot (HoldBack).
                double l = t.Held && _holdNext > own ? _holdNext : own;
                if (l <= now)
                {
                    if (t.P < bestP)
                    {
                        bestP = t.P;
                        weightIndex = i;
                    }
                }
                else
                {
                    if (l < wakeAt)
                        wakeAt = l;
                    var f = _active[i];
                    if (r > now && own > now && own > f.ThrottleEnd)
                    {
                        // Held by its limit while the device has room: count until its L tag is due.
                        f.ThrottledTicks += own - Math.Max(now, f.ThrottleEnd);
                        f.ThrottleEnd = own;
                    }
                }
            }
            if (reservationIndex >= 0)
                byReservation = _active[reservationIndex];
            else if (weightIndex >= 0 && !windowFull)
                byWeight = _active[weightIndex];

            FunctionHandle chosen;
            DispatchPhase phase;
            if (byReservation is not null)
            {
                chosen = byReservation;
                phase = DispatchPhase.Reservation;
                chosen.ReservationDispatches++;
            }
            else if (byWeight is not null)
            {
                chosen = byWeight;
                phase = DispatchPhase.Weight;
                chosen.WeightDispatches++;
                // mClock 3.1: a request served by weight counts toward the reservation too.
                chosen.RLast -= chosen.HeadDeltaR;
                if (chosen.HeadP > _virtualTime)
                    _virtualTime = chosen.HeadP;
                if (tags[weightIndex].Held)
                {
                    // The held class shares one rate: each weight dispatch of any held function
                    // books its cost on it, so the weights among them still decide who goes.
                    // Up to HoldBurst of unused rate carries over: dispatch chances come when
                    // slots free up, not exactly when the rate allows the next request.
                    var h = chosen.Head!;
                    _holdNext = Math.Max(_holdNext, now - _holdBurstTicks) + (h.Ios + h.Bytes / _k.CostUnitBytes) * _k.Frequency / _holdRate;
                }
            }
            else
            {
                if (windowFull)
                {
                    // Work is outstanding (the window is full): its next completion runs this
                    // again, so no timer is needed for a reservation that falls due meanwhile.
                    if (weightIndex >= 0)
                        _windowBound = true;
                    break;
                }
                ArmTimer(wakeAt, nowTicks);
                break;
            }

            var request = chosen.Head!;
            Unlink(ref chosen.Head, ref chosen.Tail, request);
            if (chosen.Head is null)
                Deactivate(chosen);
            else
                Tag(chosen, activation: false);
            Start(request, phase, nowTicks, self, ref selfDispatched, ref head, ref tail);
        }
        return head;
    }

    private void Start(QosRequest r, DispatchPhase phase, long nowTicks, QosRequest? self, ref bool selfDispatched, ref QosRequest? head, ref QosRequest? tail)
    {
        var f = r.Function!;
        f.Queued--;
        f.Outstanding++;
        _queued--;
        _outstanding++;
        r.Dispatched = nowTicks;
        r.Cost = 1 + r.Bytes / _k.CostUnitBytes;
        _outstandingCost += r.Cost;
        r.State = QosRequest.States.Dispatched;
        r.Phase = phase;
        if (r == self)
            selfDispatched = true;
        else
            Append(ref head, ref tail, r, signal: true);
    }

    private void ArmTimer(double wakeAt, long now)
    {
        if (double.IsPositiveInfinity(wakeAt))
            return;
        long due = (long)Math.Ceiling(wakeAt);
        if (due >= _timerDue)
            return;
        _timerDue = due;
        long ticks = (long)Math.Ceiling((due - now) * TimeSpan.TicksPerSecond / _k.Frequency);
        _timer.Change(TimeSpan.FromTicks(Math.Max(1, ticks)), Timeout.InfiniteTimeSpan);
    }

    /// <summary>Closes latency slices up to <paramref name="now"/> and runs the hold-back controller.</summary>
    private void Rotate(long now)
    {
        long closed = (now - _sliceEnd) / _sliceTicks + 1;
        if (!_fifo)
            HoldBack(closed);
        if (_adaptive)
            AdaptWindow();
        int slices = _options.LatencyWindowSlices;
        for (long i = 0; i < Math.Min(closed, slices); i++)
        {
            _slice = (_slice + 1) % slices;
            foreach (var f in _functions)
                f.Slices[_slice].Clear();
        }
        _sliceEnd += closed * _sliceTicks;
    }

    /// <summary>The adaptive bound's controller, once per closed slice (class remarks).</summary>
    private void AdaptWindow()
    {
        double min = _options.AdaptiveMinCost;
        bool probed = _probing;
        if (_smallCount >= 2 * AdaptiveMinSamples)
        {
            // The base is the smallest slice median of the last ten windows (like BBR's min RTT),
            // taken from the slices that run at the minimum window (the slow start and the probes,
            // below) or any other in which most requests found the device idle. A plain minimum or
            // a low percentile would learn the commands that never reach the device (INQUIRY or
            // REPORT LUNS with a 4 KiB allocation length: microseconds) as the device's latency.
            _baseRing[_baseNext] = _smallSlice.Quantile(0.50) * _k.Frequency / 1e6;
            _baseNext = (_baseNext + 1) % _baseRing.Length;
            _baseCount = Math.Min(_baseCount + 1, _baseRing.Length);
            double baseLatency = double.PositiveInfinity;
            for (int i = 0; i < _baseCount; i++)
                baseLatency = Math.Min(baseLatency, _baseRing[i]);
            _baseLatency = baseLatency;
        }
        if (probed)
        {
            _probing = false;
            _window = _windowBeforeProbe;
        }
        else if (_smallCount >= AdaptiveMinSamples)
        {
            double mean = _smallSum / _smallCount;
            double baseLatency = _baseLatency;
            double tolerated = 1 + _options.AdaptiveLatencyTolerance;
            double ratio = mean / Math.Max(baseLatency, 1);
            double goal = _window * tolerated / ratio;
            if (ratio > tolerated)
                _window = Math.Max(min, (_window + goal) / 2);
            else if (_windowBound)
                _window += Math.Clamp(goal - _window, 1, Math.Max(1, _window / 4));
        }
        else if (_windowBound)
        {
            _window += 1;
        }
        _window = Math.Min(_window, 1e9);
        if (!probed && ++_slicesSinceProbe >= _baseRing.Length - 1 && _window > min)
        {
            // Before the base's history runs out, one slice at the minimum window re-measures the
            // unloaded latency (like BBR's ProbeRTT): under constant load no request would find
            // the device idle, and the base would creep up with the load it is meant to judge.
            _probing = true;
            _windowBeforeProbe = _window;
            _window = min;
            _slicesSinceProbe = 0;
        }
        _smallSum = 0;
        _smallSlice.Clear();
        _smallCount = 0;
        _windowBound = false;
    }

    private void HoldBack(long closedSlices)
    {
        // Judge each target on at least LatencyMinSamples completions (or a whole window): pool
        // the closed slice into the function's pending samples until there are enough.
        bool judged = false, anyPending = false, missed = false, latencyMissed = false;
        int missPriority = int.MinValue;
        double deficit = 1; // the smallest share of its reservation a function in deficit got
        foreach (var f in _functions)
        {
            if (f.TargetMicros == 0)
                continue;
            f.Pending.Add(f.Slices[_slice]);
            f.PendingSlices++;
            if (f.Pending.Count == 0)
            {
                f.PendingSlices = 0;
                continue;
            }
            anyPending = true;
            // A slice without completions (the function went quiet) ends the pooling too.
            if (f.Pending.Count < _options.LatencyMinSamples && f.PendingSlices < _options.LatencyWindowSlices &&
                f.Slices[_slice].Count > 0)
                continue;
            judged = true;
            if (f.Pending.Quantile(0.99) > f.TargetMicros)
            {
                f.SlaWindowsMissed++;
                missed = latencyMissed = true;
                missPriority = Math.Max(missPriority, f.Level.Priority);
            }
            f.Pending.Clear();
            f.PendingSlices = 0;
        }

        // A function below its reservation in the slice just closed while it had work the whole
        // time (requests at the device or waiting now, and completions in it) is owed what the
        // device gave others: a closed-loop client with a few commands in flight has nothing
        // queued here for its reservation tags to put first, so its rate is set by its latency,
        // which the others' load raises. It counts as a miss at its priority (below).
        double sliceSeconds = closedSlices * _sliceTicks / _k.Frequency;
        foreach (var f in _functions)
        {
            long ios = f.ReservationSliceIos, bytes = f.ReservationSliceBytes;
            f.ReservationSliceIos = f.ReservationSliceBytes = 0;
            if (!f.HasReservation || ios == 0 || f.Outstanding + f.Queued == 0)
                continue;
            // Met by either figure: the better of the two shares counts.
            double share = Math.Max(
                f.Level.ReservationIops > 0 ? ios / (f.Level.ReservationIops * sliceSeconds) : 0,
                f.Level.ReservationMbps > 0 ? bytes / (f.Level.ReservationMbps * 1e6 * sliceSeconds) : 0);
            // Aimed a little above the reservation (ReservationDeficitMargin): a controller that
            // reacts only once a slice fell short settles just under what it reacts to.
            share /= 1 + ReservationDeficitMargin;
            if (share >= 1)
                continue;
            deficit = Math.Min(deficit, share);
            judged = missed = true;
            missPriority = Math.Max(missPriority, f.Level.Priority);
        }

        _holdSlices++;
        if (!judged && anyPending)
            return; // not enough samples yet: no decision, rates keep accumulating
        double seconds = _holdSlices * _sliceTicks / _k.Frequency;
        _holdSlices = 0;
        bool was = _holding;
        if (missed)
        {
            if (!_holding || missPriority != _heldBelow)
            {
                // A new hold: every function below the missing priority, together, at the cost
                // rate they completed since the last judgement, scaled down from here.
                double cost = 0;
                foreach (var f in _functions)
                {
                    if (f.Level.Priority < missPriority)
                        cost += f.SliceCost;
                }
                _holdBaseCost = Math.Max(cost / seconds, _options.HoldBackMinIops);
                _holdScale = 1;
                _heldBelow = missPriority;
                _holding = true;
            }
            // A missed latency target halves the held rate; a reservation deficit alone cuts it by
            // the deficit (95% of the reservation: 5% less), at most by half, so that a slice a
            // little short under noise does not idle the device the way a miss by half would.
            double decrease = latencyMissed ? _options.HoldBackDecrease : Math.Max(_options.HoldBackDecrease, deficit);
            _holdScale = Math.Max(_options.HoldBackMinScale, _holdScale * decrease);
        }
        else if (_holding)
        {
            _holdScale = Math.Min(1, _holdScale + _options.HoldBackRecovery);
            if (_holdScale >= 1)
            {
                RebaseHeld();
                _holding = false;
            }
        }
        _holdRate = Math.Max(_holdBaseCost * _holdScale, _options.HoldBackMinIops);
        foreach (var f in _functions)
        {
            f.HoldScale = IsHeld(f) ? _holdScale : 1;
            f.SliceCost = 0;
        }
        if (_holding || was)
        {
            for (int i = 0; i < _activeCount; i++)
                _tags[i] = _tags[i] with { Held = IsHeld(_active[i]) };
        }
    }

    /// <summary>
    /// At the end of a hold: no credit for having been held back. A held function's proportional tag
    /// fell behind while it waited for the held rate; left so, it would take the device from everyone
    /// else until it caught up (seconds, after a long hold). Like a function that returns from idle,
    /// it starts level with the smallest tag of the functions that were not held.
    /// </summary>
    private void RebaseHeld()
    {
        double basis = double.PositiveInfinity;
        for (int i = 0; i < _activeCount; i++)
        {
            if (!_tags[i].Held && _tags[i].P < basis)
                basis = _tags[i].P;
        }
        if (double.IsPositiveInfinity(basis))
            return; // only held functions are backlogged: they are level with one another already
        for (int i = 0; i < _activeCount; i++)
        {
            var f = _active[i];
            if (_tags[i].Held && f.HeadP < basis)
            {
                f.PLast += basis - f.HeadP;
                f.HeadP = basis;
                _tags[i] = _tags[i] with { P = basis };
            }
        }
    }

    /// <summary>Whether <paramref name="f"/> is below the priority of a missed latency target now.</summary>
    private bool IsHeld(FunctionHandle f) => _holding && f.Level.Priority < _heldBelow;

    private static void Signal(QosRequest? r)
    {
        while (r is not null)
        {
            var next = r.NextSignal;
            r.NextSignal = null;
            // Waits for a cancellation callback in flight, which then finds the request dispatched.
            r.Registration.Dispose();
            if (r.Failure is { } failure)
                r.Core.SetException(failure);
            else
                r.Core.SetResult(new Grant(r, r.Version));
            r = next;
        }
    }

    private static void Append(ref QosRequest? head, ref QosRequest? tail, QosRequest r, bool signal = false)
    {
        if (signal)
        {
            r.NextSignal = null;
            if (tail is null)
                head = r;
            else
                tail.NextSignal = r;
            tail = r;
            return;
        }
        r.Next = null;
        r.Prev = tail;
        if (tail is null)
            head = r;
        else
            tail.Next = r;
        tail = r;
    }

    private static void Unlink(ref QosRequest? head, ref QosRequest? tail, QosRequest r)
    {
        if (r.Prev is null)
            head = r.Next;
        else
            r.Prev.Next = r.Next;
        if (r.Next is null)
            tail = r.Prev;
        else
            r.Next.Prev = r.Prev;
        r.Prev = r.Next = null;
    }
}

/// <summary>The tags of a backlogged function's head request.</summary>
internal readonly record struct HeadTags(double R, double L, double P, bool Held);
