using System.Diagnostics;
using System.Runtime.CompilerServices;
using Sluice.Qos;
using Sluice.Scsi;
using Sluice.Target.Configuration;

namespace Sluice.Target;

/// <summary>
/// The functions (tenants) at run time: one <see cref="QosScheduler"/> per device that a function's
/// LUNs use (a named shared device, or a plain LUN's own device), each function registered on the
/// schedulers of its devices, and for every scheduled (target, LUN) the scheduler and handle its
/// device operations queue under (<see cref="ScheduledBlockDevice"/>). Targets in no function have no entry and are not scheduled at all.
/// </summary>
internal sealed class FunctionRegistry : IDisposable
{
    private readonly Lock _lock = new();
    private readonly QosSchedulerOptions _options;
    private readonly Dictionary<string, QosScheduler> _schedulers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FunctionState> _functions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TargetScheduling> _targets = new(StringComparer.OrdinalIgnoreCase);

    public FunctionRegistry(ServerConfig config, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        _options = new QosSchedulerOptions
        {
            Mode = config.Qos.Mode == "fifo" ? QosMode.Fifo : QosMode.MClock,
            MaxOutstanding = config.Qos.MaxOutstanding,
            CostUnitBytes = config.Qos.CostUnitBytes,
            AdaptiveOutstanding = config.Qos.AdaptiveOutstanding,
            ReservationHeadroom = config.Qos.ReservationHeadroom,
            ReservationBurst = TimeSpan.FromMilliseconds(config.Qos.ReservationBurstMs),
            AdaptiveLatencyTolerance = config.Qos.AdaptiveLatencyTolerance,
            TimeProvider = timeProvider ?? TimeProvider.System,
        };
        SplitBytes = config.Qos.SplitBytes;
        foreach (var f in config.Functions)
        {
            var state = new FunctionState(f.Name, LevelOf(f));
            _functions.Add(f.Name, state);
            foreach (string target in f.Targets)
                state.Targets.Add(target);
        }
    }

    /// <summary>Scheduled reads and writes longer than this are split into parts (<c>qos.splitBytes</c>; 0 = never).</summary>
    public int SplitBytes { get; }

    /// <summary>The function names, in config order.</summary>
    public IReadOnlyList<string> FunctionNames
    {
        get
        {
            lock (_lock)
                return [.. _functions.Keys];
        }
    }

    /// <summary>The service level a function's config asks for.</summary>
    public static ServiceLevel LevelOf(FunctionConfig f) => new()
    {
        ReservationIops = f.ReservationIops,
        ReservationMbps = f.ReservationMbps,
        LimitIops = f.LimitIops,
        LimitMbps = f.LimitMbps,
        Weight = f.Weight,
        Priority = f.Priority,
        LatencyTargetMs = f.LatencyTargetMs,
    };

    /// <summary>The function <paramref name="target"/> belongs to, or null.</summary>
    public string? FunctionOf(string target)
    {
        lock (_lock)
        {
            foreach (var f in _functions.Values)
            {
                if (f.Targets.Contains(target))
                    return f.Name;
            }
            return null;
        }
    }

    /// <summary>
    /// Schedules <paramref name="target"/>'s LUN <paramref name="lun"/> on <paramref name="device"/>'s
    /// scheduler (created on first use) under <paramref name="function"/>'s handle (registered on
    /// that scheduler on first use). Returns the target's table, which its <see cref="TargetNode"/> keeps.
    /// </summary>
    public TargetScheduling Add(string function, string target, ulong lun, string device)
    {
        lock (_lock)
        {
            var state = _functions[function];
            if (!_schedulers.TryGetValue(device, out var scheduler))
            {
                scheduler = new QosScheduler(_options);
                _schedulers.Add(device, scheduler);
            }

            if (!state.Handles.TryGetValue(device, out var handle))
            {
                handle = scheduler.RegisterFunction(function, state.Level);
                state.Handles.Add(device, handle);
                state.Counters[device] = new IoCounters();
            }

            if (!_targets.TryGetValue(target, out var table))
            {
                table = new TargetScheduling();
                _targets.Add(target, table);
            }

            table.Add(lun, scheduler, handle, state.Counters[device]);
            return table;
        }
    }

    /// <summary>Adds a function (<c>sluice fn add</c>); its LUNs are scheduled by <see cref="Add"/> as its target opens.</summary>
    /// <exception cref="ArgumentException">The name is taken.</exception>
    public void AddFunction(FunctionConfig f)
    {
        ArgumentNullException.ThrowIfNull(f);
        var state = new FunctionState(f.Name, LevelOf(f));
        foreach (string target in f.Targets)
            state.Targets.Add(target);
        lock (_lock)
        {
            if (!_functions.TryAdd(f.Name, state))
                throw new ArgumentException($"function '{f.Name}' already exists", nameof(f));
        }
    }

    /// <summary>
    /// Removes a function (<c>sluice fn rm</c>) once its requests are done: its targets' LUNs are no
    /// longer scheduled and each device scheduler drops its entry. Waits up to <paramref name="timeout"/>
    /// for requests still queued or at the back end; false when some remain (the function stays, minus
    /// the devices it has left, so a second call can finish).
    /// </summary>
    public async Task<bool> TryRemoveFunctionAsync(string function, TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            lock (_lock)
            {
                if (!_functions.TryGetValue(function, out var state))
                    return true;
                foreach (var (device, _) in state.Handles.ToList())
                {
                    if (_schedulers[device].TryRemoveFunction(function))
                    {
                        state.Handles.Remove(device);
                        state.Counters.Remove(device);
                    }
                }

                if (state.Handles.Count == 0)
                {
                    foreach (string target in state.Targets)
                        _targets.Remove(target);
                    _functions.Remove(function);
                    return true;
                }
            }

            if (Environment.TickCount64 >= deadline)
                return false;
            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    /// <summary>The scheduler and handle commands to (<paramref name="target"/>, <paramref name="lun"/>) queue under.</summary>
    public bool TryGetLane(string target, ulong lun, out QosScheduler? scheduler, out FunctionHandle? handle)
    {
        lock (_lock)
        {
            scheduler = null;
            handle = null;
            if (!_targets.TryGetValue(target, out var table) || !table.TryGet(LunField(lun), out var lane))
                return false;
            (scheduler, handle) = (lane.Scheduler, lane.Handle);
            return true;
        }
    }

    /// <summary>
    /// Changes a function's service level on every device it uses (the future <c>sluice fn set</c>).
    /// The level is checked first, so either every scheduler takes it or none does.
    /// </summary>
    /// <exception cref="KeyNotFoundException">No such function.</exception>
    /// <exception cref="ArgumentException">The level is invalid.</exception>
    public void SetServiceLevel(string function, ServiceLevel level)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(level);
        level.Validate();
        lock (_lock)
        {
            if (!_functions.TryGetValue(function, out var state))
                throw new KeyNotFoundException($"no function '{function}'");
            state.Level = level;
            foreach (var device in state.Handles.Keys)
                _schedulers[device].UpdateServiceLevel(function, level);
        }
    }

    /// <summary>A function's service level in force.</summary>
    /// <exception cref="KeyNotFoundException">No such function.</exception>
    public ServiceLevel GetServiceLevel(string function)
    {
        lock (_lock)
            return _functions.TryGetValue(function, out var state) ? state.Level : throw new KeyNotFoundException($"no function '{function}'");
    }

    /// <summary>Every device scheduler's snapshot, by device (a shared device's name, or <c>TARGET/LUN</c>).</summary>
    public IReadOnlyDictionary<string, QosSnapshot> GetSnapshot()
    {
        lock (_lock)
            return _schedulers.ToDictionary(p => p.Key, p => p.Value.GetSnapshot(), StringComparer.Ordinal);
    }

    /// <summary>One function's counters on each device it uses.</summary>
    /// <exception cref="KeyNotFoundException">No such function.</exception>
    public IReadOnlyDictionary<string, QosFunctionStats> GetFunctionStats(string function)
    {
        lock (_lock)
        {
            if (!_functions.TryGetValue(function, out var state))
                throw new KeyNotFoundException($"no function '{function}'");
            var stats = new Dictionary<string, QosFunctionStats>(StringComparer.Ordinal);
            foreach (var device in state.Handles.Keys)
                stats[device] = _schedulers[device].GetSnapshot().Functions.Single(s => s.Name == function);
            return stats;
        }
    }

    /// <summary>
    /// What a metrics scrape reads: every device scheduler, and each function's scheduler and
    /// read/write byte counters on each device it uses.
    /// </summary>
    public (IReadOnlyList<(string Device, QosScheduler Scheduler)> Devices, IReadOnlyList<FunctionLane> Functions) GetSources()
    {
        lock (_lock)
        {
            var devices = _schedulers.Select(p => (p.Key, p.Value)).ToList();
            var functions = new List<FunctionLane>();
            foreach (var f in _functions.Values)
            {
                foreach (var (device, _) in f.Handles)
                    functions.Add(new FunctionLane(f.Name, device, _schedulers[device], f.Counters[device]));
            }

            return (devices, functions);
        }
    }

    /// <summary>Fails waiting requests; grants outstanding may still complete.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var s in _schedulers.Values)
                s.Dispose();
        }
    }

    /// <summary>The LUN field (SAM-5 4.7) an initiator sends for <paramref name="lun"/> in peripheral or flat addressing.</summary>
    internal static ulong LunField(ulong lun) => lun < 256 ? lun << 48 : FlatLunField(lun);

    internal static ulong FlatLunField(ulong lun) => (0x4000UL | (lun & 0x3FFF)) << 48;

    private sealed class FunctionState(string name, ServiceLevel level)
    {
        public string Name { get; } = name;
        public ServiceLevel Level { get; set; } = level;
        public HashSet<string> Targets { get; } = new(StringComparer.OrdinalIgnoreCase);

        // Device -> this function's handle on that device's scheduler.
        public Dictionary<string, FunctionHandle> Handles { get; } = new(StringComparer.Ordinal);

        // Device -> this function's data bytes there, by direction.
        public Dictionary<string, IoCounters> Counters { get; } = new(StringComparer.Ordinal);
    }
}

/// <summary>One function on one device, for a metrics scrape.</summary>
internal sealed record FunctionLane(string Function, string Device, QosScheduler Scheduler, IoCounters Counters);

/// <summary>
/// Data bytes a function moved on one device, by direction: what the scheduler's statistics do
/// not split. Two interlocked adds per completed command, read at scrape time.
/// </summary>
internal sealed class IoCounters
{
    private long _readBytes;
    private long _writtenBytes;

    public long ReadBytes => Volatile.Read(ref _readBytes);

    public long WrittenBytes => Volatile.Read(ref _writtenBytes);

    public void Completed(int read, int written)
    {
        if (read > 0)
            Interlocked.Add(ref _readBytes, read);
        if (written > 0)
            Interlocked.Add(ref _writtenBytes, written);
    }
}

/// <summary>
/// One scheduled target's LUNs, keyed by the raw LUN field of the SCSI Command PDU so the hot path
/// needs no decoding: each LUN under both its peripheral (LUN &lt; 256) and flat encodings.
/// </summary>
internal sealed class TargetScheduling
{
    private readonly Dictionary<ulong, Lane> _lanes = [];

    internal void Add(ulong lun, QosScheduler scheduler, FunctionHandle handle, IoCounters counters)
    {
        var lane = new Lane(scheduler, handle, counters);
        _lanes[FunctionRegistry.FlatLunField(lun)] = lane;
        _lanes[FunctionRegistry.LunField(lun)] = lane;
    }

    internal bool TryGet(ulong lunField, out Lane lane) => _lanes.TryGetValue(lunField, out lane);

    /// <summary>
    /// Runs <paramref name="request"/> on <paramref name="device"/> and, when the LUN is scheduled,
    /// counts its data bytes for the function and gives the function's scheduler its latency, from
    /// the command's <paramref name="arrival"/> to its completion: what the tenant sees, and what
    /// its latency target is judged on (the device operations are counted there untimed). The scheduling itself happens below, where the
    /// command reaches the device: a scheduled LUN's device is a <see cref="ScheduledBlockDevice"/>,
    /// so every read, write, flush and unmap waits its turn (and a long transfer goes in parts), and
    /// a command that never touches the device (INQUIRY, REPORT LUNS, a cached MODE SENSE) takes
    /// nothing of it. Cancellation (ABORT TASK, connection close) withdraws a waiting request.
    /// </summary>
    public ValueTask<ScsiResponse> ExecuteAsync(ScsiTargetDevice device, ScsiRequest request, long arrival, CancellationToken cancellationToken) =>
        _lanes.TryGetValue(request.Lun, out var lane)
            ? CountedAsync(device, request, lane, arrival, cancellationToken)
            : device.ExecuteAsync(request, cancellationToken);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<ScsiResponse> CountedAsync(ScsiTargetDevice device, ScsiRequest request, Lane lane, long arrival, CancellationToken cancellationToken)
    {
        var response = await device.ExecuteAsync(request, cancellationToken).ConfigureAwait(false);
        lane.Counters.Completed(request.ExpectedDataInLength, request.ExpectedDataOutLength);
        lane.Scheduler.RecordLatency(lane.Handle, Stopwatch.GetElapsedTime(arrival));
        return response;
    }

    internal readonly record struct Lane(QosScheduler Scheduler, FunctionHandle Handle, IoCounters Counters);
}
