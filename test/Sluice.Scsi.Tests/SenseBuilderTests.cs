namespace Sluice.Scsi.Tests;

public class SenseBuilderTests
{
    [Fact]
    public void Write_FixedWithFieldPointer_EncodesSksv()
    {
        var s = new byte[252];
        int n = SenseBuilder.Write(s, false, SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, new FieldPointer(7, 3, true));
        Assert.Equal(18, n);
        Assert.Equal(0x70, s[0]);
        Assert.Equal(SenseKey.IllegalRequest, s[2]);
        Assert.Equal(10, s[7]);
        Assert.Equal(0x24, s[12]);
        Assert.Equal(0x00, s[13]);
        Assert.Equal(0x80 | 0x40 | 0x08 | 3, s[15]);
        Assert.Equal(0, s[16]);
        Assert.Equal(7, s[17]);
    }

    [Fact]
    public void Write_FixedWithInformation_SetsValid()
    {
        var s = new byte[252];
        SenseBuilder.Write(s, false, SenseKey.Miscompare, Asc.MiscompareDuringVerify, FieldPointer.None, true, 0x1234);
        Assert.Equal(0xF0, s[0]);
        Assert.Equal(new byte[] { 0, 0, 0x12, 0x34 }, s[3..7]);
    }

    [Fact]
    public void Write_Descriptor_HasInformationAndSksDescriptors()
    {
        var s = new byte[252];
        int n = SenseBuilder.Write(s, true, SenseKey.IllegalRequest, Asc.InvalidFieldInParameterList, new FieldPointer(300, -1, false), true, 5);
        Assert.Equal(0x72, s[0]);
        Assert.Equal(SenseKey.IllegalRequest, s[1]);
        Assert.Equal(0x26, s[2]);
        Assert.Equal(20, s[7]);
        Assert.Equal(28, n);
        Assert.Equal(0x00, s[8]);
        Assert.Equal(0x0A, s[9]);
        Assert.Equal(0x80, s[10]);
        Assert.Equal(5, s[19]);
        Assert.Equal(0x02, s[20]);
        Assert.Equal(0x80, s[24]); // SKSV, C/D=0, no bit pointer
        Assert.Equal(300 >> 8, s[25]);
        Assert.Equal(300 & 0xFF, s[26]);
    }

    [Fact]
    public void Write_SmallBuffer_Truncates()
    {
        var s = new byte[8];
        Assert.Equal(8, SenseBuilder.Write(s, false, SenseKey.NotReady, Asc.MediumNotPresent));
    }
}
