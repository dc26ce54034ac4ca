using System.Buffers.Binary;
using Sluice.Storage;

namespace Sluice.Scsi.Tests;

public class ProvisioningTests
{
    private const int Blocks = 16384; // 8 MiB: eight 1 MiB chunks of the memory back end

    private static Harness Thin() => new Harness(new MemoryBlockDevice(Blocks * 512L), blocks: Blocks).Ready();

    private static byte[] Unmap(int listLength, bool anchor = false) =>
        [0x42, (byte)(anchor ? 1 : 0), 0, 0, 0, 0, 0, (byte)(listLength >> 8), (byte)listLength, 0];

    private static byte[] UnmapList(params (ulong Lba, uint Blocks)[] ranges)
    {
        var b = new byte[8 + (16 * ranges.Length)];
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)(b.Length - 2));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)(16 * ranges.Length));
        for (int i = 0; i < ranges.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8 + (16 * i)), ranges[i].Lba);
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16 + (16 * i)), ranges[i].Blocks);
        }
        return b;
    }

    private static byte[] WriteSame16(ulong lba, uint blocks, bool unmap = false, bool ndob = false, bool anchor = false)
    {
        var c = Cdb.Rw16(0x93, lba, blocks, (byte)((unmap ? 0x08 : 0) | (ndob ? 0x01 : 0) | (anchor ? 0x10 : 0)));
        return c;
    }

    private static byte[] GetLbaStatus(ulong lba, uint alloc = 4096)
    {
        var c = new byte[16];
        c[0] = 0x9E;
        c[1] = 0x12;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(10), alloc);
        return c;
    }

    private static byte[] Fill(int length, byte value)
    {
        var b = new byte[length];
        Array.Fill(b, value);
        return b;
    }

    [Fact]
    public void ThinLu_ReadCapacity16_ReportsLbpmeAndLbprz()
    {
        var r = Thin().Run(Cdb.ReadCapacity16(), 32);
        Assert.Equal(0xC0, r.Data[14] & 0xC0);
        var full = new Harness().Ready().Run(Cdb.ReadCapacity16(), 32);
        Assert.Equal(0, full.Data[14] & 0xC0);
    }

    [Fact]
    public void ThinLu_Vpd_ReportsProvisioningAndLimits()
    {
        var h = Thin();
        var b2 = h.Run(Cdb.Inquiry(true, 0xB2), 255).Data;
        Assert.Equal(0xE4, b2[5]); // LBPU LBPWS LBPWS10 LBPRZ
        Assert.Equal(0x02, b2[6] & 0x07); // thin
        var b0 = h.Run(Cdb.Inquiry(true, 0xB0), 255).Data;
        Assert.True(BinaryPrimitives.ReadUInt32BigEndian(b0.AsSpan(20)) > 0);
        Assert.Equal(256u, BinaryPrimitives.ReadUInt32BigEndian(b0.AsSpan(24)));
        Assert.Equal(2048u, BinaryPrimitives.ReadUInt32BigEndian(b0.AsSpan(28)));
        Assert.True(BinaryPrimitives.ReadUInt64BigEndian(b0.AsSpan(36)) > 0);
        var full = new Harness().Ready().Run(Cdb.Inquiry(true, 0xB2), 255).Data;
        Assert.Equal(0, full[5]);
        Assert.Equal(0, full[6]);
    }

    [Fact]
    public void Unmap_WholeChunk_ReadsZerosAndReportsDeallocated()
    {
        var h = Thin();
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x2A, 2048, 4096 - 2048), dataOut: Fill(2048 * 512, 0xAB)).Status);
        var status = h.Run(GetLbaStatus(2048), 4096);
        Assert.Equal(ScsiStatus.Good, status.Status);
        Assert.Equal(2048ul, BinaryPrimitives.ReadUInt64BigEndian(status.Data.AsSpan(8)));
        Assert.Equal(0, status.Data[20]); // mapped
        var list = UnmapList((2048, 2048));
        Assert.Equal(ScsiStatus.Good, h.Run(Unmap(list.Length), dataOut: list).Status);
        var read = h.Run(Cdb.Rw10(0x28, 2048, 8), 8 * 512);
        Assert.All(read.Data, b => Assert.Equal(0, b));
        status = h.Run(GetLbaStatus(2048), 4096);
        Assert.Equal(2048ul, BinaryPrimitives.ReadUInt64BigEndian(status.Data.AsSpan(8)));
        Assert.Equal(1, status.Data[20]); // deallocated
        Assert.True(BinaryPrimitives.ReadUInt32BigEndian(status.Data.AsSpan(16)) >= 2048);
    }

    [Fact]
    public void Unmap_PartialChunk_ReadsZerosStaysMapped()
    {
        var h = Thin();
        h.Run(Cdb.Rw10(0x2A, 0, 16), dataOut: Fill(16 * 512, 0x11));
        var list = UnmapList((4, 4));
        Assert.Equal(ScsiStatus.Good, h.Run(Unmap(list.Length), dataOut: list).Status);
        var read = h.Run(Cdb.Rw10(0x28, 0, 16), 16 * 512).Data;
        Assert.All(read.AsSpan(4 * 512, 4 * 512).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(0x11, read[8 * 512]);
        Assert.Equal(0, h.Run(GetLbaStatus(4), 24).Data[20]);
    }

    [Fact]
    public void Unmap_Errors()
    {
        var h = Thin();
        Assert.Equal(ScsiStatus.Good, h.Run(Unmap(0)).Status);
        Assert.Equal(Asc.ParameterListLengthError, h.Run(Unmap(4), dataOut: new byte[4]).AscAscq);
        var oob = UnmapList((Blocks - 1, 2));
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Unmap(oob.Length), dataOut: oob).AscAscq);
        var ok = UnmapList((0, 1));
        var anchor = h.Run(Unmap(ok.Length, anchor: true), dataOut: ok);
        Assert.Equal(Asc.InvalidFieldInCdb, anchor.AscAscq);
        var tooMany = UnmapList([.. Enumerable.Range(0, 257).Select(i => ((ulong)i, 1u))]);
        Assert.Equal(Asc.InvalidFieldInParameterList, h.Run(Unmap(tooMany.Length), dataOut: tooMany).AscAscq);
    }

    [Fact]
    public void Unmap_FullyProvisionedLu_IsInvalidOpcode()
    {
        var h = new Harness().Ready();
        var list = UnmapList((0, 1));
        Assert.Equal(Asc.InvalidCommandOperationCode, h.Run(Unmap(list.Length), dataOut: list).AscAscq);
    }

    [Fact]
    public void Unmap_WriteProtected_DataProtect()
    {
        var h = new Harness(new MemoryBlockDevice(Blocks * 512L), blocks: Blocks, options: new LogicalUnitOptions { ReadOnly = true }).Ready();
        var list = UnmapList((0, 1));
        var r = h.Run(Unmap(list.Length), dataOut: list);
        Assert.Equal(SenseKey.DataProtect, r.Key);
    }

    [Fact]
    public void WriteSame_Pattern_FillsRange()
    {
        var h = new Harness().Ready();
        var block = Enumerable.Range(0, 512).Select(i => (byte)i).ToArray();
        var r = h.Run(Cdb.Rw10(0x41, 10, 5), dataOut: block);
        Assert.Equal(ScsiStatus.Good, r.Status);
        for (int i = 10; i < 15; i++)
        {
            Assert.Equal(block, h.Device.Data.AsSpan(i * 512, 512).ToArray());
        }
        Assert.Equal(0, h.Device.Data[15 * 512 + 1]);
    }

    [Fact]
    public void WriteSame16_UnmapZeros_Deallocates()
    {
        var h = Thin();
        h.Run(Cdb.Rw10(0x2A, 4096, 2048), dataOut: Fill(2048 * 512, 0x55));
        Assert.Equal(ScsiStatus.Good, h.Run(WriteSame16(4096, 2048, unmap: true), dataOut: new byte[512]).Status);
        Assert.Equal(1, h.Run(GetLbaStatus(4096), 24).Data[20]);
        // NDOB: no data-out buffer, zeros.
        h.Run(Cdb.Rw10(0x2A, 4096, 2048), dataOut: Fill(2048 * 512, 0x55));
        Assert.Equal(ScsiStatus.Good, h.Run(WriteSame16(4096, 2048, unmap: true, ndob: true)).Status);
        Assert.Equal(1, h.Run(GetLbaStatus(4096), 24).Data[20]);
    }

    [Fact]
    public void WriteSame_UnmapNonZeroData_DeallocatesOnThin_WritesOnFull()
    {
        // libiscsi WriteSame10/16.UnmapUntilEnd: UNMAP=1 with a 0xFF block, then LBPRZ zeros.
        var h = Thin();
        h.Run(Cdb.Rw10(0x2A, Blocks - 8, 8), dataOut: Fill(8 * 512, 0x55));
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x41, Blocks - 8, 0, 0x08), dataOut: Fill(512, 0xFF)).Status);
        Assert.All(h.Run(Cdb.Rw10(0x28, Blocks - 8, 8), 8 * 512).Data, b => Assert.Equal(0, b));
        Assert.Equal(ScsiStatus.Good, h.Run(WriteSame16(0, 4, unmap: true), dataOut: Fill(512, 7)).Status);
        Assert.All(h.Run(Cdb.Rw10(0x28, 0, 4), 2048).Data, b => Assert.Equal(0, b));
        // A fully provisioned LU ignores UNMAP=1 and writes the block.
        var full = new Harness(blocks: 100).Ready();
        Assert.Equal(ScsiStatus.Good, full.Run(WriteSame16(0, 4, unmap: true), dataOut: Fill(512, 7)).Status);
        Assert.All(full.Run(Cdb.Rw10(0x28, 0, 4), 2048).Data, b => Assert.Equal(7, b));
    }

    [Fact]
    public void WriteSame_Errors()
    {
        var h = new Harness(blocks: 100).Ready();
        var block = new byte[512];
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw10(0x41, 99, 2), dataOut: block).AscAscq);
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw10(0x41, 101, 0), dataOut: block).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x41, 0, 0), dataOut: block).Status); // to the end
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(WriteSame16(0, 1, anchor: true, unmap: true), dataOut: block).AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb.Rw10(0x41, 0, 1, 0x20), dataOut: block).AscAscq);
        var limited = new Harness(blocks: 100, options: new LogicalUnitOptions { MaxWriteSameLengthBytes = 10 * 512 }).Ready();
        Assert.Equal(Asc.InvalidFieldInCdb, limited.Run(Cdb.Rw10(0x41, 0, 11), dataOut: block).AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, limited.Run(Cdb.Rw10(0x41, 0, 0), dataOut: block).AscAscq);
        Assert.Equal(ScsiStatus.Good, limited.Run(Cdb.Rw10(0x41, 90, 0), dataOut: block).Status);
        var ro = new Harness(blocks: 100, options: new LogicalUnitOptions { ReadOnly = true }).Ready();
        Assert.Equal(SenseKey.DataProtect, ro.Run(Cdb.Rw10(0x41, 0, 1), dataOut: block).Key);
    }

    [Fact]
    public void GetLbaStatus_FullyProvisioned_AllMapped_AndBeyondEnd()
    {
        var h = new Harness(blocks: 100).Ready();
        var r = h.Run(GetLbaStatus(10), 64);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(20u, BinaryPrimitives.ReadUInt32BigEndian(r.Data));
        Assert.Equal(10ul, BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(8)));
        Assert.Equal(90u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(16)));
        Assert.Equal(0, r.Data[20]);
        Assert.Equal(Asc.LbaOutOfRange, h.Run(GetLbaStatus(100), 64).AscAscq);
    }

    [Fact]
    public void GetLbaStatus_Thin_ReportsAlternatingExtents()
    {
        var h = Thin();
        h.Run(Cdb.Rw10(0x2A, 2048, 1), dataOut: Fill(512, 1));
        var r = h.Run(GetLbaStatus(0), 4096);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(8)));
        Assert.Equal(2048u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(16)));
        Assert.Equal(1, r.Data[20]);
        Assert.Equal(2048ul, BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(24)));
        Assert.Equal(0, r.Data[36]);
        Assert.Equal(4096ul, BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(40)));
        Assert.Equal(1, r.Data[52]);
    }
}
