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

    [Fact]
    public void FormatUnit_NoParameterList_ZerosTheMedium()
    {
        var h = new Harness(blocks: 64).Ready();
        h.Device.Data.AsSpan().Fill(0x5A);
        var r = h.Run([0x04, 0, 0, 0, 0, 0]);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.DoesNotContain(h.Device.Data, b => b != 0);
    }

    [Fact]
    public void FormatUnit_ShortHeader_Accepted_LongHeaderToo()
    {
        var h = new Harness(blocks: 64).Ready();
        h.Device.Data.AsSpan().Fill(0x5A);
        Assert.Equal(ScsiStatus.Good, h.Run([0x04, 0x10, 0, 0, 0, 0], dataOut: [0, 0x02, 0, 0]).Status);
        Assert.DoesNotContain(h.Device.Data, b => b != 0);
        Assert.Equal(ScsiStatus.Good, h.Run([0x04, 0x30, 0, 0, 0, 0], dataOut: new byte[8]).Status);
    }

    [Fact]
    public void FormatUnit_InvalidFields_Rejected()
    {
        var h = new Harness(blocks: 64).Ready();
        h.Device.Data.AsSpan().Fill(0x5A);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run([0x04, 0x40, 0, 0, 0, 0]).AscAscq);            // FMTPINFO
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run([0x04, 0, 1, 0, 0, 0]).AscAscq);               // vendor byte
        Assert.Equal(Asc.ParameterListLengthError, h.Run([0x04, 0x10, 0, 0, 0, 0], dataOut: [0, 0]).AscAscq);
        Assert.Equal(Asc.InvalidFieldInParameterList, h.Run([0x04, 0x10, 0, 0, 0, 0], dataOut: [1, 0, 0, 0]).AscAscq);
        Assert.Equal(Asc.InvalidFieldInParameterList, h.Run([0x04, 0x10, 0, 0, 0, 0], dataOut: [0, 0x08, 0, 0]).AscAscq);
        Assert.Equal(Asc.InvalidFieldInParameterList, h.Run([0x04, 0x10, 0, 0, 0, 0], dataOut: [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]).AscAscq);
        Assert.Equal(0x5A, h.Device.Data[0]);
    }

    [Fact]
    public void FormatUnit_WriteProtected_DataProtect()
    {
        var h = new Harness(blocks: 64, deviceReadOnly: true).Ready();
        Assert.Equal(SenseKey.DataProtect, h.Run([0x04, 0, 0, 0, 0, 0]).Key);
    }
}
