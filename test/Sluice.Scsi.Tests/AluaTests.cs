using System.Buffers.Binary;

namespace Sluice.Scsi.Tests;

public class AluaTests
{
    private static byte[] Rtpg(int format, int alloc) =>
        [0xA3, (byte)((format << 5) | 0x0A), 0, 0, 0, 0, (byte)(alloc >> 24), (byte)(alloc >> 16), (byte)(alloc >> 8), (byte)alloc, 0, 0];

    [Fact]
    public void StandardInquiry_Tpgs01()
    {
        var r = new Harness().Ready().Run([0x12, 0, 0, 0, 96, 0], 96);
        Assert.Equal(0x10, r.Data[5] & 0x30);
    }

    [Fact]
    public void ReportTargetPortGroups_OneGroupPerPortalGroup_ActiveOptimized()
    {
        var h = new Harness().Ready();
        var second = new ITNexus("iqn.init-c", "iqn.init-c,i,0x000000000003", Harness.TargetName, Harness.TargetName + ",t,0x0002", 2, 2);
        h.Ready(second);
        h.Target.AddTargetPort(3, 3);
        var r = h.Run(Rtpg(0, 256), 256);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(4 + (3 * 12), r.Data.Length);
        Assert.Equal((uint)(r.Data.Length - 4), BinaryPrimitives.ReadUInt32BigEndian(r.Data));
        for (int g = 0; g < 3; g++)
        {
            var d = r.Data.AsSpan(4 + (12 * g), 12);
            Assert.Equal(0x80, d[0]);          // PREF, active/optimized
            Assert.Equal(0x01, d[1]);          // AO_SUP
            Assert.Equal(g + 1, BinaryPrimitives.ReadUInt16BigEndian(d[2..]));
            Assert.Equal(1, d[7]);
            Assert.Equal(g + 1, BinaryPrimitives.ReadUInt16BigEndian(d[10..]));
        }

        // VPD 83h's target port group designator names the group of the port asked through.
        var vpd = h.Run([0x12, 1, 0x83, 1, 0, 0], 256, nexus: second);
        int p = 4;
        int found = -1;
        while (p + 4 <= vpd.Data.Length)
        {
            if ((vpd.Data[p + 1] & 0x0F) == 0x05)
            {
                found = BinaryPrimitives.ReadUInt16BigEndian(vpd.Data.AsSpan(p + 6));
            }
            p += 4 + vpd.Data[p + 3];
        }
        Assert.Equal(2, found);
    }

    [Fact]
    public void ReportTargetPortGroups_ExtendedHeader_AllocationAndInvalidFormat()
    {
        var h = new Harness().Ready();
        var r = h.Run(Rtpg(1, 256), 256);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(0x10, r.Data[4]);
        Assert.Equal(8 + 12, r.Data.Length);
        Assert.Equal(4, h.Run(Rtpg(0, 4), 256).Data.Length);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Rtpg(2, 256), 256).AscAscq);
    }
}
