using Sluice.Iscsi.Pdu;

namespace Sluice.Iscsi.Tests;

public sealed class BhsTests
{
    [Fact]
    public void Fields_RoundTrip_AtRfcOffsets()
    {
        var h = default(Bhs);
        h.Opcode = Opcode.ScsiCommand;
        h.Immediate = true;
        h.Flags = 0xc1;
        h.TotalAhsLength = 3;
        h.DataSegmentLength = 0x123456;
        h.Lun = 0x0001000000000000;
        h.InitiatorTaskTag = 0xdeadbeef;
        h.ExpectedDataTransferLength = 4096;
        h.CmdSN = 7;
        h.ExpStatSN = 9;

        Span<byte> raw = stackalloc byte[Bhs.Length];
        h.CopyTo(raw);
        Assert.Equal(0x41, raw[0]);
        Assert.Equal(0xc1, raw[1]);
        Assert.Equal(3, raw[4]);
        Assert.Equal(new byte[] { 0x12, 0x34, 0x56 }, raw.Slice(5, 3).ToArray());
        Assert.Equal(0x01, raw[9]);
        Assert.Equal(new byte[] { 0xde, 0xad, 0xbe, 0xef }, raw.Slice(16, 4).ToArray());
        Assert.Equal(0x10, raw[22]);
        Assert.Equal(7, raw[27]);
        Assert.Equal(9, raw[31]);

        var back = Bhs.Read(raw);
        Assert.Equal(Opcode.ScsiCommand, back.Opcode);
        Assert.True(back.Immediate);
        Assert.True(back.Final);
        Assert.Equal(0x123456, back.DataSegmentLength);
        Assert.Equal(0xdeadbeefu, back.InitiatorTaskTag);
    }

    [Fact]
    public void DataSegmentLength_Beyond24Bits_Throws()
    {
        var h = default(Bhs);
        Assert.Throws<ArgumentOutOfRangeException>(() => h.DataSegmentLength = 0x1000000);
    }

    [Theory]
    [InlineData(1u, 2u, true)]
    [InlineData(2u, 1u, false)]
    [InlineData(0xffffffffu, 0u, true)]
    [InlineData(0u, 0xffffffffu, false)]
    [InlineData(5u, 5u, false)]
    public void SerialNumber_LessThan_WrapsPerRfc1982(uint a, uint b, bool expected) =>
        Assert.Equal(expected, SerialNumber.LessThan(a, b));

    [Fact]
    public void SerialNumber_InWindow_AcrossWrap()
    {
        Assert.True(SerialNumber.InWindow(0, 0xfffffff0, 0x10));
        Assert.False(SerialNumber.InWindow(0x11, 0xfffffff0, 0x10));
        Assert.True(SerialNumber.InWindow(5, 5, 4 + 1));
    }
}
