using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>
/// READ DEFECT DATA(10)/(12) (SBC-3 5.11, 5.12). A virtual medium has no primary or grown
/// defects, so both lists are empty; the header reports the lists that were asked for as
/// valid (PLISTV/GLISTV) in the requested DEFECT LIST FORMAT.
/// </summary>
internal static class DefectCommands
{
    // Defect list formats (SBC-3 Table 38): 000b short block, 011b long block, 100b bytes
    // from index, 101b physical sector, 110b vendor specific. 001b, 010b and 111b are reserved.
    private static bool ValidFormat(int format) => format is 0 or 3 or 4 or 5 or 6;

    //  (10) byte 2: REQ_PLIST(4) REQ_GLIST(3) DEFECT LIST FORMAT(2:0)   bytes 7-8 ALLOCATION LENGTH
    //       header: 1 PLISTV GLISTV FORMAT   2-3 DEFECT LIST LENGTH
    //  (12) byte 1: REQ_PLIST(4) REQ_GLIST(3) DEFECT LIST FORMAT(2:0)   bytes 2-5 ADDRESS
    //       DESCRIPTOR INDEX (SBC-4)   bytes 6-9 ALLOCATION LENGTH
    //       header: 1 PLISTV GLISTV FORMAT   2-3 GENERATION CODE   4-7 DEFECT LIST LENGTH

    public static ValueTask<ScsiResponse> ReadDefectData(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var cdb = request.Cdb.Span;
        bool twelve = cdb[0] == 0xB7;
        int flagsByte = twelve ? 1 : 2;
        int format = cdb[flagsByte] & 0x07;
        long alloc = twelve ? BinaryPrimitives.ReadUInt32BigEndian(cdb[6..]) : BinaryPrimitives.ReadUInt16BigEndian(cdb[7..]);
        if (!ValidFormat(format))
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, lu, flagsByte, 2));
        }
        Span<byte> header = stackalloc byte[8];
        header.Clear();
        header[1] = (byte)((cdb[flagsByte] & 0x18) | format);
        var data = header[..(twelve ? 8 : 4)];
        return Responses.Done(SpcCommands.CopyOut(request, data, (int)Math.Min(alloc, int.MaxValue)));
    }
}
