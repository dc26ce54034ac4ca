using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Sluice.Target.Configuration;

namespace Sluice.Target;

/// <summary>
/// Functions added and removed at run time (<c>sluice fn add</c> / <c>sluice fn rm</c>). Such a
/// change lives until the server stops, like <c>fn set</c>: the config file is not rewritten.
/// </summary>
public sealed partial class TargetServer
{
    // One add or rm at a time; readers (logins, discovery, stats) never wait for it.
    private readonly SemaphoreSlim _functionChanges = new(1, 1);

    // Where every sliced LUN of the running targets lies, offsets resolved once: removing a
    // target must not move the slices the config placed after it.
    private readonly List<LiveSlice> _liveSlices = [];

    private readonly record struct LiveSlice(string Target, int LunIndex, string Device, long Offset, long Size);

    private void RecordSlices(List<SlicePlacement> plan)
    {
        lock (_liveSlices)
        {
            foreach (var p in plan)
                _liveSlices.Add(new LiveSlice(_config.Targets[p.Target].Name, p.Lun, p.Device, p.Offset, p.Size));
        }
    }

    /// <summary>
    /// Adds a function with one target whose LUNs are slices of configured devices
    /// (<c>device:NAME[:OFFSET]:SIZE</c>; without an offset, the first free range of the device that
    /// fits). The whole config with the new function is checked by <see cref="ConfigValidator"/>
    /// first, so nothing changes when anything is wrong. The target is live when this returns:
    /// discovery shows it to its initiators, logins work, its I/O is scheduled on the devices.
    /// </summary>
    /// <exception cref="ConfigException">The function or target is invalid or clashes with the running config.</exception>
    internal async Task AddFunctionAsync(FunctionConfig function, TargetConfig target, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(target);
        await _functionChanges.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Volatile.Read(ref _state) != 1)
                throw new InvalidOperationException("the server is not running");
            function.Targets = [target.Name];
            for (int l = 0; l < target.Luns.Count; l++)
            {
                if (target.Luns[l] is null || !DeviceSlice.IsSlice(target.Luns[l].Backend))
                    throw new ConfigException($"luns[{l}]", $"must be a slice of a configured device ({DeviceSlice.Prefix}NAME[:OFFSET]:SIZE)");
            }

            var placed = PlaceSlices(target);
            var candidate = CandidateConfig(target, placed, function);
            try
            {
                ConfigValidator.Validate(candidate);
            }
            catch (ConfigException e)
            {
                throw new ConfigException(NameIndexes(e.Message, candidate), e);
            }

            // The validated copy, with every offset explicit, is what runs.
            var pinnedTarget = candidate.Targets[^1];
            var pinnedFunction = candidate.Functions[^1];
            Functions.AddFunction(pinnedFunction);
            TargetNode node;
            try
            {
                var slices = new Dictionary<int, SlicePlacement>();
                foreach (var p in SlicePlacement.Plan(candidate).Where(p => p.Target == candidate.Targets.Count - 1))
                    slices.Add(p.Lun, p);
                node = OpenTarget(pinnedTarget, slices);
            }
            catch
            {
                await Functions.TryRemoveFunctionAsync(pinnedFunction.Name, TimeSpan.Zero).ConfigureAwait(false);
                throw;
            }

            lock (_liveSlices)
            {
                for (int l = 0; l < placed.Count; l++)
                    _liveSlices.Add(new LiveSlice(pinnedTarget.Name, l, placed[l].Device, placed[l].Offset, placed[l].Size));
            }

            _config.Targets = [.. _config.Targets, pinnedTarget];
            _config.Functions = [.. _config.Functions, pinnedFunction];
            _targets = new Dictionary<string, TargetNode>(_targets, StringComparer.OrdinalIgnoreCase) { [node.Name] = node };
            Control.ControlLog.FunctionAdded(_logger, pinnedFunction.Name, node.Name, target.Luns.Count);
        }
        finally
        {
            _functionChanges.Release();
        }
    }

    /// <summary>
    /// Removes a function: its targets leave discovery and refuse logins at once; each of their
    /// sessions is asked to log out (Async Message, RFC 7143 §11.9.1) and dropped after a grace
    /// period, as on shutdown; its commands finish; its scheduler entries and slices are freed.
    /// </summary>
    /// <exception cref="KeyNotFoundException">No such function.</exception>
    /// <exception cref="InvalidOperationException">Requests were still running at the end of the grace period (run it again).</exception>
    internal async Task RemoveFunctionAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        await _functionChanges.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!Functions.FunctionNames.Contains(name, StringComparer.Ordinal))
                throw new KeyNotFoundException($"no function '{name}'");
            var targetNames = _config.Functions.Where(f => f.Name == name).SelectMany(f => f.Targets).ToHashSet(StringComparer.OrdinalIgnoreCase);
            var current = _targets;
            var nodes = current.Values.Where(t => targetNames.Contains(t.Name)).ToList();
            _targets = new Dictionary<string, TargetNode>(current.Where(p => !targetNames.Contains(p.Key)), StringComparer.OrdinalIgnoreCase);

            await EndSessionsOfAsync(nodes).ConfigureAwait(false);
            foreach (var node in nodes)
            {
                try
                {
                    await node.Device.FlushAllAsync(CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    Log.Unexpected(_logger, 0, ex);
                }
            }

            if (!await Functions.TryRemoveFunctionAsync(name, TimeSpan.FromSeconds(5)).ConfigureAwait(false))
                throw new InvalidOperationException($"function '{name}' still has requests at its devices; its targets are gone, run fn rm again to finish");

            lock (_liveSlices)
                _liveSlices.RemoveAll(s => targetNames.Contains(s.Target));
            _config.Targets = [.. _config.Targets.Where(t => !targetNames.Contains(t.Name))];
            _config.Functions = [.. _config.Functions.Where(f => f.Name != name)];
            Control.ControlLog.FunctionRemoved(_logger, name, nodes.Count);
        }
        finally
        {
            _functionChanges.Release();
        }
    }

    // Like StopAsync, for the sessions of some targets: Async logout request, a grace period, then drop.
    private async Task EndSessionsOfAsync(List<TargetNode> nodes)
    {
        var sessions = Sessions.Snapshot().Where(s => s.Target is not null && nodes.Contains(s.Target)).ToList();
        var connections = sessions.Select(s => s.Connection).OfType<IscsiConnection>().Distinct().ToList();
        foreach (var c in connections)
            await c.RequestLogoutAsync(1).ConfigureAwait(false);

        long deadline = Environment.TickCount64 + 2000;
        while (Environment.TickCount64 < deadline)
        {
            lock (_connectionsLock)
            {
                if (!connections.Any(_connections.Contains))
                    break;
            }

            await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
        }

        foreach (var c in connections)
            c.Close();
        foreach (var s in sessions)
            EndSession(s);
    }

    // Offsets for the new target's slices: as given, or the first free range of the device that fits.
    private List<(string Device, long Offset, long Size)> PlaceSlices(TargetConfig target)
    {
        List<(string Device, long Offset, long Size)> taken;
        lock (_liveSlices)
            taken = [.. _liveSlices.Select(s => (s.Device, s.Offset, s.Size))];
        var placed = new List<(string Device, long Offset, long Size)>();
        for (int l = 0; l < target.Luns.Count; l++)
        {
            if (!DeviceSlice.TryParse(target.Luns[l].Backend, out var slice, out string? error))
                throw new ConfigException($"luns[{l}]", error);
            long offset = slice.Offset ?? FirstFit(taken, slice.Device, slice.Size, Math.Max(512, target.Luns[l].BlockSize));
            placed.Add((slice.Device, offset, slice.Size));
            taken.Add((slice.Device, offset, slice.Size));
        }

        return placed;
    }

    private long FirstFit(List<(string Device, long Offset, long Size)> taken, string device, long size, int alignment)
    {
        long at = 0;
        foreach (var (_, offset, length) in taken.Where(t => t.Device == device).OrderBy(t => t.Offset))
        {
            if (offset - at >= size)
                break;
            at = Math.Max(at, offset + length);
            at = (at + alignment - 1) / alignment * alignment;
        }

        // Past the end the validator reports that the slice does not fit.
        return at;
    }

    // The running config plus the new target and function, every slice offset explicit.
    private ServerConfig CandidateConfig(TargetConfig target, List<(string Device, long Offset, long Size)> placed, FunctionConfig function)
    {
        var copy = JsonSerializer.Deserialize(JsonSerializer.Serialize(_config, ConfigJsonContext.Default.ServerConfig), ConfigJsonContext.Default.ServerConfig)!;
        lock (_liveSlices)
        {
            foreach (var s in _liveSlices)
            {
                var lun = copy.Targets.First(t => string.Equals(t.Name, s.Target, StringComparison.OrdinalIgnoreCase)).Luns[s.LunIndex];
                lun.Backend = SliceSpec(s.Device, s.Offset, s.Size);
            }
        }

        var added = JsonSerializer.Deserialize(JsonSerializer.Serialize(new ServerConfig { Targets = [target], Functions = [function] }, ConfigJsonContext.Default.ServerConfig), ConfigJsonContext.Default.ServerConfig)!;
        for (int l = 0; l < placed.Count; l++)
            added.Targets[0].Luns[l].Backend = SliceSpec(placed[l].Device, placed[l].Offset, placed[l].Size);
        copy.Targets.Add(added.Targets[0]);
        copy.Functions.Add(added.Functions[0]);
        return copy;
    }

    private static string SliceSpec(string device, long offset, long size) =>
        string.Create(CultureInfo.InvariantCulture, $"{DeviceSlice.Prefix}{device}:{offset}:{size}");

    // The validator names list positions; the operator knows targets and functions by name.
    private static string NameIndexes(string message, ServerConfig config)
    {
        message = Regex.Replace(message, @"targets\[(\d+)\]", m =>
            int.TryParse(m.Groups[1].Value, CultureInfo.InvariantCulture, out int i) && i < config.Targets.Count ? $"target '{config.Targets[i].Name}'" : m.Value);
        return Regex.Replace(message, @"functions\[(\d+)\]", m =>
            int.TryParse(m.Groups[1].Value, CultureInfo.InvariantCulture, out int i) && i < config.Functions.Count ? $"function '{config.Functions[i].Name}'" : m.Value);
    }
}
