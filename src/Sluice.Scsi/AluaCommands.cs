using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>
/// Implicit asymmetric logical unit access (SPC-4 5.11; TPGS=01b in standard INQUIRY).
/// Every iSCSI portal group is one target port group holding its target port, and every
/// group is active/optimized: the target is symmetric, but multipath initiators that rely on
/// ALUA still get a consistent picture (VPD 83h carries the same group in its target port
/// group designator).
/// </summary>
internal static class AluaCommands
{
    // ---- REPORT TARGET PORT GROUPS (SPC-4 6.36; MAINTENANCE IN A3h/0Ah) ------------------
    //  byte 1: PARAMETER DATA FORMAT(7:5) SERVICE ACTION   bytes 6-9 ALLOCATION LENGTH
    //  Parameter data: 0-3 RETURN DATA LENGTH (n-3); with the extended header (001b)
    //  4 FORMAT TYPE(6:4)=001b  5 IMPLICIT TRANSITION TIME. Then per group:
    //  0 PREF(7) ASYMMETRIC ACCESS STATE(3:0)  1 T_SUP O_SUP . . U_SUP S_SUP AN_SUP AO_SUP
    //  2-3 TARGET PORT GROUP  5 STATUS CODE  7 TARGET PORT COUNT, then per port 2-3 RELATIVE
    //  TARGET PORT IDENTIFIER.

    public static ValueTask<ScsiResponse> ReportTargetPortGroups(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var cdb = request.Cdb.Span;
        int format = cdb[1] >> 5;
        if (format > 1)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, lu, 1, 7));
        }
        long alloc = BinaryPrimitives.ReadUInt32BigEndian(cdb[6..]);
        var groups = target.TargetPortGroups(request.Nexus);
        int header = format == 1 ? 8 : 4;
        int length = header;
        foreach (var (_, ports) in groups)
        {
            length += 8 + (4 * ports.Count);
        }
        var data = new byte[length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)(length - 4));
        if (format == 1)
        {
            data[4] = 0x10; // FORMAT TYPE 001b; IMPLICIT TRANSITION TIME 0: no transitions
        }
        int p = header;
        foreach (var (group, ports) in groups)
        {
            data[p] = 0x80 | 0x00;  // PREF=1, ACTIVE/OPTIMIZED
            data[p + 1] = 0x01;     // AO_SUP: the only state this target uses
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(p + 2), group);
            data[p + 7] = (byte)ports.Count;
            p += 8;
            foreach (ushort port in ports)
            {
                BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(p + 2), port);
                p += 4;
            }
        }
        return Responses.Done(SpcCommands.CopyOut(request, data, (int)Math.Min(alloc, int.MaxValue)));
    }
}
