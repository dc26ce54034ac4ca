using System.Globalization;
using Sluice.Storage;

namespace Sluice.Target.Configuration;

/// <summary>
/// Checks a whole <see cref="ServerConfig"/> before anything starts, so the server never runs
/// half-configured. The first problem found is thrown as a <see cref="ConfigException"/>.
/// </summary>
public static class ConfigValidator
{
    /// <summary>LUNs use the single-level (peripheral/flat) address space: 0..16383 (SAM-5 §4.7).</summary>
    public const ulong MaxLunNumber = 16383;

    /// <summary>RFC 7143 §13: MaxRecvDataSegmentLength, MaxBurstLength and FirstBurstLength are 512..2^24-1.</summary>
    public const int MaxDataSegmentLength = 16_777_215;

    public static readonly IReadOnlyList<string> CacheModes = ["write-back", "write-through"];

    /// <summary>Throws <see cref="ConfigException"/> naming the key path of the first problem.</summary>
    public static void Validate(ServerConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (string.IsNullOrWhiteSpace(c.DataDir))
            throw new ConfigException("dataDir", "must not be empty");
        if (c.Offload is not ("auto" or "none"))
            throw new ConfigException("offload", $"must be auto or none (got '{c.Offload}')");

        var groupTags = ValidatePortals(c.Portals);
        if (c.DiscoveryChap is not null)
            ValidateChap(c.DiscoveryChap, "discoveryChap");
        // A file or device behind two LUNs (or a LUN and a shared device) would be written by both: refuse it.
        var stores = new Dictionary<string, string>(StringComparer.Ordinal);
        var devices = ValidateDevices(c, stores);
        ValidateTargets(c, groupTags, stores);
        ValidateSlices(c, devices);
        ValidateFunctions(c, devices);
        ValidateQos(c.Qos);
        ValidateLimits(c.Limits);
        if (c.Metrics is null)
            throw new ConfigException("metrics", "must be an object, not null");
        if (c.Metrics.Listen is not null && !MetricsListen.TryParse(c.Metrics.Listen, out _, out _, out string? metricsError))
            throw new ConfigException("metrics.listen", metricsError);
    }

    /// <summary>Shared devices: name to (index, size when the spec states it).</summary>
    private static Dictionary<string, (int Index, long? Size)> ValidateDevices(ServerConfig c, Dictionary<string, string> stores)
    {
        if (c.Devices is null)
            throw new ConfigException("devices", "must be an array, not null");
        var devices = new Dictionary<string, (int Index, long? Size)>(StringComparer.Ordinal);
        for (int d = 0; d < c.Devices.Count; d++)
        {
            string at = $"devices[{d}]";
            var device = c.Devices[d] ?? throw new ConfigException(at, "must be an object, not null");
            ValidateName(device.Name, $"{at}.name");
            if (devices.TryGetValue(device.Name, out var other))
                throw new ConfigException($"{at}.name", $"duplicate device '{device.Name}' (same as devices[{other.Index}])");
            if (DeviceSlice.IsSlice(device.Backend))
                throw new ConfigException($"{at}.backend", "a shared device cannot be a slice of another device");
            var size = ValidateBackend(device.Backend, $"{at}.backend", 512, c.DataDir, stores);
            devices.Add(device.Name, (d, size));
        }
        return devices;
    }

    /// <summary>Checks a memory/file/block/model spec; returns its size when the spec states one.</summary>
    private static long? ValidateBackend(string backend, string at, int blockSize, string dataDir, Dictionary<string, string> stores)
    {
        if (!BackendSpec.TryParse(backend, out var spec, out string? error))
            throw new ConfigException(at, error);
        long? size = spec switch
        {
            MemoryBackendSpec m => m.Size,
            FileBackendSpec f => f.Size,
            ModelBackendSpec m => m.Size,
            _ => null,
        };
        if (size is { } bytes && bytes % blockSize != 0)
            throw new ConfigException(at, $"size {bytes} bytes is not a whole number of {blockSize}-byte blocks");

        string? store = spec switch
        {
            FileBackendSpec f => Path.GetFullPath(f.Path, dataDir),
            BlockBackendSpec b => Path.GetFullPath(b.Path),
            _ => null,
        };
        string owner = at.EndsWith(".backend", StringComparison.Ordinal) ? at[..^".backend".Length] : at;
        if (store is not null && !stores.TryAdd(store, owner))
            throw new ConfigException(at, $"'{store}' is already used by {stores[store]}");
        return size;
    }

    /// <summary>Slices: their device exists, they fit it, are whole blocks and do not overlap.</summary>
    private static void ValidateSlices(ServerConfig c, Dictionary<string, (int Index, long? Size)> devices)
    {
        var placements = SlicePlacement.Plan(c);
        foreach (var p in placements)
        {
            string at = $"{p.At}.backend";
            if (!devices.TryGetValue(p.Device, out var device))
                throw new ConfigException(at, $"unknown device '{p.Device}' (not in devices[])");
            int blockSize = c.Targets[p.Target].Luns[p.Lun].BlockSize;
            if (p.Offset % blockSize != 0 || p.Size % blockSize != 0)
                throw new ConfigException(at, $"offset {p.Offset} and size {p.Size} must be whole {blockSize}-byte blocks");
            if (p.Offset > long.MaxValue - p.Size || (device.Size is { } deviceSize && p.End > deviceSize))
                throw new ConfigException(at, $"slice [{p.Offset}, {p.Offset + p.Size}) does not fit device '{p.Device}' ({device.Size} bytes)");
        }

        foreach (var group in placements.GroupBy(p => p.Device, StringComparer.Ordinal))
        {
            var sorted = group.OrderBy(p => p.Offset).ToList();
            for (int i = 1; i < sorted.Count; i++)
            {
                var (a, b) = (sorted[i - 1], sorted[i]);
                if (b.Offset < a.End)
                {
                    var (first, second) = (a.Target, a.Lun).CompareTo((b.Target, b.Lun)) < 0 ? (a, b) : (b, a);
                    throw new ConfigException(
                        $"{second.At}.backend",
                        $"slice [{second.Offset}, {second.End}) of device '{second.Device}' overlaps {first.At} [{first.Offset}, {first.End})");
                }
            }
        }
    }

    private static void ValidateFunctions(ServerConfig c, Dictionary<string, (int Index, long? Size)> devices)
    {
        if (c.Functions is null)
            throw new ConfigException("functions", "must be an array, not null");
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        // Target name -> the function that has it.
        var owner = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var targetNames = new HashSet<string>(c.Targets.Select(t => t.Name), StringComparer.OrdinalIgnoreCase);
        for (int f = 0; f < c.Functions.Count; f++)
        {
            string at = $"functions[{f}]";
            var function = c.Functions[f] ?? throw new ConfigException(at, "must be an object, not null");
            ValidateName(function.Name, $"{at}.name");
            if (!names.TryAdd(function.Name, f))
                throw new ConfigException($"{at}.name", $"duplicate function '{function.Name}' (same as functions[{names[function.Name]}])");
            if (function.Targets is null || function.Targets.Count == 0)
                throw new ConfigException($"{at}.targets", "at least one target is required");
            for (int i = 0; i < function.Targets.Count; i++)
            {
                string target = function.Targets[i];
                if (target is null || !targetNames.Contains(target))
                    throw new ConfigException($"{at}.targets[{i}]", $"unknown target '{target}' (not in targets[])");
                if (owner.TryGetValue(target, out string? previous))
                {
                    throw new ConfigException(
                        $"{at}.targets[{i}]",
                        previous == function.Name ? $"'{target}' is listed twice" : $"'{target}' already belongs to function '{previous}' (a target belongs to at most one function)");
                }
                owner.Add(target, function.Name);
            }

            Rate(function.ReservationIops, $"{at}.reservationIops");
            Rate(function.ReservationMbps, $"{at}.reservationMbps");
            Rate(function.LimitIops, $"{at}.limitIops");
            Rate(function.LimitMbps, $"{at}.limitMbps");
            Rate(function.LatencyTargetMs, $"{at}.latencyTargetMs");
            if (!(function.Weight > 0) || !double.IsFinite(function.Weight))
                throw new ConfigException($"{at}.weight", string.Create(CultureInfo.InvariantCulture, $"must be a number > 0 (got {function.Weight})"));
            if (function.Priority is < 0 or > 255)
                throw new ConfigException($"{at}.priority", string.Create(CultureInfo.InvariantCulture, $"must be between 0 and 255 (got {function.Priority})"));
            if (function.LimitIops > 0 && function.LimitIops < function.ReservationIops)
                throw new ConfigException($"{at}.limitIops", string.Create(CultureInfo.InvariantCulture, $"must not be below reservationIops ({function.LimitIops} < {function.ReservationIops})"));
            if (function.LimitMbps > 0 && function.LimitMbps < function.ReservationMbps)
                throw new ConfigException($"{at}.limitMbps", string.Create(CultureInfo.InvariantCulture, $"must not be below reservationMbps ({function.LimitMbps} < {function.ReservationMbps})"));
        }

        // A shared device that any function uses is scheduled; I/O from a target outside every
        // function would bypass the scheduler and eat the functions' reservations.
        var placements = SlicePlacement.Plan(c);
        foreach (var device in devices.Keys)
        {
            var users = placements.Where(p => p.Device == device).ToList();
            var scheduled = users.FirstOrDefault(p => owner.ContainsKey(c.Targets[p.Target].Name));
            var unscheduled = users.FirstOrDefault(p => !owner.ContainsKey(c.Targets[p.Target].Name));
            if (scheduled is not null && unscheduled is not null)
            {
                throw new ConfigException(
                    $"{unscheduled.At}.backend",
                    $"device '{device}' is shared by function '{owner[c.Targets[scheduled.Target].Name]}', so target '{c.Targets[unscheduled.Target].Name}' must be in a function too");
            }
        }
    }

    private static void ValidateQos(QosConfig? q)
    {
        if (q is null)
            throw new ConfigException("qos", "must be an object, not null");
        if (q.Mode is not ("mclock" or "fifo"))
            throw new ConfigException("qos.mode", $"must be mclock or fifo (got '{q.Mode}')");
        if (q.MaxOutstanding is < 1 or > 65535)
            throw new ConfigException("qos.maxOutstanding", string.Create(CultureInfo.InvariantCulture, $"must be between 1 and 65535 (got {q.MaxOutstanding})"));
        if (!(q.ReservationBurstMs >= 0 && q.ReservationBurstMs <= 10_000))
            throw new ConfigException("qos.reservationBurstMs", string.Create(CultureInfo.InvariantCulture, $"must be between 0 and 10000 (got {q.ReservationBurstMs})"));
        if (!(q.ReservationHeadroom >= 0 && q.ReservationHeadroom <= 1))
            throw new ConfigException("qos.reservationHeadroom", string.Create(CultureInfo.InvariantCulture, $"must be between 0 and 1 (got {q.ReservationHeadroom})"));
        if (!(q.AdaptiveLatencyTolerance >= 0.05 && q.AdaptiveLatencyTolerance <= 10))
            throw new ConfigException("qos.adaptiveLatencyTolerance", string.Create(CultureInfo.InvariantCulture, $"must be between 0.05 and 10 (got {q.AdaptiveLatencyTolerance})"));
        if (q.CostUnitBytes is < 512 or > 1 << 30)
            throw new ConfigException("qos.costUnitBytes", string.Create(CultureInfo.InvariantCulture, $"must be between 512 and {1 << 30} (got {q.CostUnitBytes})"));
        if (q.SplitBytes != 0 && (q.SplitBytes < 4096 || q.SplitBytes % 512 != 0))
            throw new ConfigException("qos.splitBytes", string.Create(CultureInfo.InvariantCulture, $"must be 0 (never split) or a multiple of 512 of at least 4096 (got {q.SplitBytes})"));
    }

    private static void Rate(double value, string at)
    {
        if (!(value >= 0) || !double.IsFinite(value))
            throw new ConfigException(at, string.Create(CultureInfo.InvariantCulture, $"must be a number >= 0, 0 for none (got {value})"));
    }

    // Device and function names: short identifiers that are safe in logs, metrics labels and URLs.
    private static void ValidateName(string? name, string at)
    {
        if (string.IsNullOrEmpty(name))
            throw new ConfigException(at, "must not be empty");
        if (name.Length > 64)
            throw new ConfigException(at, $"must be at most 64 characters (got {name.Length})");
        foreach (char ch in name)
        {
            if (!(char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.'))
                throw new ConfigException(at, $"invalid name '{name}' (letters, digits, '-', '_' and '.' only)");
        }
    }

    private static HashSet<ushort> ValidatePortals(List<PortalConfig>? portals)
    {
        if (portals is null || portals.Count == 0)
            throw new ConfigException("portals", "at least one portal is required");

        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var groupTags = new HashSet<ushort>();
        for (int i = 0; i < portals.Count; i++)
        {
            string at = $"portals[{i}]";
            var portal = portals[i] ?? throw new ConfigException(at, "must be an object, not null");
            if (!PortalAddress.TryParseHost(portal.Host, out var address))
                throw new ConfigException($"{at}.host", $"invalid host '{portal.Host}' (expected an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::1)");
            if (portal.Port is < 0 or > 65535)
                throw new ConfigException($"{at}.port", $"must be between 0 and 65535 (got {portal.Port}); 0 picks a free port");
            if (portal.Port != 0)
            {
                string endpoint = PortalAddress.Format(address.ToString(), portal.Port);
                if (!seen.TryAdd(endpoint, i))
                    throw new ConfigException(at, $"duplicate portal {endpoint} (same as portals[{seen[endpoint]}])");
            }
            groupTags.Add(portal.GroupTag);
        }
        return groupTags;
    }

    private static void ValidateTargets(ServerConfig c, HashSet<ushort> groupTags, Dictionary<string, string> stores)
    {
        var targets = c.Targets;
        if (targets is null || targets.Count == 0)
            throw new ConfigException("targets", "at least one target is required");

        var names = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (int t = 0; t < targets.Count; t++)
        {
            string at = $"targets[{t}]";
            var target = targets[t] ?? throw new ConfigException(at, "must be an object, not null");
            if (!IscsiName.TryValidate(target.Name, out string? problem))
                throw new ConfigException($"{at}.name", problem);
            if (!names.TryAdd(target.Name, t))
                throw new ConfigException($"{at}.name", $"duplicate target '{target.Name}' (same as targets[{names[target.Name]}])");
            if (target.Alias is not null)
                ValidateText(target.Alias, $"{at}.alias", maxLength: 255);

            ValidateLuns(target.Luns, at, c.DataDir, stores);
            ValidateInitiators(target.AllowedInitiators, $"{at}.allowedInitiators");

            if (target.Chap is not null)
                ValidateChap(target.Chap, $"{at}.chap");
            if (target.MutualChap is not null)
            {
                if (target.Chap is null)
                    throw new ConfigException($"{at}.mutualChap", $"requires {at}.chap (the initiator must authenticate before the target does)");
                ValidateChap(target.MutualChap, $"{at}.mutualChap");
                // RFC 7143 §12.1.3: a secret used to authenticate initiators must not authenticate a target.
                if (string.Equals(target.MutualChap.Secret, target.Chap.Secret, StringComparison.Ordinal))
                    throw new ConfigException($"{at}.mutualChap.secret", $"must differ from {at}.chap.secret (RFC 7143 §12.1.3)");
            }

            if (target.PortalGroups is null)
                throw new ConfigException($"{at}.portalGroups", "must be an array, not null");
            for (int g = 0; g < target.PortalGroups.Count; g++)
            {
                ushort tag = target.PortalGroups[g];
                if (!groupTags.Contains(tag))
                    throw new ConfigException($"{at}.portalGroups[{g}]", $"no portal has groupTag {tag}");
            }
        }
    }

    private static void ValidateLuns(List<LunConfig>? luns, string targetAt, string dataDir, Dictionary<string, string> stores)
    {
        if (luns is null || luns.Count == 0)
            throw new ConfigException($"{targetAt}.luns", "at least one LUN is required");

        var numbers = new Dictionary<ulong, int>();
        for (int l = 0; l < luns.Count; l++)
        {
            string at = $"{targetAt}.luns[{l}]";
            var lun = luns[l] ?? throw new ConfigException(at, "must be an object, not null");
            if (lun.Number > MaxLunNumber)
                throw new ConfigException($"{at}.number", $"must be between 0 and {MaxLunNumber} (got {lun.Number})");
            if (!numbers.TryAdd(lun.Number, l))
                throw new ConfigException($"{at}.number", $"duplicate LUN {lun.Number} (same as {targetAt}.luns[{numbers[lun.Number]}])");

            if (lun.BlockSize is not (512 or 4096))
                throw new ConfigException($"{at}.blockSize", $"must be 512 or 4096 (got {lun.BlockSize})");
            if (lun.CacheMode is null || !CacheModes.Contains(lun.CacheMode))
                throw new ConfigException($"{at}.cacheMode", $"must be {string.Join(" or ", CacheModes)} (got '{lun.CacheMode}')");
            if (lun.Serial is not null)
                ValidateText(lun.Serial, $"{at}.serial", maxLength: 64);

            if (DeviceSlice.IsSlice(lun.Backend))
            {
                if (!DeviceSlice.TryParse(lun.Backend, out _, out string? error))
                    throw new ConfigException($"{at}.backend", error);
            }
            else
            {
                ValidateBackend(lun.Backend, $"{at}.backend", lun.BlockSize, dataDir, stores);
            }
        }
    }

    private static void ValidateInitiators(List<string>? initiators, string at)
    {
        if (initiators is null)
            throw new ConfigException(at, "must be an array, not null");
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < initiators.Count; i++)
        {
            if (!IscsiName.TryValidate(initiators[i], out string? problem))
                throw new ConfigException($"{at}[{i}]", problem);
            if (!seen.Add(initiators[i]))
                throw new ConfigException($"{at}[{i}]", $"'{initiators[i]}' is listed twice");
        }
    }

    private static void ValidateChap(ChapConfig chap, string at)
    {
        if (string.IsNullOrEmpty(chap.User))
            throw new ConfigException($"{at}.user", "must not be empty");
        ValidateText(chap.User, $"{at}.user", maxLength: 255);
        if (string.IsNullOrEmpty(chap.Secret))
            throw new ConfigException($"{at}.secret", "must not be empty");
        if (chap.Secret.Length > 255)
            throw new ConfigException($"{at}.secret", "must be at most 255 characters");
    }

    // Text that goes into login keys or VPD pages: printable, no control characters.
    private static void ValidateText(string value, string at, int maxLength)
    {
        if (value.Length == 0)
            throw new ConfigException(at, "must not be empty (leave it out instead)");
        if (value.Length > maxLength)
            throw new ConfigException(at, $"must be at most {maxLength} characters (got {value.Length})");
        foreach (char ch in value)
        {
            if (char.IsControl(ch))
                throw new ConfigException(at, "must not contain control characters");
        }
    }

    private static void ValidateLimits(LimitsConfig? l)
    {
        if (l is null)
            throw new ConfigException("limits", "must be an object, not null");

        Range(l.MaxSessions, 1, 65535, "maxSessions");
        Range(l.MaxConnectionsPerSession, 1, 65535, "maxConnectionsPerSession");
        Range(l.CommandWindow, 1, 65535, "commandWindow");
        Range(l.MaxRecvDataSegmentLength, 512, MaxDataSegmentLength, "maxRecvDataSegmentLength");
        Range(l.MaxBurstLength, 512, MaxDataSegmentLength, "maxBurstLength");
        Range(l.FirstBurstLength, 512, MaxDataSegmentLength, "firstBurstLength");
        if (l.FirstBurstLength > l.MaxBurstLength)
            throw new ConfigException("limits.firstBurstLength", $"must not exceed limits.maxBurstLength ({l.FirstBurstLength} > {l.MaxBurstLength}, RFC 7143 §13.14)");
        Range(l.MaxOutstandingR2T, 1, 65535, "maxOutstandingR2T");
        // Level 2 (connection recovery, task reassignment) is not implemented, so it is not offered.
        Range(l.MaxErrorRecoveryLevel, 0, 1, "maxErrorRecoveryLevel");
        Range(l.DefaultTime2Wait, 0, 3600, "defaultTime2Wait");
        Range(l.DefaultTime2Retain, 0, 3600, "defaultTime2Retain");
        Range(l.MaxTransferLength, 512, 1 << 30, "maxTransferLength");
        Range(l.LoginTimeoutSeconds, 1, 3600, "loginTimeoutSeconds");
        Range(l.NopInIntervalSeconds, 0, 3600, "nopInIntervalSeconds");
        Range(l.NopInTimeoutSeconds, 1, 3600, "nopInTimeoutSeconds");
    }

    private static void Range(int value, int min, int max, string key)
    {
        if (value < min || value > max)
        {
            throw new ConfigException(
                $"limits.{key}",
                string.Create(CultureInfo.InvariantCulture, $"must be between {min} and {max} (got {value})"));
        }
    }
}
