using System.Net;
using System.Net.Sockets;
using Prometheus;
using Sluice.Qos;

namespace Sluice.Target.Metrics;

/// <summary>
/// The Prometheus <c>/metrics</c> endpoint: prometheus-net's HttpListener <see cref="MetricServer"/>
/// over a registry of this server's own. Every per-function number is read from the device
/// schedulers' statistics (<see cref="QosScheduler.GetSnapshot"/>, the latency buckets) and the
/// functions' byte counters when Prometheus scrapes, in a before-collect callback; nothing is
/// observed per request. Series of a function that was removed are dropped at the next scrape.
/// </summary>
internal sealed class SluiceMetrics : IAsyncDisposable
{
    // Powers of two microseconds, 16 µs to 67 s: each of the scheduler's log-linear buckets lies
    // wholly inside one of these, so the exported histogram counts exactly what the scheduler did.
    private static readonly double[] s_buckets = [.. Enumerable.Range(4, 23).Select(e => (1L << e) / 1e6)];

    private static readonly string[] s_levelKeys = ["reservation_iops", "reservation_mbps", "limit_iops", "limit_mbps", "weight", "priority", "latency_target_ms"];

    private readonly FunctionRegistry _functions;
    private readonly Lock _lock = new();
    private readonly Counter _ios;
    private readonly Counter _bytes;
    private readonly Histogram _latency;
    private readonly Gauge _queueDepth;
    private readonly Gauge _outstanding;
    private readonly Counter _throttled;
    private readonly Counter _dispatches;
    private readonly Counter _targetMisses;
    private readonly Counter _slaWindowsMissed;
    private readonly Gauge _holdBack;
    private readonly Gauge _level;
    private readonly Gauge _deviceOutstanding;
    private readonly Gauge _deviceQueued;
    private readonly Gauge _deviceMaxOutstanding;
    private readonly Dictionary<(string Function, string Device), long[]> _lastLatency = [];
    private readonly long[] _scratch = new long[QosScheduler.LatencyBucketCount];
    private HashSet<(string Function, string Device)> _seen = [];
    private HashSet<string> _seenDevices = new(StringComparer.Ordinal);
    private IMetricServer? _server;
    private readonly Counter _allocated;
    private readonly Counter _gcPause;

    private SluiceMetrics(FunctionRegistry functions)
    {
        _functions = functions;
        // prometheus-net's process-wide default registry would start event-counter and meter
        // listeners that make every socket operation allocate; this server uses its own registry.
        Prometheus.Metrics.SuppressDefaultMetrics();
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        string[] fd = ["function", "device"];
        _ios = factory.CreateCounter("sluice_function_ios_total", "Device I/Os the function completed (a read or write counts once however it was split).", fd);
        _bytes = factory.CreateCounter("sluice_function_bytes_total", "Data bytes of the function's completed commands on the device, by direction (read, write).", [.. fd, "direction"]);
        _latency = factory.CreateHistogram(
            "sluice_function_latency_seconds",
            "Latency of the function's SCSI commands from the command PDU's arrival to completion (queueing for the device included); what the latency target is judged on.",
            fd,
            new HistogramConfiguration { Buckets = s_buckets });
        _queueDepth = factory.CreateGauge("sluice_function_queue_depth", "Device operations (or parts of split ones) of the function waiting in the device's scheduler.", fd);
        _outstanding = factory.CreateGauge("sluice_function_outstanding", "Device operations (or parts) of the function dispatched to the device and not yet complete.", fd);
        _throttled = factory.CreateCounter("sluice_function_throttled_seconds_total", "Time the function's next command was held back by its limit while the device had room (limit-held).", fd);
        _dispatches = factory.CreateCounter("sluice_function_dispatches_total", "Device operations (or parts) dispatched, by scheduler phase: reservation (its reservation was due) or weight (its share of the rest; FIFO mode counts here).", [.. fd, "phase"]);
        _targetMisses = factory.CreateCounter("sluice_function_latency_target_misses_total", "Completed commands slower than the function's latency target (SLA misses).", fd);
        _slaWindowsMissed = factory.CreateCounter("sluice_function_sla_windows_missed_total", "Controller windows in which the function's p99 latency was above its target.", fd);
        _holdBack = factory.CreateGauge("sluice_function_hold_back_scale", "1 when the function is not held back; below 1, the factor applied to its weight-phase rate for a higher-priority function's latency target.", fd);
        _level = factory.CreateGauge("sluice_function_service_level", "The function's service level in force (fn set), by key; 0 rates mean none.", [.. fd, "key"]);
        _deviceOutstanding = factory.CreateGauge("sluice_device_outstanding", "Operations (or parts) at the device's back end now.", ["device"]);
        _deviceQueued = factory.CreateGauge("sluice_device_queued", "Operations (or parts) waiting in the device's scheduler now.", ["device"]);
        _deviceMaxOutstanding = factory.CreateGauge("sluice_device_max_outstanding", "The bound on commands at the device's back end (qos.maxOutstanding).", ["device"]);
        // What DotNetStats lacks: allocations and GC pauses, read from the GC at scrape time.
        _allocated = factory.CreateCounter("dotnet_gc_allocated_bytes_total", "Bytes allocated on the managed heap since the process started (GC.GetTotalAllocatedBytes).");
        _gcPause = factory.CreateCounter("dotnet_gc_pause_seconds_total", "Time the process was paused by garbage collections (GC.GetTotalPauseDuration).");
        Registry.AddBeforeCollectCallback(Collect);
    }

    /// <summary>The registry the endpoint serves (for tests).</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>Where <c>/metrics</c> is served.</summary>
    public IPEndPoint? Endpoint { get; private set; }

    /// <summary>
    /// Serves <c>http://ADDRESS:PORT/metrics</c> with the functions' numbers and the .NET runtime's
    /// (GC, allocations, memory, threads). Port 0 picks a free port.
    /// </summary>
    /// <exception cref="InvalidOperationException">The address cannot be listened on.</exception>
    public static SluiceMetrics Start(FunctionRegistry functions, IPAddress address, int port)
    {
        var metrics = new SluiceMetrics(functions);
        DotNetStats.Register(metrics.Registry);
        string host = address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
        for (int attempt = 0; ; attempt++)
        {
            int bind = port != 0 ? port : FreePort(address);
            var server = new MetricServer(host, bind, "metrics/", metrics.Registry);
            try
            {
                metrics._server = server.Start();
                metrics.Endpoint = new IPEndPoint(address, bind);
                return metrics;
            }
            catch (HttpListenerException e) when (port == 0 && attempt < 4)
            {
                _ = e;
                server.Dispose();
            }
            catch (Exception e) when (e is HttpListenerException or SocketException)
            {
                server.Dispose();
                throw new InvalidOperationException($"metrics.listen: cannot listen on {TargetServer.FormatEndpoint(address, bind)}: {e.Message}", e);
            }
        }
    }

    // HttpListener cannot bind port 0: ask the OS for a free port, then use it at once.
    private static int FreePort(IPAddress address)
    {
        using var probe = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(address, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private void Collect()
    {
        lock (_lock)
        {
            _allocated.IncTo(GC.GetTotalAllocatedBytes());
            _gcPause.IncTo(GC.GetTotalPauseDuration().TotalSeconds);
            var (devices, lanes) = _functions.GetSources();
            var snapshots = new Dictionary<string, QosSnapshot>(StringComparer.Ordinal);
            var liveDevices = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (device, scheduler) in devices)
            {
                var snapshot = scheduler.GetSnapshot();
                snapshots[device] = snapshot;
                liveDevices.Add(device);
                _deviceOutstanding.WithLabels(device).Set(snapshot.Outstanding);
                _deviceQueued.WithLabels(device).Set(snapshot.Queued);
                _deviceMaxOutstanding.WithLabels(device).Set(snapshot.MaxOutstanding);
            }

            var live = new HashSet<(string Function, string Device)>();
            foreach (var lane in lanes)
            {
                if (!snapshots.TryGetValue(lane.Device, out var snapshot)
                    || snapshot.Functions.FirstOrDefault(f => f.Name == lane.Function) is not { } s
                    || !lane.Scheduler.TryCopyLatencyCounts(lane.Function, _scratch))
                {
                    continue;
                }

                var key = (lane.Function, lane.Device);
                string[] labels = [lane.Function, lane.Device];
                // A function removed and added again between scrapes starts from zero: drop the old series.
                if (_ios.WithLabels(labels).Value > s.CompletedIos)
                    Forget(key);
                live.Add(key);

                _ios.WithLabels(labels).IncTo(s.CompletedIos);
                _bytes.WithLabels(lane.Function, lane.Device, "read").IncTo(lane.Counters.ReadBytes);
                _bytes.WithLabels(lane.Function, lane.Device, "write").IncTo(lane.Counters.WrittenBytes);
                _queueDepth.WithLabels(labels).Set(s.QueueDepth);
                _outstanding.WithLabels(labels).Set(s.Outstanding);
                _throttled.WithLabels(labels).IncTo(s.ThrottledTime.TotalSeconds);
                _dispatches.WithLabels(lane.Function, lane.Device, "reservation").IncTo(s.ReservationDispatches);
                _dispatches.WithLabels(lane.Function, lane.Device, "weight").IncTo(s.WeightDispatches);
                _targetMisses.WithLabels(labels).IncTo(s.LatencyTargetMisses);
                _slaWindowsMissed.WithLabels(labels).IncTo(s.SlaWindowsMissed);
                _holdBack.WithLabels(labels).Set(s.HoldBackScale);
                var level = s.ServiceLevel;
                double[] values = [level.ReservationIops, level.ReservationMbps, level.LimitIops, level.LimitMbps, level.Weight, level.Priority, level.LatencyTargetMs];
                for (int i = 0; i < s_levelKeys.Length; i++)
                    _level.WithLabels(lane.Function, lane.Device, s_levelKeys[i]).Set(values[i]);

                // The scheduler's buckets since the last scrape, each at its middle.
                if (!_lastLatency.TryGetValue(key, out var last))
                    _lastLatency[key] = last = new long[_scratch.Length];
                var histogram = _latency.WithLabels(labels);
                for (int i = 0; i < _scratch.Length; i++)
                {
                    long delta = _scratch[i] - last[i];
                    if (delta > 0)
                        histogram.Observe(MiddleSeconds(i), delta);
                    last[i] = _scratch[i];
                }
            }

            foreach (var gone in _seen.Where(k => !live.Contains(k)))
                Forget(gone);
            _seen = live;
            foreach (var gone in _seenDevices.Where(d => !liveDevices.Contains(d)))
            {
                _deviceOutstanding.RemoveLabelled(gone);
                _deviceQueued.RemoveLabelled(gone);
                _deviceMaxOutstanding.RemoveLabelled(gone);
            }

            _seenDevices = liveDevices;
        }
    }

    private void Forget((string Function, string Device) key)
    {
        var (f, d) = key;
        _ios.RemoveLabelled(f, d);
        _bytes.RemoveLabelled(f, d, "read");
        _bytes.RemoveLabelled(f, d, "write");
        _latency.RemoveLabelled(f, d);
        _queueDepth.RemoveLabelled(f, d);
        _outstanding.RemoveLabelled(f, d);
        _throttled.RemoveLabelled(f, d);
        _dispatches.RemoveLabelled(f, d, "reservation");
        _dispatches.RemoveLabelled(f, d, "weight");
        _targetMisses.RemoveLabelled(f, d);
        _slaWindowsMissed.RemoveLabelled(f, d);
        _holdBack.RemoveLabelled(f, d);
        foreach (string k in s_levelKeys)
            _level.RemoveLabelled(f, d, k);
        _lastLatency.Remove(key);
    }

    private static double MiddleSeconds(int index)
    {
        long lower = QosScheduler.LatencyBucketLowerBoundMicros(index);
        double upper = index + 1 < QosScheduler.LatencyBucketCount ? QosScheduler.LatencyBucketLowerBoundMicros(index + 1) : lower * 1.125;
        return (lower + upper) / 2 / 1e6;
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is { } server)
        {
            _server = null;
            await server.StopAsync().ConfigureAwait(false);
            server.Dispose();
        }
    }
}
