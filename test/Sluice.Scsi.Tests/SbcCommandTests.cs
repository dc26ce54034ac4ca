using System.Buffers.Binary;

namespace Sluice.Scsi.Tests;

public class ReadWriteTests
{
    private static byte[] Pattern(int length, byte seed)
    {
        var b = new byte[length];
        for (int i = 0; i < b.Length; i++)
        {
            b[i] = (byte)(seed + i);
        }
        return b;
    }

    [Theory]
    [InlineData(0x0A, 0x08)]
    [InlineData(0x2A, 0x28)]
    [InlineData(0xAA, 0xA8)]
    [InlineData(0x8A, 0x88)]
    public void WriteThenRead_AllSizes_RoundTrip(byte writeOp, byte readOp)
    {
        var h = new Harness().Ready();
        var data = Pattern(3 * 512, writeOp);
        byte[] w = writeOp switch { 0x0A => Cdb.Rw6(writeOp, 10, 3), 0x2A => Cdb.Rw10(writeOp, 10, 3), 0xAA => Cdb.Rw12(writeOp, 10, 3), _ => Cdb.Rw16(writeOp, 10, 3) };
        byte[] r = readOp switch { 0x08 => Cdb.Rw6(readOp, 10, 3), 0x28 => Cdb.Rw10(readOp, 10, 3), 0xA8 => Cdb.Rw12(readOp, 10, 3), _ => Cdb.Rw16(readOp, 10, 3) };
        var wr = h.Run(w, dataOut: data);
        Assert.Equal(ScsiStatus.Good, wr.Status);
        Assert.Equal(3 * 512, wr.TransferLength);
        var rd = h.Run(r, 3 * 512);
        Assert.Equal(ScsiStatus.Good, rd.Status);
        Assert.Equal(data, rd.Data);
        Assert.Equal(3 * 512, rd.TransferLength);
    }

    [Fact]
    public void Read6_ZeroLength_Means256Blocks()
    {
        var r = new Harness().Ready().Run(Cdb.Rw6(0x08, 0, 0), 256 * 512);
        Assert.Equal(256 * 512, r.TransferLength);
        Assert.Equal(256 * 512, r.Data.Length);
    }

    [Theory]
    [InlineData(0x28)]
    [InlineData(0x2A)]
    [InlineData(0x2F)]
    public void BeyondEndOfLun_LbaOutOfRange(byte op)
    {
        var h = new Harness(blocks: 100).Ready();
        var r = h.Run(Cdb.Rw10(op, 99, 2), 1024, new byte[1024]);
        Assert.Equal(SenseKey.IllegalRequest, r.Key);
        Assert.Equal(Asc.LbaOutOfRange, r.AscAscq);
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw16(0x88, ulong.MaxValue, 1), 512).AscAscq);
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw16(0x88, ulong.MaxValue - 1, 2), 1024).AscAscq);
    }

    [Fact]
    public void ZeroBlocks_AtEndAndPastEnd_GoodThenOutOfRange()
    {
        var h = new Harness(blocks: 100).Ready();
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x28, 0, 0)).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x28, 100, 0)).Status);
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw10(0x28, 101, 0)).AscAscq);
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw10(0x28, uint.MaxValue, 0)).AscAscq);
    }

    [Theory]
    [InlineData(0x28)]
    [InlineData(0x2A)]
    [InlineData(0x2F)]
    [InlineData(0x2E)]
    public void ProtectField_NonZero_InvalidFieldByte1Bit7(byte op)
    {
        var r = new Harness().Ready().Run(Cdb.Rw10(op, 0, 1, 0x20), 512, new byte[512]);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(0x80 | 0x40 | 0x08 | 7, r.Sense[15]);
        Assert.Equal(1, r.Sense[17]);
    }

    [Fact]
    public void DpoFua_Read_GoodAndWriteFuaForced()
    {
        var h = new Harness().Ready();
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x28, 0, 1, 0x18), 512).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x2A, 0, 1, 0x18), dataOut: new byte[512]).Status);
        Assert.Equal(1, h.Device.FuaWrites);
        h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512]);
        Assert.Equal(1, h.Device.FuaWrites);
    }

    [Fact]
    public void WriteCacheDisabled_EveryWriteFua()
    {
        var h = new Harness(options: new LogicalUnitOptions { WriteCacheEnabled = false }).Ready();
        h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512]);
        Assert.Equal(1, h.Device.FuaWrites);
    }

    [Fact]
    public void ReservedBit_Set_InvalidFieldWithPointer()
    {
        var r = new Harness().Ready().Run(Cdb.Rw10(0x2A, 0, 1, 0x04), dataOut: new byte[512]);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(0x80 | 0x40 | 0x08 | 2, r.Sense[15]);
        Assert.Equal(1, r.Sense[17]);
    }

    [Theory]
    [InlineData(0x04, 2)]
    [InlineData(0x01, 0)]
    public void ControlByte_NacaOrLink_InvalidField(byte control, int bit)
    {
        var cdb = Cdb.Rw10(0x28, 0, 1);
        cdb[9] = control;
        var r = new Harness().Ready().Run(cdb, 512);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(0x80 | 0x40 | 0x08 | bit, r.Sense[15]);
        Assert.Equal(9, r.Sense[17]);
    }

    [Fact]
    public void TransferLength_AboveMaximum_InvalidField()
    {
        var h = new Harness(blocks: 4096, options: new LogicalUnitOptions { MaxTransferLengthBytes = 64 * 512 }).Ready();
        var r = h.Run(Cdb.Rw10(0x28, 0, 65), 65 * 512);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(7, r.Sense[17]);
    }

    [Fact]
    public void Write_ReadOnlyLu_DataProtectWriteProtected()
    {
        var h = new Harness(options: new LogicalUnitOptions { ReadOnly = true }).Ready();
        var r = h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512]);
        Assert.Equal(SenseKey.DataProtect, r.Key);
        Assert.Equal(Asc.WriteProtected, r.AscAscq);
        Assert.Equal(0x80, h.Run(Cdb.ModeSense6(0x3F), 255).Data[2] & 0x80);
    }

    [Fact]
    public void BackendFailure_MediumErrorNotException()
    {
        var h = new Harness().Ready();
        h.Device.FailReads = true;
        h.Device.FailWrites = true;
        var r = h.Run(Cdb.Rw10(0x28, 0, 1), 512);
        Assert.Equal(SenseKey.MediumError, r.Key);
        Assert.Equal(Asc.UnrecoveredReadError, r.AscAscq);
        var w = h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512]);
        Assert.Equal(SenseKey.MediumError, w.Key);
        Assert.Equal(Asc.WriteError, w.AscAscq);
    }

    [Fact]
    public void UnknownOpcode_InvalidCommandOperationCode()
    {
        var r = new Harness().Ready().Run([0xC0, 0, 0, 0, 0, 0]);
        Assert.Equal(SenseKey.IllegalRequest, r.Key);
        Assert.Equal(Asc.InvalidCommandOperationCode, r.AscAscq);
    }

    [Fact]
    public void ServiceActionIn_UnknownServiceAction_InvalidFieldInCdb()
    {
        var cdb = Cdb.ReadCapacity16();
        cdb[1] = 0x1F; // 12h is GET LBA STATUS now
        Assert.Equal(Asc.InvalidFieldInCdb, new Harness().Ready().Run(cdb, 32).AscAscq);
    }
}

public class ResidualTests
{
    [Fact]
    public void Read_ExpectedZero_NoDataTransferLengthOneBlock()
    {
        var r = new Harness().Ready().Run(Cdb.Rw10(0x28, 0, 1), 0);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Empty(r.Data);
        Assert.Equal(512, r.TransferLength);
    }

    [Fact]
    public void Read_ExpectedLargerOrSmaller_TruncatedToExpected()
    {
        var h = new Harness().Ready();
        Assert.Equal(512, h.Run(Cdb.Rw10(0x28, 0, 1), 10000).Data.Length);
        var small = h.Run(Cdb.Rw10(0x28, 0, 1), 200);
        Assert.Equal(200, small.Data.Length);
        Assert.Equal(512, small.TransferLength);
        var two = h.Run(Cdb.Rw10(0x28, 0, 2), 512);
        Assert.Equal(512, two.Data.Length);
        Assert.Equal(1024, two.TransferLength);
    }

    [Fact]
    public void Write_EdtlLargerThanCdb_OnlyCdbBlocksWritten()
    {
        var h = new Harness().Ready();
        h.Run(Cdb.Rw10(0x2A, 0, 2), dataOut: Enumerable.Repeat((byte)'a', 1024).ToArray());
        var r = h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: Enumerable.Repeat((byte)'b', 1024).ToArray());
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(512, r.TransferLength);
        Assert.All(h.Device.Data[..512], b => Assert.Equal((byte)'b', b));
        Assert.All(h.Device.Data[512..1024], b => Assert.Equal((byte)'a', b));
    }

    [Fact]
    public void Write_EdtlSmallerThanCdb_OnlyWholeSentBlocksWritten()
    {
        var h = new Harness().Ready();
        h.Run(Cdb.Rw10(0x2A, 0, 2), dataOut: Enumerable.Repeat((byte)'a', 1024).ToArray());
        var r = h.Run(Cdb.Rw10(0x2A, 0, 2), dataOut: Enumerable.Repeat((byte)'b', 512).ToArray());
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(1024, r.TransferLength);
        Assert.All(h.Device.Data[..512], b => Assert.Equal((byte)'b', b));
        Assert.All(h.Device.Data[512..1024], b => Assert.Equal((byte)'a', b));
        var partial = h.Run(Cdb.Rw10(0x2A, 4, 1), dataOut: new byte[200]);
        Assert.Equal(ScsiStatus.Good, partial.Status);
        var none = h.Run(Cdb.Rw10(0x2A, 4, 1));
        Assert.Equal(ScsiStatus.Good, none.Status);
        Assert.Equal(2, h.Device.Writes); // the 200-byte and empty Data-Out wrote nothing
    }
}

public class VerifyTests
{
    [Theory]
    [InlineData(0x2F)]
    [InlineData(0xAF)]
    [InlineData(0x8F)]
    public void Bytchk1_Mismatch_MiscompareWithOffset(byte op)
    {
        var h = new Harness().Ready();
        var data = new byte[4 * 512];
        new Random(1).NextBytes(data);
        h.Run(Cdb.Rw10(0x2A, 8, 4), dataOut: data);
        byte[] cdb = op switch { 0x2F => Cdb.Rw10(op, 8, 4, 0x02), 0xAF => Cdb.Rw12(op, 8, 4, 0x02), _ => Cdb.Rw16(op, 8, 4, 0x02) };
        Assert.Equal(ScsiStatus.Good, h.Run(cdb, dataOut: data).Status);
        var bad = (byte[])data.Clone();
        bad[1234] ^= 0x58;
        var r = h.Run(cdb, dataOut: bad);
        Assert.Equal(SenseKey.Miscompare, r.Key);
        Assert.Equal(Asc.MiscompareDuringVerify, r.AscAscq);
        Assert.Equal(0x80, r.Sense[0] & 0x80);
        Assert.Equal(1234u, BinaryPrimitives.ReadUInt32BigEndian(r.Sense.AsSpan(3)));
        // BYTCHK=0 never looks at the data.
        var noCompare = op switch { 0x2F => Cdb.Rw10(op, 8, 4), 0xAF => Cdb.Rw12(op, 8, 4), _ => Cdb.Rw16(op, 8, 4) };
        Assert.Equal(ScsiStatus.Good, h.Run(noCompare, dataOut: bad).Status);
    }

    [Fact]
    public void Bytchk3_SingleBlock_ComparedAgainstEachBlock()
    {
        var h = new Harness().Ready();
        var block = Enumerable.Repeat((byte)7, 512).ToArray();
        h.Run(Cdb.Rw10(0x2A, 0, 3), dataOut: [.. block, .. block, .. block]);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x2F, 0, 3, 0x06), dataOut: block).Status);
        h.Device.Data[1024 + 9] = 1;
        var r = h.Run(Cdb.Rw10(0x2F, 0, 3, 0x06), dataOut: block);
        Assert.Equal(SenseKey.Miscompare, r.Key);
        Assert.Equal(9u, BinaryPrimitives.ReadUInt32BigEndian(r.Sense.AsSpan(3)));
    }

    [Fact]
    public void Bytchk2_Reserved_InvalidField()
    {
        Assert.Equal(Asc.InvalidFieldInCdb, new Harness().Ready().Run(Cdb.Rw10(0x2F, 0, 1, 0x04), dataOut: new byte[512]).AscAscq);
    }

    [Theory]
    [InlineData(0x2E)]
    [InlineData(0xAE)]
    [InlineData(0x8E)]
    public void WriteAndVerify_Writes_DurableAndReadBack(byte op)
    {
        var h = new Harness().Ready();
        var data = Enumerable.Repeat((byte)0x5A, 1024).ToArray();
        byte[] cdb = op switch { 0x2E => Cdb.Rw10(op, 2, 2, 0x02), 0xAE => Cdb.Rw12(op, 2, 2, 0x02), _ => Cdb.Rw16(op, 2, 2, 0x02) };
        Assert.Equal(ScsiStatus.Good, h.Run(cdb, dataOut: data).Status);
        Assert.Equal(1, h.Device.FuaWrites);
        Assert.Equal(data, h.Device.Data[1024..2048]);
    }
}

public class CapacityAndCacheTests
{
    [Fact]
    public void ReadCapacity10_ReturnsLastLbaAndBlockLength()
    {
        var r = new Harness(blocks: 2000).Ready().Run(Cdb.ReadCapacity10(), 8);
        Assert.Equal(1999u, BinaryPrimitives.ReadUInt32BigEndian(r.Data));
        Assert.Equal(512u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(4)));
    }

    [Fact]
    public void ReadCapacity10_LbaWithoutPmi_InvalidField()
    {
        var cdb = Cdb.ReadCapacity10();
        cdb[5] = 1;
        Assert.Equal(Asc.InvalidFieldInCdb, new Harness().Ready().Run(cdb, 8).AscAscq);
    }

    [Theory]
    [InlineData(32u, 32)]
    [InlineData(15u, 15)]
    [InlineData(0u, 0)]
    [InlineData(64u, 32)]
    public void ReadCapacity16_AllocationLength_Truncates(uint alloc, int expected)
    {
        var r = new Harness(blocks: 2000, options: new LogicalUnitOptions { BlockSize = 4096 }).Ready().Run(Cdb.ReadCapacity16(alloc), 64);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(expected, r.Data.Length);
        if (expected >= 12)
        {
            Assert.Equal(1999UL, BinaryPrimitives.ReadUInt64BigEndian(r.Data));
            Assert.Equal(4096u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(8)));
        }
    }

    [Fact]
    public void SynchronizeCache_InRange_Flushes()
    {
        var h = new Harness(blocks: 100).Ready();
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x35, 0, 0)).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw16(0x91, 10, 90, 0x02)).Status);
        Assert.Equal(2, h.Device.Flushes);
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw10(0x35, 99, 2)).AscAscq);
    }

    [Fact]
    public void PreFetch_InRangeWithImmedAndGroup_Good()
    {
        var h = new Harness(blocks: 100).Ready();
        var cdb = Cdb.Rw10(0x34, 0, 1, 0x02);
        cdb[6] = 3;
        Assert.Equal(ScsiStatus.Good, h.Run(cdb).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw16(0x90, 99, 1)).Status);
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw16(0x90, 100, 1)).AscAscq);
    }

    [Fact]
    public async Task FlushAll_Shutdown_FlushesEveryUnit()
    {
        var h = new Harness();
        await h.Target.FlushAllAsync(CancellationToken.None);
        Assert.Equal(1, h.Device.Flushes);
    }

    [Fact]
    public async Task Execute_Cancelled_Throws()
    {
        var h = new Harness();
        var request = new ScsiRequest { Nexus = Harness.NexusA, Cdb = Cdb.TestUnitReady(), Sense = new byte[252] };
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await h.Target.ExecuteAsync(request, new CancellationToken(true)));
    }
}
