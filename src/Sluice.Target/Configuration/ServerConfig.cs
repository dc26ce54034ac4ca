namespace Sluice.Target.Configuration;

/// <summary>The whole server configuration: what the config file holds and what flags build.</summary>
public sealed class ServerConfig
{
    /// <summary>Directory for file LUNs created by default and for persistent state.</summary>
    public string DataDir { get; set; } = "data";

    public List<PortalConfig> Portals { get; set; } = [];

    public List<TargetConfig> Targets { get; set; } = [];

    /// <summary>Shared devices that LUNs carve slices out of (<c>device:NAME[:OFFSET]:SIZE</c>).</summary>
    public List<DeviceConfig> Devices { get; set; } = [];

    /// <summary>Tenants: groups of targets with one service level, enforced per device.</summary>
    public List<FunctionConfig> Functions { get; set; } = [];

    /// <summary>Settings of the per-device schedulers that enforce the functions' service levels.</summary>
    public QosConfig Qos { get; set; } = new();

    /// <summary>CHAP required for discovery sessions (null: discovery needs no authentication).</summary>
    public ChapConfig? DiscoveryChap { get; set; }

    public LimitsConfig Limits { get; set; } = new();

    /// <summary>
    /// Per-byte engine: "auto" (fastest CRC32C kernel, direct data placement) or "none" (staged
    /// copies and table CRC, to measure the gain).
    /// </summary>
    public string Offload { get; set; } = "auto";

    /// <summary>Whether HeaderDigest/DataDigest=CRC32C may be negotiated (RFC 7143 §13.1).</summary>
    public bool AllowDigests { get; set; } = true;

    /// <summary>The Prometheus <c>/metrics</c> endpoint (off unless <see cref="MetricsConfig.Listen"/> is set).</summary>
    public MetricsConfig Metrics { get; set; } = new();
}

public sealed class MetricsConfig
{
    /// <summary>
    /// Loopback <c>HOST[:PORT]</c> to serve <c>http://HOST:PORT/metrics</c> on (port 9464 when left
    /// out; 0 picks a free port); null: no metrics endpoint.
    /// </summary>
    public string? Listen { get; set; }
}

/// <summary>A listen address. Portals with the same group tag form one portal group (TPGT).</summary>
public sealed class PortalConfig
{
    public string Host { get; set; } = "127.0.0.1";
    public int Port { get; set; } = 3260;
    public ushort GroupTag { get; set; } = 1;
}

public sealed class TargetConfig
{
    public string Name { get; set; } = "";
    public string? Alias { get; set; }
    public List<LunConfig> Luns { get; set; } = [];

    /// <summary>Initiator names allowed to discover and log in; empty means everyone.</summary>
    public List<string> AllowedInitiators { get; set; } = [];

    /// <summary>When set, initiators must authenticate with CHAP (RFC 7143 §12.1.3).</summary>
    public ChapConfig? Chap { get; set; }

    /// <summary>When set too, the target authenticates itself to the initiator (mutual CHAP).</summary>
    public ChapConfig? MutualChap { get; set; }

    /// <summary>Portal group tags this target is reachable through; empty means all.</summary>
    public List<ushort> PortalGroups { get; set; } = [];
}

public sealed class LunConfig
{
    public ulong Number { get; set; }

    /// <summary>
    /// Back end: <c>memory:SIZE</c>, <c>file:PATH[:SIZE]</c>, <c>block:PATH</c>,
    /// <c>model:SIZE[:iops=N,mbps=M,latency=X]</c> or a slice of a shared device, <c>device:NAME[:OFFSET]:SIZE</c>.
    /// </summary>
    public string Backend { get; set; } = "";

    /// <summary>Logical block size: 512 or 4096.</summary>
    public int BlockSize { get; set; } = 512;
    public bool ReadOnly { get; set; }
    public bool Removable { get; set; }

    /// <summary>"write-back" (volatile cache, WCE=1) or "write-through" (every write durable).</summary>
    public string CacheMode { get; set; } = "write-back";

    /// <summary>Unit serial number (VPD 0x80); derived from target and LUN when absent.</summary>
    public string? Serial { get; set; }
}

/// <summary>A named device shared by several LUNs, each a slice of it.</summary>
public sealed class DeviceConfig
{
    public string Name { get; set; } = "";

    /// <summary><c>memory:</c>, <c>file:</c>, <c>block:</c> or <c>model:</c> spec, as for a LUN.</summary>
    public string Backend { get; set; } = "";
}

/// <summary>
/// A tenant: its targets (whose ACLs, CHAP and portal groups isolate it) and the service level
/// its I/O gets on every device its LUNs use. Rates of 0 mean "none"; MB/s is 10^6 bytes/s.
/// </summary>
public sealed class FunctionConfig
{
    public string Name { get; set; } = "";
    public List<string> Targets { get; set; } = [];
    public double ReservationIops { get; set; }
    public double ReservationMbps { get; set; }
    public double LimitIops { get; set; }
    public double LimitMbps { get; set; }
    public double Weight { get; set; } = 1;
    public int Priority { get; set; }
    public double LatencyTargetMs { get; set; }
}

/// <summary>The device schedulers' settings (one scheduler per device that a function uses).</summary>
public sealed class QosConfig
{
    /// <summary>"mclock" (reservations, limits, weights) or "fifo" (arrival order, for comparison).</summary>
    public string Mode { get; set; } = "mclock";

    /// <summary>Requests a device runs at once; the rest wait in its scheduler.</summary>
    public int MaxOutstanding { get; set; } = 32;

    /// <summary>Bytes that cost as much as one I/O in the proportional (weight) share.</summary>
    public int CostUnitBytes { get; set; } = 65536;

    /// <summary>
    /// A scheduled LUN's reads and writes longer than this go to the device as parts of at most this
    /// size, each waiting its turn, so a large transfer does not hold the device while other
    /// functions' small requests queue behind it; 0 never splits.
    /// </summary>
    public int SplitBytes { get; set; } = DefaultSplitBytes;

    /// <summary>Default of <see cref="SplitBytes"/>: 128 KiB.</summary>
    public const int DefaultSplitBytes = 128 * 1024;

    /// <summary>The reservation phase paces at (1 + this) x the reservation, never above the limit.</summary>
    public double ReservationHeadroom { get; set; } = 0.02;

    /// <summary>Unused reservation, in milliseconds, that carries over a short pause (a closed-loop client); 0 = strict.</summary>
    public double ReservationBurstMs { get; set; } = 10;

    /// <summary>Also bound the outstanding cost by a window adapted to the device's latency.</summary>
    public bool AdaptiveOutstanding { get; set; }

    /// <summary>How much above its unloaded value small requests' device latency may rise before the window shrinks.</summary>
    public double AdaptiveLatencyTolerance { get; set; } = 0.5;
}

public sealed class ChapConfig
{
    public string User { get; set; } = "";
    public string Secret { get; set; } = "";
}

/// <summary>Every limit has a name, a default and a config key (DESIGN.md rules of thumb).</summary>
public sealed class LimitsConfig
{
    public int MaxSessions { get; set; } = 64;
    public int MaxConnectionsPerSession { get; set; } = 1;
    /// <summary>Commands a session may have queued: the CmdSN window (MaxCmdSN - ExpCmdSN + 1).</summary>
    public int CommandWindow { get; set; } = 128;
    public int MaxRecvDataSegmentLength { get; set; } = 262144;
    public int MaxBurstLength { get; set; } = 1048576;
    public int FirstBurstLength { get; set; } = 65536;
    public int MaxOutstandingR2T { get; set; } = 1;
    public bool InitialR2T { get; set; }
    public bool ImmediateData { get; set; } = true;
    public int MaxErrorRecoveryLevel { get; set; }
    public int DefaultTime2Wait { get; set; } = 2;
    public int DefaultTime2Retain { get; set; } = 20;
    /// <summary>Largest data transfer of one SCSI command, in bytes.</summary>
    public int MaxTransferLength { get; set; } = 16 * 1024 * 1024;
    public int LoginTimeoutSeconds { get; set; } = 15;
    /// <summary>Idle time after which the target sends a NOP-In ping (0 disables).</summary>
    public int NopInIntervalSeconds { get; set; } = 30;
    /// <summary>Time to wait for the NOP-Out answer before dropping the connection.</summary>
    public int NopInTimeoutSeconds { get; set; } = 30;
}
