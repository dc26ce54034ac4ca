namespace Sluice.Scsi.Tests;

public class DefectAndFormatTests
{
    [Fact]
    public void ReadDefectData10_EmptyLists_HeaderEchoesRequest()
    {
        var h = new Harness().Ready();
        var r = h.Run([0x37, 0, 0x18 | 0x05, 0, 0, 0, 0, 0, 32, 0], 32);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(new byte[] { 0, 0x1D, 0, 0 }, r.Data);
        // Allocation length truncates.
        Assert.Equal(2, h.Run([0x37, 0, 0, 0, 0, 0, 0, 0, 2, 0], 32).Data.Length);
        Assert.Empty(h.Run([0x37, 0, 0, 0, 0, 0, 0, 0, 0, 0], 32).Data);
    }

    [Fact]
    public void ReadDefectData12_EmptyLists_EightByteHeader()
    {
        var h = new Harness().Ready();
        var r = h.Run([0xB7, 0x08 | 0x03, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], 64);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(new byte[] { 0, 0x0B, 0, 0, 0, 0, 0, 0 }, r.Data);
    }

    [Fact]
    public void ReadDefectData_ReservedFormat_InvalidField()
    {
        var h = new Harness().Ready();
        var r = h.Run([0x37, 0, 0x01, 0, 0, 0, 0, 0, 32, 0], 32);
        Assert.Equal(SenseKey.IllegalRequest, r.Key);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run([0x37, 0x01, 0, 0, 0, 0, 0, 0, 32, 0], 32).AscAscq);
    }
}
