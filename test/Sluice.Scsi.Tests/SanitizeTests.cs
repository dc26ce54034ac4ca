using Sluice.Storage;

namespace Sluice.Scsi.Tests;

public class SanitizeTests
{
    private static byte[] Cdb(int sa, int listLength, bool immed = false) =>
        [0x48, (byte)((immed ? 0x80 : 0) | sa), 0, 0, 0, 0, 0, (byte)(listLength >> 8), (byte)listLength, 0];

    private static byte[] OverwriteList(byte count, params byte[] pattern)
    {
        var list = new byte[4 + pattern.Length];
        list[0] = count;
        list[2] = (byte)(pattern.Length >> 8);
        list[3] = (byte)pattern.Length;
        pattern.CopyTo(list, 4);
        return list;
    }

    [Fact]
    public void Overwrite_WritesPatternToEveryBlock()
    {
        var h = new Harness(blocks: 32).Ready();
        var list = OverwriteList(1, 0xAA, 0x55, 0x01, 0x02);
        var r = h.Run(Cdb(0x01, list.Length), dataOut: list);
        Assert.Equal(ScsiStatus.Good, r.Status);
        for (int i = 0; i < h.Device.Data.Length; i += 4)
        {
            Assert.Equal(new byte[] { 0xAA, 0x55, 0x01, 0x02 }, h.Device.Data[i..(i + 4)]);
        }
        Assert.Equal(0, h.Unit.BackgroundOperation);
    }

    [Fact]
    public void Overwrite_Immed_CompletesInBackground()
    {
        var h = new Harness(blocks: 32).Ready();
        var list = OverwriteList(1, 0x11);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb(0x01, list.Length, immed: true), dataOut: list).Status);
        SpinWait.SpinUntil(() => h.Unit.BackgroundOperation == 0, 5000);
        Assert.DoesNotContain(h.Device.Data, b => b != 0x11);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(512 + 5)]
    public void Overwrite_BadParameterListLength_InvalidFieldInCdb(int length)
    {
        var h = new Harness(blocks: 32).Ready();
        var r = h.Run(Cdb(0x01, length), dataOut: new byte[520]);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
    }

    [Fact]
    public void Overwrite_BadListFields_Rejected()
    {
        var h = new Harness(blocks: 32).Ready();
        var zeroCount = OverwriteList(0, new byte[512]);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb(0x01, zeroCount.Length), dataOut: zeroCount).AscAscq);
        var zeroPattern = new byte[516];
        zeroPattern[0] = 1;
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb(0x01, 516), dataOut: zeroPattern).AscAscq);
    }

    [Fact]
    public void CryptoErase_NotSupported_BlockEraseOnlyWhenThin()
    {
        var h = new Harness(blocks: 32).Ready();
        var r = h.Run(Cdb(0x03, 0));
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb(0x02, 0)).AscAscq);
        var vpd = h.Run([0x12, 1, 0xB1, 0, 64, 0], 64);
        Assert.Equal(0, vpd.Data[7] & 0xF0);
    }

    [Fact]
    public void BlockErase_Thin_DeallocatesEverything()
    {
        var h = new Harness(new MemoryBlockDevice(64 * 512L), blocks: 64).Ready();
        Assert.Equal(ScsiStatus.Good, h.Run([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0], dataOut: Enumerable.Repeat((byte)'a', 512).ToArray()).Status);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb(0x02, 8), dataOut: new byte[8]).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb(0x02, 0)).Status);
        var read = h.Run([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 512);
        Assert.DoesNotContain(read.Data, b => b != 0);
        var vpd = h.Run([0x12, 1, 0xB1, 0, 64, 0], 64);
        Assert.Equal(0x40, vpd.Data[7] & 0xF0); // WABEREQ 01b, WACEREQ 00b
    }

    [Fact]
    public void WhileSanitizing_OtherCommandsNotReady_InquiryAllowed()
    {
        var h = new Harness(blocks: 32).Ready();
        Assert.True(h.Unit.TryBeginBackgroundOperation(Asc.LogicalUnitNotReadySanitizeInProgress));
        var tur = h.Run([0, 0, 0, 0, 0, 0]);
        Assert.Equal(SenseKey.NotReady, tur.Key);
        Assert.Equal(Asc.LogicalUnitNotReadySanitizeInProgress, tur.AscAscq);
        Assert.Equal(Asc.LogicalUnitNotReadySanitizeInProgress, h.Run(Cdb(0x1F, 0)).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run([0x12, 0, 0, 0, 96, 0], 96).Status);
        var sense = h.Run([0x03, 0, 0, 0, 18, 0], 18);
        Assert.Equal(ScsiStatus.Good, sense.Status);
        Assert.Equal(SenseKey.NotReady, SenseBuilder.Parse(sense.Data).Key);
        h.Unit.EndBackgroundOperation();
        Assert.Equal(ScsiStatus.Good, h.Run([0, 0, 0, 0, 0, 0]).Status);
    }

    [Fact]
    public void FailedSanitize_FailureMode_UntilExitFailureMode()
    {
        var h = new Harness(blocks: 32).Ready();
        h.Device.FailWrites = true;
        var list = OverwriteList(1, 0x22);
        var r = h.Run(Cdb(0x01, list.Length), dataOut: list);
        Assert.Equal(SenseKey.MediumError, r.Key);
        Assert.Equal(Asc.SanitizeCommandFailed, r.AscAscq);
        Assert.Equal(Asc.SanitizeCommandFailed, h.Run([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 512).AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb(0x1F, 8), dataOut: new byte[8]).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb(0x1F, 0)).Status);
        Assert.Equal(ScsiStatus.Good, h.Run([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 512).Status);
    }
}
