using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Sluice.Iscsi.Login;
using Sluice.Offload;
using Sluice.Iscsi.Chap;
using Sluice.Qos;
using Sluice.Scsi;
using Sluice.Storage;
using Sluice.Target.Configuration;
using Sluice.Target.Control;

namespace Sluice.Target;

/// <summary>The iSCSI target: portals, sessions and the logical units behind them.</summary>
public sealed partial class TargetServer : IAsyncDisposable
{
    private readonly ServerConfig _config;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    // Copy-on-write: readers take the current dictionary without a lock; fn add / rm swap in a new one.
    private volatile Dictionary<string, TargetNode> _targets = new(StringComparer.OrdinalIgnoreCase);
    private CopyTargetResolver? _copyTargets;
    private readonly List<IBlockDevice> _devices = [];
    private readonly Dictionary<string, IBlockDevice> _sharedDevices = new(StringComparer.Ordinal);
    private readonly List<(Socket Socket, ushort Tpgt, Task Loop)> _listeners = [];
    private readonly Lock _connectionsLock = new();
    private readonly HashSet<IscsiConnection> _connections = [];
    private readonly HashSet<IscsiConnection> _draining = [];

    /// <summary>Tests: wraps each LUN's own back end when it is opened (a device with controlled timing).</summary>
    internal Func<IBlockDevice, IBlockDevice>? WrapDevice { get; set; }
    private readonly HashSet<Task> _connectionTasks = [];
    private readonly CancellationTokenSource _stopping = new();
    private long _nextConnectionId;
    private ControlEndpoint? _control;
    private int _state; // 0 new, 1 started, 2 stopped

    public TargetServer(ServerConfig config, ILoggerFactory loggerFactory)
    {
        _config = config;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger("Sluice.Target");
        NegotiationSettings = new TargetNegotiationSettings
        {
            MaxRecvDataSegmentLength = config.Limits.MaxRecvDataSegmentLength,
            MaxBurstLength = config.Limits.MaxBurstLength,
            FirstBurstLength = config.Limits.FirstBurstLength,
            MaxOutstandingR2T = config.Limits.MaxOutstandingR2T,
            InitialR2T = config.Limits.InitialR2T,
            ImmediateData = config.Limits.ImmediateData,
            MaxErrorRecoveryLevel = config.Limits.MaxErrorRecoveryLevel,
            DefaultTime2Wait = config.Limits.DefaultTime2Wait,
            DefaultTime2Retain = config.Limits.DefaultTime2Retain,
            MaxConnections = config.Limits.MaxConnectionsPerSession,
            AllowDigests = config.AllowDigests,
        };
        OffloadMode = string.Equals(config.Offload, "none", StringComparison.OrdinalIgnoreCase) ? OffloadMode.None : OffloadMode.Auto;
        LoginHost = new LoginHostAdapter(this);
        Functions = new FunctionRegistry(config);
    }

    /// <summary>The bound listen endpoints (port 0 in the config resolves to the real port).</summary>
    public IReadOnlyList<IPEndPoint> LocalEndpoints { get; private set; } = [];

    internal ServerConfig Config => _config;

    internal OffloadMode OffloadMode { get; }

    internal TargetNegotiationSettings NegotiationSettings { get; }

    internal ITargetLoginHost LoginHost { get; }

    internal SessionRegistry Sessions { get; } = new();

    /// <summary>The functions' device schedulers and which (target, LUN) queues where.</summary>
    internal FunctionRegistry Functions { get; }

    /// <summary>Changes a function's service level on every device it uses (for <c>sluice fn set</c>).</summary>
    /// <exception cref="KeyNotFoundException">No such function.</exception>
    /// <exception cref="ArgumentException">The level is invalid.</exception>
    internal void SetServiceLevel(string function, ServiceLevel level) => Functions.SetServiceLevel(function, level);

    /// <summary>Every device scheduler's counters, by device (for stats and metrics).</summary>
    internal IReadOnlyDictionary<string, QosSnapshot> GetQosSnapshot() => Functions.GetSnapshot();

    /// <summary>The operator's control socket (<c>&lt;dataDir&gt;/control.sock</c>) while running, or null when it could not be opened.</summary>
    public string? ControlSocketPath => _control?.Path;

    /// <summary>Opens the back ends and starts listening; throws on any configuration problem, leaving nothing open.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("The server was already started.");
        }

        // The same checks the CLI runs, for programs that use the server as a library.
        ConfigValidator.Validate(_config);
        try
        {
            OpenTargets();
            Listen();
            StartMetrics();
            var control = new ControlEndpoint(this, _logger);
            if (control.Start(ControlProtocol.SocketPath(_config.DataDir)))
                _control = control;
            else
                control.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        catch
        {
            StopMetricsAsync().GetAwaiter().GetResult();
            foreach (var (socket, _, _) in _listeners)
            {
                socket.Dispose();
            }

            Functions.Dispose();
            foreach (var d in _devices)
            {
                d.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            // Nothing is left to stop: a later StopAsync must not flush disposed devices.
            Volatile.Write(ref _state, 2);
            throw;
        }

        return Task.CompletedTask;
    }

    private void OpenTargets()
    {
        Directory.CreateDirectory(_config.DataDir);
        foreach (var d in _config.Devices)
        {
            if (!BackendSpec.TryParse(d.Backend, out var spec, out var error))
            {
                throw new InvalidOperationException($"devices[{d.Name}].backend: {error}");
            }

            var device = BlockDeviceFactory.Open(spec!, _config.DataDir, readOnly: false, writeThrough: false);
            _devices.Add(device);
            _sharedDevices.Add(d.Name, device);
        }

        var slices = SlicePlacement.Plan(_config);
        for (int ti = 0; ti < _config.Targets.Count; ti++)
        {
            var t = _config.Targets[ti];
            var node = OpenTarget(t, slices.Where(p => p.Target == ti).ToDictionary(p => p.Lun));
            _targets.Add(t.Name, node);
        }

        RecordSlices(slices);
    }

    /// <summary>
    /// Builds one target's logical units (slices of shared devices per <paramref name="slices"/>, by
    /// LUN index; other back ends opened here), schedules them when the target is in a function, and
    /// gives it its target port groups. The caller publishes it in <see cref="_targets"/>.
    /// </summary>
    private TargetNode OpenTarget(TargetConfig t, Dictionary<int, SlicePlacement> slices)
    {
        string? function = Functions.FunctionOf(t.Name);
        TargetScheduling? scheduling = null;
        List<LogicalUnit> units = [];

        // Persistent reservations with APTPL survive restarts in a per-target directory.
        string stateDirectory = Path.Combine(_config.DataDir, "state", SafeFileName(t.Name));
        Directory.CreateDirectory(stateDirectory);
        for (int li = 0; li < t.Luns.Count; li++)
        {
            var lun = t.Luns[li];
            bool writeThrough = string.Equals(lun.CacheMode, "write-through", StringComparison.OrdinalIgnoreCase);
            IBlockDevice device;
            string deviceKey;
            if (slices.TryGetValue(li, out var slice))
            {
                // The shared device stays open for the other slices; the slice only checks its window.
                device = new SliceBlockDevice(_sharedDevices[slice.Device], slice.Offset, slice.Size, lun.ReadOnly, writeThrough);
                deviceKey = slice.Device;
            }
            else
            {
                if (!BackendSpec.TryParse(lun.Backend, out var spec, out var error))
                {
                    throw new InvalidOperationException($"targets[{t.Name}].luns[{lun.Number}].backend: {error}");
                }

                device = BlockDeviceFactory.Open(spec!, _config.DataDir, lun.ReadOnly, writeThrough);
                device = WrapDevice?.Invoke(device) ?? device;
                _devices.Add(device);
                deviceKey = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{t.Name}/{lun.Number}");
            }

            long? unmapGranularity = null; // what LogicalUnit would read from a memory device it sees unwrapped
            if (function is not null)
            {
                // Every back-end operation of the LUN waits for the function's turn on the device's
                // scheduler; long transfers go in parts of qos.splitBytes.
                scheduling = Functions.Add(function, t.Name, lun.Number, deviceKey);
                scheduling.TryGet(FunctionRegistry.LunField(lun.Number), out var lane);
                unmapGranularity = device is MemoryBlockDevice memory ? memory.ChunkSize : null;
                // Untimed: the function's latency is its commands' (TargetScheduling.ExecuteAsync).
                device = new ScheduledBlockDevice(device, lane.Scheduler, lane.Handle, Functions.SplitBytes, timed: false);
            }

            var options = new LogicalUnitOptions
            {
                BlockSize = lun.BlockSize,
                ReadOnly = lun.ReadOnly || device.IsReadOnly,
                Removable = lun.Removable,
                WriteCacheEnabled = !writeThrough,
                SerialNumber = lun.Serial,
                NaaIdentifier = StableNaa(t.Name, lun.Number),
                MaxTransferLengthBytes = _config.Limits.MaxTransferLength,
                UnmapGranularityBytes = unmapGranularity,
                StateDirectory = stateDirectory,
            };
            units.Add(new LogicalUnit(lun.Number, device, options));
        }

        var scsi = new ScsiTargetDevice(t.Name, units, _loggerFactory.CreateLogger("Sluice.Scsi"));
        var node = new TargetNode(t, scsi) { Scheduling = scheduling };

        // Implicit ALUA: one target port group per portal group that serves this target, known
        // to REPORT TARGET PORT GROUPS before anyone logs in through it (SPC-4 6.37).
        foreach (var portal in _config.Portals)
        {
            if (node.ServesPortalGroup(portal.GroupTag))
            {
                scsi.AddTargetPort(portal.GroupTag, portal.GroupTag);
            }
        }

        // PREEMPT AND ABORT (SPC-4 5.12.11.2.6): the preempted nexuses' tasks on that LU end.
        scsi.TasksAbortRequested += (nexus, lu) => AbortNexusTasks(node, nexus, lu);

        // EXTENDED COPY resolves copy sources and destinations on every live target the initiator may reach.
        scsi.CopyTargetResolver = _copyTargets ??= new CopyTargetResolver(() => _targets.Values);
        return node;
    }

    /// <summary>
    /// A stable NAA IEEE Registered Extended identifier (SPC-4 7.8.6.6.5) derived from the target
    /// name and LUN, so the LU keeps its identity across restarts and portals.
    /// </summary>
    private static ulong StableNaa(string target, ulong lun)
    {
        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(target.ToLowerInvariant()))
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        hash = (hash ^ lun) * 1099511628211UL;
        return hash;
    }

    private void Listen()
    {
        List<IPEndPoint> bound = [];
        foreach (var portal in _config.Portals)
        {
            var address = IPAddress.Parse(portal.Host);
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (address.AddressFamily == AddressFamily.InterNetworkV6)
            {
                socket.DualMode = false;
            }

            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            try
            {
                socket.Bind(new IPEndPoint(address, portal.Port));
                socket.Listen(512);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                throw new InvalidOperationException($"portals: cannot listen on {FormatEndpoint(address, portal.Port)}: {ex.Message}", ex);
            }

            var endpoint = (IPEndPoint)socket.LocalEndPoint!;
            bound.Add(endpoint);
            _listeners.Add((socket, portal.GroupTag, Task.CompletedTask));
            Log.Listening(_logger, endpoint);
        }

        LocalEndpoints = bound;
        for (int i = 0; i < _listeners.Count; i++)
        {
            var (socket, tpgt, _) = _listeners[i];
            _listeners[i] = (socket, tpgt, AcceptLoopAsync(socket, tpgt));
        }
    }

    internal static string FormatEndpoint(IPAddress address, int port) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}";

    private async Task AcceptLoopAsync(Socket listener, ushort tpgt)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            var connection = new IscsiConnection(this, client, tpgt, Interlocked.Increment(ref _nextConnectionId), _logger);
            lock (_connectionsLock)
            {
                _connections.Add(connection);
            }

            var run = Task.Run(connection.RunAsync);
            lock (_connectionsLock)
            {
                _connectionTasks.Add(run);
            }

            _ = run.ContinueWith(
                t =>
                {
                    lock (_connectionsLock)
                    {
                        _connectionTasks.Remove(t);
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    internal void ConnectionClosed(IscsiConnection connection)
    {
        if (connection.ExecutingCount > 0)
        {
            // Commands still at the back end: a new login of this initiator waits for them.
            lock (_connectionsLock)
            {
                _draining.Add(connection);
            }

            _ = connection.BackendIdleAsync().ContinueWith(
                static (_, state) =>
                {
                    var (server, c) = ((TargetServer, IscsiConnection))state!;
                    lock (server._connectionsLock)
                    {
                        server._draining.Remove(c);
                    }
                },
                (this, connection),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        lock (_connectionsLock)
        {
            if (_connections.Remove(connection))
            {
                _closedHeaderDigestErrors += connection.Counters.HeaderDigestErrors;
                _closedDataDigestErrors += connection.Counters.DataDigestErrors;
            }
        }
    }

    private long _closedHeaderDigestErrors;
    private long _closedDataDigestErrors;

    /// <summary>Header and data digest errors detected on every connection, open or closed, since start.</summary>
    internal (long Header, long Data) DigestErrors()
    {
        lock (_connectionsLock)
        {
            long header = _closedHeaderDigestErrors;
            long data = _closedDataDigestErrors;
            foreach (var c in _connections)
            {
                header += c.Counters.HeaderDigestErrors;
                data += c.Counters.DataDigestErrors;
            }

            return (header, data);
        }
    }

    /// <summary>
    /// Binds a completed login to a session: a new one (reinstating any old session with the
    /// same initiator, ISID, target and portal group, RFC 7143 §6.3.5) or, with a TSIH, the
    /// existing one.
    /// </summary>
    /// <param name="draining">Ended connections of the same initiator and target whose back-end operations are still running; the login waits for them before its final response (IscsiConnection.Drain.cs).</param>
    internal IscsiSession? CompleteLogin(IscsiConnection connection, TargetLoginStateMachine machine, ulong isid, ushort tsih, IscsiSession? existing, ushort tpgt, uint cmdSN, out ushort failStatus, out List<IscsiConnection> draining)
    {
        failStatus = 0;
        draining = [];
        if (tsih != 0 && existing is not null && existing.Tpgt != tpgt)
        {
            // A session's connections stay within its portal group (RFC 7143 §4.4.1): through
            // another group this TSIH names no session.
            failStatus = LoginStatus.SessionDoesNotExist;
            return null;
        }
        if (tsih != 0 && existing is not null)
        {
            // Connection reinstatement (same CID) is the only way into a live session with
            // MaxConnections=1 (§6.3.4); the old connection's tasks are terminated.
            var old = existing.Connection;
            if (old is not null && old.Cid != connection.Cid && existing.Parameters.MaxConnections <= 1)
            {
                failStatus = LoginStatus.TooManyConnections;
                return null;
            }

            existing.Connection = connection;
            if (old is not null)
            {
                old.Close();
                draining.Add(old);
            }

            return existing;
        }

        string initiator = machine.InitiatorName!;
        TargetNode? target = machine.IsDiscovery ? null : _targets.GetValueOrDefault(machine.TargetName ?? "");
        if (!machine.IsDiscovery && target is null)
        {
            // Removed (sluice fn rm) while this login was negotiating (RFC 7143 §11.13.5).
            failStatus = LoginStatus.TargetRemoved;
            return null;
        }

        // An initiator that dropped its connection and logs in again (often with a new ISID)
        // may get here before the old connection has noticed the close. End such sessions now
        // so their I_T nexus loss (SAM-5 6.3.4: PREVENT, RESERVE, unit attentions) is visible
        // to the new session's first command, not at some later moment.
        foreach (var other in Sessions.Snapshot())
        {
            if (ReferenceEquals(other.Target, target)
                && string.Equals(other.InitiatorName, initiator, StringComparison.OrdinalIgnoreCase)
                && other.Connection is { PeerHasClosed: true } dead)
            {
                EndSession(other);
                dead.Close();
            }
        }

        var previous = Sessions.FindByIdentity(initiator, isid, target?.Name, tpgt);
        if (previous is not null)
        {
            Log.Reinstated(_logger, previous.Tsih, initiator);
            EndSession(previous);
            previous.Connection?.Close();
        }

        if (target is not null)
        {
            // Every connection of this initiator to this target that has ended (just now, or
            // earlier with commands still at the back end) — whatever its ISID or portal group.
            lock (_connectionsLock)
            {
                foreach (var c in _connections.Concat(_draining))
                {
                    if (!ReferenceEquals(c, connection) && c.SessionServed is { } served && ReferenceEquals(served.Target, target)
                        && string.Equals(served.InitiatorName, initiator, StringComparison.OrdinalIgnoreCase)
                        && (served.Ended || ReferenceEquals(served, previous)) && c.ExecutingCount > 0)
                    {
                        draining.Add(c);
                    }
                }
            }
        }

        ushort newTsih = Sessions.Add(
            t => new IscsiSession(t, isid, initiator, target, machine.IsDiscovery, machine.Parameters!, _config.Limits.CommandWindow, cmdSN, tpgt),
            _config.Limits.MaxSessions,
            out var session);
        if (newTsih == 0)
        {
            failStatus = LoginStatus.OutOfResources;
            return null;
        }

        session!.Connection = connection;
        return session;
    }

    /// <summary>The session is gone: I_T nexus loss for its logical units (SAM-5 6.3.4).</summary>
    internal void EndSession(IscsiSession session)
    {
        // Once only: a reinstated session's old connection must not report nexus loss later,
        // after the new session (the same I_T nexus) has built state of its own.
        if (!session.TryEnd())
        {
            return;
        }

        Sessions.Remove(session);
        if (session.Target is not null && session.Nexus is not null)
        {
            session.Target.Device.NexusLost(session.Nexus);
        }
    }

    internal void AbortTasks(TargetNode? target, ulong? lun)
    {
        foreach (var s in Sessions.Snapshot())
        {
            if (ReferenceEquals(s.Target, target))
            {
                s.Connection?.AbortWhere(t => lun is null || t.Request.Lun == lun.Value);
            }
        }
    }

    private void AbortNexusTasks(TargetNode target, ITNexus nexus, ulong lu)
    {
        foreach (var s in Sessions.Snapshot())
        {
            if (ReferenceEquals(s.Target, target) && s.Nexus == nexus)
            {
                s.Connection?.AbortWhere(t => IscsiConnection.DecodeLun(t.Request.Lun) == lu);
            }
        }
    }

    private static string SafeFileName(string name)
    {
        var chars = name.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (!char.IsAsciiLetterOrDigit(chars[i]) && chars[i] is not ('.' or '-' or '_'))
            {
                chars[i] = '_';
            }
        }

        return new string(chars);
    }

    internal void DropSessionsOf(TargetNode? target)
    {
        foreach (var s in Sessions.Snapshot())
        {
            if (ReferenceEquals(s.Target, target))
            {
                s.Connection?.Close();
            }
        }
    }

    /// <summary>
    /// SendTargets (RFC 7143 §13.6, Appendix C): every target this initiator may see, with a
    /// TargetAddress for each portal that serves it. A wildcard listen address is reported as
    /// the address the initiator reached us on.
    /// </summary>
    internal void AppendSendTargets(StringBuilder response, IscsiSession session, string value, EndPoint? local, ushort tpgt)
    {
        IEnumerable<TargetNode> targets;
        if (value == "All")
        {
            targets = session.IsDiscovery ? _targets.Values : session.Target is null ? [] : [session.Target];
        }
        else if (value.Length == 0)
        {
            targets = session.Target is null ? [] : [session.Target];
        }
        else
        {
            targets = _targets.TryGetValue(value, out var t) ? [t] : [];
        }

        foreach (var t in targets)
        {
            if (!t.Admits(session.InitiatorName))
            {
                continue;
            }

            response.Append("TargetName=").Append(t.Name).Append('\0');
            for (int i = 0; i < _config.Portals.Count; i++)
            {
                var portal = _config.Portals[i];
                if (!t.ServesPortalGroup(portal.GroupTag))
                {
                    continue;
                }

                var address = IPAddress.Parse(portal.Host);
                int port = i < LocalEndpoints.Count ? LocalEndpoints[i].Port : portal.Port;
                if ((address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)) && local is IPEndPoint le)
                {
                    address = le.Address;
                }

                response.Append("TargetAddress=").Append(FormatEndpoint(address, port)).Append(',').Append(portal.GroupTag).Append('\0');
            }
        }
    }

    /// <summary>Stops accepting, asks sessions to log out, finishes or aborts in-flight commands, flushes and closes.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _state, 2) != 1)
        {
            return;
        }

        _stopping.Cancel();
        await StopMetricsAsync().ConfigureAwait(false);
        if (_control is { } control)
        {
            _control = null;
            await control.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var (socket, _, _) in _listeners)
        {
            socket.Dispose();
        }

        foreach (var (_, _, loop) in _listeners)
        {
            await loop.ConfigureAwait(false);
        }

        IscsiConnection[] connections;
        lock (_connectionsLock)
        {
            connections = [.. _connections];
        }

        Log.Stopping(_logger, Sessions.Count);
        foreach (var c in connections)
        {
            await c.RequestLogoutAsync(1).ConfigureAwait(false);
        }

        // Give initiators a moment to log out and running commands time to finish.
        long deadline = Environment.TickCount64 + 2000;
        while (Environment.TickCount64 < deadline && !cancellationToken.IsCancellationRequested)
        {
            lock (_connectionsLock)
            {
                if (_connections.Count == 0)
                {
                    break;
                }
            }

            await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
        }

        lock (_connectionsLock)
        {
            connections = [.. _connections];
        }

        foreach (var c in connections)
        {
            c.Close();
        }

        Task[] running;
        lock (_connectionsLock)
        {
            running = [.. _connectionTasks];
        }

        await Task.WhenAny(Task.WhenAll(running), Task.Delay(5000, CancellationToken.None)).ConfigureAwait(false);
        foreach (var t in _targets.Values)
        {
            try
            {
                await t.Device.FlushAllAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.Unexpected(_logger, 0, ex);
            }
        }

        Functions.Dispose();
        foreach (var d in _devices)
        {
            await d.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    /// <summary>Answers the login state machine's questions from the configuration.</summary>
    private sealed class LoginHostAdapter(TargetServer server) : ITargetLoginHost
    {
        public TargetLoginDecision ResolveTarget(string? targetName, string initiatorName, bool discovery)
        {
            if (discovery)
            {
                var chap = server._config.DiscoveryChap;
                return new TargetLoginDecision
                {
                    Exists = true,
                    Allowed = true,
                    Chap = chap is null ? null : new ChapSecret(chap.User, chap.Secret),
                };
            }

            if (targetName is null || !server._targets.TryGetValue(targetName, out var t))
            {
                return new TargetLoginDecision { Exists = false };
            }

            return new TargetLoginDecision
            {
                Exists = true,
                Allowed = t.Admits(initiatorName),
                Chap = t.Config.Chap is { } c ? new ChapSecret(c.User, c.Secret) : null,
                MutualChap = t.Config.MutualChap is { } m ? new ChapSecret(m.User, m.Secret) : null,
                Alias = t.Config.Alias,
            };
        }
    }
}
