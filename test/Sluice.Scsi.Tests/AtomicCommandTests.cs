using System.Buffers.Binary;

namespace Sluice.Scsi.Tests;

public class AtomicCommandTests
{
    private static byte[] Caw(ulong lba, byte blocks, byte flags = 0)
    {
        var c = new byte[16];
        c[0] = 0x89;
        c[1] = flags;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        c[13] = blocks;
        return c;
    }

    private static byte[] WriteAtomic(ulong lba, ushort blocks)
    {
        var c = new byte[16];
        c[0] = 0x9C;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(12), blocks);
        return c;
    }

    private static byte[] Fill(int length, byte value)
    {
        var b = new byte[length];
        Array.Fill(b, value);
        return b;
    }

    [Fact]
    public void CompareAndWrite_Match_Writes()
    {
        var h = new Harness().Ready();
        h.Run(Cdb.Rw10(0x2A, 5, 2), dataOut: Fill(1024, 0xAA));
        var r = h.Run(Caw(5, 2), dataOut: [.. Fill(1024, 0xAA), .. Fill(1024, 0xBB)]);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.All(h.Device.Data.AsSpan(5 * 512, 1024).ToArray(), b => Assert.Equal(0xBB, b));
    }

    [Fact]
    public void CompareAndWrite_Mismatch_MiscompareWithOffsetAndNoWrite()
    {
        var h = new Harness().Ready();
        h.Run(Cdb.Rw10(0x2A, 5, 2), dataOut: Fill(1024, 0xAA));
        var verify = Fill(1024, 0xAA);
        verify[700] = 0;
        var r = h.Run(Caw(5, 2), dataOut: [.. verify, .. Fill(1024, 0xBB)]);
        Assert.Equal(SenseKey.Miscompare, r.Key);
        Assert.Equal(Asc.MiscompareDuringVerify, r.AscAscq);
        Assert.Equal(0x80, r.Sense[0] & 0x80);
        Assert.Equal(700u, BinaryPrimitives.ReadUInt32BigEndian(r.Sense.AsSpan(3)));
        Assert.Equal(0xAA, h.Device.Data[5 * 512]);
    }

    [Fact]
    public void CompareAndWrite_Limits()
    {
        var h = new Harness(blocks: 100).Ready();
        var b0 = h.Run(Cdb.Inquiry(true, 0xB0), 255).Data;
        byte max = b0[5];
        Assert.True(max > 0);
        if (max < 255)
        {
            Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Caw(0, (byte)(max + 1)), dataOut: new byte[2 * 512 * (max + 1)]).AscAscq);
        }
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Caw(99, 2), dataOut: new byte[2048]).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Caw(0, 0)).Status);
        var ro = new Harness(options: new LogicalUnitOptions { ReadOnly = true }).Ready();
        Assert.Equal(SenseKey.DataProtect, ro.Run(Caw(0, 1), dataOut: new byte[1024]).Key);
    }

    [Fact]
    public async Task CompareAndWrite_ConcurrentIncrements_AreAtomic()
    {
        // Many "compare old value, write old+1" loops race on one block; with atomic CAW every
        // successful CAW increments exactly once.
        var h = new Harness().Ready();
        int successes = 0;
        async Task Worker()
        {
            for (int i = 0; i < 200; i++)
            {
                var current = (await h.RunAsync(Cdb.Rw10(0x28, 7, 1), 512)).Data;
                var next = (byte[])current.Clone();
                BinaryPrimitives.WriteInt32LittleEndian(next, BinaryPrimitives.ReadInt32LittleEndian(current) + 1);
                var r = await h.RunAsync(Caw(7, 1), dataOut: [.. current, .. next]);
                if (r.Status == ScsiStatus.Good)
                {
                    Interlocked.Increment(ref successes);
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(Worker)));
        Assert.Equal(successes, BinaryPrimitives.ReadInt32LittleEndian(h.Device.Data.AsSpan(7 * 512)));
    }

    [Fact]
    public async Task RangeLock_SharedWaitsForExclusive_AndExclusiveWaitsForShared()
    {
        var ranges = new RangeLock();
        Assert.True(ranges.TryEnterShared(0, 10));
        var exclusive = ranges.EnterExclusiveAsync(5, 1, CancellationToken.None).AsTask();
        await Task.Delay(20);
        Assert.False(exclusive.IsCompleted); // an overlapping reader is inside
        Assert.False(ranges.TryEnterShared(0, 1)); // new entrants back off while it waits
        ranges.ExitShared(0, 10);
        var held = await exclusive;
        var shared = ranges.EnterSharedAsync(3, 4, CancellationToken.None).AsTask();
        await Task.Delay(20);
        Assert.False(shared.IsCompleted);
        Assert.True(ranges.TryEnterShared(1 << 9, 1)); // another stripe is unaffected
        ranges.ExitShared(1 << 9, 1);
        held.Dispose();
        (await shared).Dispose();
        Assert.True(ranges.TryEnterShared(5, 1));
    }

    [Fact]
    public void OrWrite_OrsDataIntoMedium()
    {
        var h = new Harness().Ready();
        h.Run(Cdb.Rw10(0x2A, 3, 1), dataOut: Fill(512, 0x0F));
        var r = h.Run(Cdb.Rw16(0x8B, 3, 1), dataOut: Fill(512, 0xF0));
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.All(h.Device.Data.AsSpan(3 * 512, 512).ToArray(), b => Assert.Equal(0xFF, b));
        Assert.Equal(Asc.LbaOutOfRange, h.Run(Cdb.Rw16(0x8B, 1024, 1), dataOut: new byte[512]).AscAscq);
    }

    [Fact]
    public void WriteAtomic_WritesAndEnforcesLimits()
    {
        var h = new Harness().Ready();
        Assert.Equal(ScsiStatus.Good, h.Run(WriteAtomic(4, 2), dataOut: Fill(1024, 9)).Status);
        Assert.Equal(9, h.Device.Data[5 * 512 + 511]);
        var b0 = h.Run(Cdb.Inquiry(true, 0xB0), 255).Data;
        uint max = BinaryPrimitives.ReadUInt32BigEndian(b0.AsSpan(44));
        Assert.True(max > 0);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(WriteAtomic(0, (ushort)(max + 1)), dataOut: new byte[(max + 1) * 512]).AscAscq);
        var boundary = WriteAtomic(0, 1);
        boundary[11] = 1;
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(boundary, dataOut: new byte[512]).AscAscq);
    }
}
