using Sluice.Qos;
using Sluice.Scsi;
using Sluice.Storage;

namespace Sluice.Target;

/// <summary>
/// EXTENDED COPY across the server (SPC-4 6.4): a CSCD identification descriptor's NAA
/// designator names an LU of any target of this server, provided that target's ACL admits the
/// initiator that sent the copy. The copy's I/O on a QoS-scheduled LU goes through the LU's
/// scheduler, charged to its function like the LU's own commands.
/// </summary>
internal sealed class CopyTargetResolver(Func<IEnumerable<TargetNode>> targets) : ICopyTargetResolver
{
    public CopyTarget? Resolve(ReadOnlySpan<byte> designator, ITNexus requester)
    {
        foreach (var node in targets())
        {
            var lu = node.Device.FindUnitByDesignator(designator);
            if (lu is null)
            {
                continue;
            }

            bool same = string.Equals(node.Name, requester.TargetName, StringComparison.OrdinalIgnoreCase);
            if (!same && !node.Admits(requester.InitiatorName))
            {
                return null; // the ACL keeps this initiator out: not reachable for it
            }

            // On another target the copy manager acts through that target's port with the same
            // portal group tag, so that target's reservations are checked for this initiator.
            var nexus = same
                ? requester
                : requester with
                {
                    TargetName = node.Name,
                    TargetPortName = requester.TargetPortName.StartsWith(requester.TargetName, StringComparison.Ordinal)
                        ? node.Name + requester.TargetPortName[requester.TargetName.Length..]
                        : node.Name,
                };
            // A scheduled LUN's own device waits for its function's turn: the copy's reads and
            // writes are scheduled like any other of that function's.
            return new CopyTarget(node.Device, lu, nexus);
        }

        return null;
    }
}
