using System.Buffers.Binary;

namespace Sluice.Scsi.Tests;

public class ReportSupportedOpcodesTests
{
    private static byte[] Rsoc(int options, byte opcode = 0, ushort sa = 0, uint alloc = 65535, bool rctd = false)
    {
        var c = new byte[12];
        c[0] = 0xA3;
        c[1] = 0x0C;
        c[2] = (byte)((rctd ? 0x80 : 0) | options);
        c[3] = opcode;
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(4), sa);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(6), alloc);
        return c;
    }

    private static List<(byte Op, int Sa, int CdbLength, byte[] Entry)> ParseAll(byte[] data, bool rctd)
    {
        int length = BinaryPrimitives.ReadInt32BigEndian(data);
        Assert.Equal(data.Length - 4, length);
        int each = rctd ? 20 : 8;
        Assert.Equal(0, length % each);
        var list = new List<(byte, int, int, byte[])>();
        for (int p = 4; p < data.Length; p += each)
        {
            bool servactv = (data[p + 5] & 0x01) != 0;
            Assert.Equal(rctd, (data[p + 5] & 0x02) != 0);
            list.Add((data[p], servactv ? BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(p + 2)) : -1,
                BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(p + 6)), data[p..(p + each)]));
        }
        return list;
    }

    [Fact]
    public void AllCommands_ListsEveryTableEntryWithCdbLength()
    {
        var h = new Harness().Ready();
        var r = h.Run(Rsoc(0), 65535);
        Assert.Equal(ScsiStatus.Good, r.Status);
        var all = ParseAll(r.Data, rctd: false);
        var expected = CommandTable.All.Where(d => d.IsAvailable(h.Unit)).ToList();
        Assert.Equal(expected.Count, all.Count);
        Assert.Contains(all, e => e.Op == 0x28 && e.Sa == -1 && e.CdbLength == 10);
        Assert.Contains(all, e => e.Op == 0x9E && e.Sa == 0x10 && e.CdbLength == 16);
        Assert.Contains(all, e => e.Op == 0xA3 && e.Sa == 0x0C && e.CdbLength == 12);
    }

    [Fact]
    public void AllCommands_Rctd_AppendsTimeoutsDescriptors()
    {
        var r = new Harness().Ready().Run(Rsoc(0, rctd: true), 65535);
        Assert.Equal(ScsiStatus.Good, r.Status);
        foreach (var e in ParseAll(r.Data, rctd: true))
        {
            Assert.Equal(0x0A, BinaryPrimitives.ReadUInt16BigEndian(e.Entry.AsSpan(8)));
            Assert.True(BinaryPrimitives.ReadUInt32BigEndian(e.Entry.AsSpan(16)) > 0);
        }
    }

    [Fact]
    public void AllCommands_ShortAllocation_Truncates()
    {
        var r = new Harness().Ready().Run(Rsoc(0, alloc: 6), 65535);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(6, r.Data.Length);
    }

    [Fact]
    public void OneCommand_Read10_ReturnsUsageData()
    {
        var r = new Harness().Ready().Run(Rsoc(1, 0x28), 512);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(0x03, r.Data[1] & 0x07);
        Assert.Equal(10, BinaryPrimitives.ReadUInt16BigEndian(r.Data.AsSpan(2)));
        Assert.Equal(new byte[] { 0x28, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 0xFF, 0xFF, 0x00 }, r.Data[4..14]);
    }

    [Fact]
    public void OneCommand_Rctd_AppendsTimeouts()
    {
        var r = new Harness().Ready().Run(Rsoc(1, 0x28, rctd: true), 512);
        Assert.Equal(0x80, r.Data[1] & 0x80);
        Assert.Equal(4 + 10 + 12, r.Data.Length);
        Assert.Equal(0x0A, BinaryPrimitives.ReadUInt16BigEndian(r.Data.AsSpan(14)));
    }

    [Fact]
    public void OneCommand_UnsupportedOpcode_SupportIsNotSupported()
    {
        var r = new Harness().Ready().Run(Rsoc(1, 0xFF), 512);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(0x01, r.Data[1] & 0x07);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(r.Data.AsSpan(2)));
    }

    [Theory]
    [InlineData(1, 0x9E, 0x10)] // 001b on an opcode with service actions
    [InlineData(2, 0x28, 0x00)] // 010b on an opcode without
    [InlineData(4, 0x28, 0x00)] // reserved reporting option
    public void OneCommand_WrongReportingOption_InvalidFieldInCdb(int options, byte op, ushort sa)
    {
        var r = new Harness().Ready().Run(Rsoc(options, op, sa), 512);
        Assert.Equal(ScsiStatus.CheckCondition, r.Status);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
    }

    [Fact]
    public void OneCommand_ServiceAction_UsageCarriesServiceActionValue()
    {
        var h = new Harness().Ready();
        var r = h.Run(Rsoc(2, 0x9E, 0x10), 512);
        Assert.Equal(0x03, r.Data[1] & 0x07);
        Assert.Equal(0x9E, r.Data[4]);
        Assert.Equal(0x10, r.Data[5] & 0x1F);
        var missing = h.Run(Rsoc(2, 0x9E, 0x1B), 512);
        Assert.Equal(0x01, missing.Data[1] & 0x07);
        var three = h.Run(Rsoc(3, 0x28), 512);
        Assert.Equal(0x03, three.Data[1] & 0x07);
    }

    /// <summary>What RSOC advertises is what the dispatcher accepts: every bit the usage data
    /// leaves clear is rejected with INVALID FIELD IN CDB pointing at exactly that bit.</summary>
    [Fact]
    public void EveryAdvertisedCommand_UnusedBit_IsRejectedAtThatBit()
    {
        var h = new Harness().Ready();
        var all = ParseAll(h.Run(Rsoc(0), 65535).Data, rctd: false);
        foreach (var (op, sa, cdbLength, _) in all)
        {
            var one = h.Run(sa < 0 ? Rsoc(1, op) : Rsoc(2, op, (ushort)sa), 512);
            Assert.Equal(cdbLength, BinaryPrimitives.ReadUInt16BigEndian(one.Data.AsSpan(2)));
            var usage = one.Data[4..(4 + cdbLength)];
            Assert.Equal(op, usage[0]);
            for (int i = 1; i < cdbLength - 1; i++)
            {
                int used = usage[i] | (i == 1 && sa >= 0 ? 0x1F : 0);
                int unused = ~used & 0xFF;
                if (unused == 0)
                {
                    continue;
                }
                int bit = 31 - int.LeadingZeroCount(unused);
                var cdb = new byte[cdbLength];
                cdb[0] = op;
                if (sa >= 0)
                {
                    cdb[1] = (byte)sa;
                }
                cdb[i] |= (byte)(1 << bit);
                var r = h.Run(cdb, 4096, dataOut: new byte[4096]);
                Assert.True(r.Status == ScsiStatus.CheckCondition && r.AscAscq == Asc.InvalidFieldInCdb, $"opcode {op:X2}/{sa} byte {i} bit {bit}");
                Assert.Equal(0xC8 | bit, r.Sense[15]);
                Assert.Equal(i, BinaryPrimitives.ReadUInt16BigEndian(r.Sense.AsSpan(16)));
            }
        }
    }
}
