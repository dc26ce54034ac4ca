using Sluice.Scsi;
using Sluice.Target.Configuration;

namespace Sluice.Target;

/// <summary>A configured iSCSI target at run time: its SCSI device and who may reach it.</summary>
internal sealed class TargetNode
{
    public TargetNode(TargetConfig config, ScsiTargetDevice device)
    {
        Config = config;
        Device = device;
    }

    public TargetConfig Config { get; }

    public string Name => Config.Name;

    public ScsiTargetDevice Device { get; }

    /// <summary>The scheduled LUNs when the target belongs to a function; null means no scheduling at all.</summary>
    public TargetScheduling? Scheduling { get; set; }

    /// <summary>
    /// Runs one SCSI command that arrived at <paramref name="arrival"/> (a <see cref="System.Diagnostics.Stopwatch"/>
    /// timestamp); a scheduled LUN's device waits for its function's turn at each back-end operation
    /// (<see cref="TargetScheduling.ExecuteAsync"/>).
    /// </summary>
    public ValueTask<ScsiResponse> ExecuteAsync(ScsiRequest request, long arrival, CancellationToken cancellationToken) =>
        Scheduling is { } scheduling
            ? scheduling.ExecuteAsync(Device, request, arrival, cancellationToken)
            : Device.ExecuteAsync(request, cancellationToken);

    /// <summary>ACL check: empty list admits everyone (names compare case-insensitively, RFC 7143 §4.2.7.1).</summary>
    public bool Admits(string initiatorName)
    {
        if (Config.AllowedInitiators.Count == 0)
        {
            return true;
        }

        foreach (var allowed in Config.AllowedInitiators)
        {
            if (allowed == "*" || string.Equals(allowed, initiatorName, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    public bool ServesPortalGroup(ushort tpgt) => Config.PortalGroups.Count == 0 || Config.PortalGroups.Contains(tpgt);
}
