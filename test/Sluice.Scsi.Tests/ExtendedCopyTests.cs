using System.Buffers.Binary;
using Sluice.Storage;

namespace Sluice.Scsi.Tests;

public class ExtendedCopyTests
{
    private static readonly ulong Lun1 = LunAddressing.Encode(1);

    private static byte[] XCopy(int length)
    {
        var c = new byte[16];
        c[0] = 0x83;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(10), (uint)length);
        return c;
    }

    private static byte[] Rcr(byte sa, byte listId, uint alloc = 1024)
    {
        var c = new byte[16];
        c[0] = 0x84;
        c[1] = sa;
        c[2] = listId;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(10), alloc);
        return c;
    }

    /// <summary>The LU's NAA designator from its VPD page 83h (first designation descriptor).</summary>
    private static byte[] Naa(Harness h, ulong lunField = 0)
    {
        var page = h.Run(Cdb.Inquiry(evpd: true, page: 0x83), 255, lunField: lunField).Data;
        Assert.Equal(0x03, page[5] & 0x3F); // LU association, NAA
        return page[8..24];
    }

    private static byte[] Cscd(byte[] designator, int blockSize = 512, byte type = 0xE4, byte byte1 = 0)
    {
        var d = new byte[32];
        d[0] = type;
        d[1] = byte1;
        d[4] = 0x01; // binary
        d[5] = 0x03; // LU, NAA
        d[7] = (byte)designator.Length;
        designator.CopyTo(d, 8);
        d[29] = (byte)(blockSize >> 16);
        d[30] = (byte)(blockSize >> 8);
        d[31] = (byte)blockSize;
        return d;
    }

    private static byte[] Segment(int src, int dst, ushort blocks, ulong srcLba, ulong dstLba, bool dc = false, byte type = 0x02)
    {
        var s = new byte[28];
        s[0] = type;
        s[1] = (byte)(dc ? 0x02 : 0);
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(2), 0x18);
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(4), (ushort)src);
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(6), (ushort)dst);
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(10), blocks);
        BinaryPrimitives.WriteUInt64BigEndian(s.AsSpan(12), srcLba);
        BinaryPrimitives.WriteUInt64BigEndian(s.AsSpan(20), dstLba);
        return s;
    }

    private static byte[] List(byte listId, int usage, byte[][] cscds, byte[][] segments, int inline = 0)
    {
        int cscdLength = cscds.Sum(c => c.Length);
        int segLength = segments.Sum(s => s.Length);
        var b = new byte[16 + cscdLength + segLength + inline];
        b[0] = listId;
        b[1] = (byte)(usage << 3);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)cscdLength);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), (uint)segLength);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), (uint)inline);
        int p = 16;
        foreach (var c in cscds.Concat(segments))
        {
            c.CopyTo(b, p);
            p += c.Length;
        }
        return b;
    }

    private static Result Copy(Harness h, byte[] list, ITNexus? nexus = null) => h.Run(XCopy(list.Length), dataOut: list, nexus: nexus);

    private static byte[] Pattern(int blocks, int seed)
    {
        var b = new byte[blocks * 512];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static Harness TwoLuns() => ReadyLun1(new Harness(blocks: 1024, extraLuns: 1).Ready(), Harness.NexusA);

    private static Harness ReadyLun1(Harness h, ITNexus nexus)
    {
        while (h.Run(Cdb.TestUnitReady(), nexus: nexus, lunField: Lun1).Key == SenseKey.UnitAttention)
        {
        }
        return h;
    }

    [Fact]
    public void Copy_ToAnotherLu_AndWithinALu_MovesTheBlocks()
    {
        var h = TwoLuns();
        var data = Pattern(64, 1);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x2A, 0, 64), dataOut: data).Status);
        var list = List(1, 0, [Cscd(Naa(h)), Cscd(Naa(h, Lun1))], [Segment(0, 1, 64, 0, 900), Segment(0, 1, 16, 0, 0)]);
        Assert.Equal(ScsiStatus.Good, Copy(h, list).Status);
        Assert.Equal(data, h.Run(Cdb.Rw10(0x28, 900, 64), 64 * 512, lunField: Lun1).Data);
        Assert.Equal(data[..(16 * 512)], h.Run(Cdb.Rw10(0x28, 0, 16), 16 * 512, lunField: Lun1).Data);

        // Overlapping ranges of one LU behave as memmove: the destination gets the old source.
        var overlap = List(2, 2, [Cscd(Naa(h))], [Segment(0, 0, 64, 0, 8)]);
        Assert.Equal(ScsiStatus.Good, Copy(h, overlap).Status);
        Assert.Equal(data, h.Run(Cdb.Rw10(0x28, 8, 64), 64 * 512).Data);

        // COPY STATUS: completed without errors, both segments, the bytes moved.
        var status = h.Run(Rcr(0x00, 1), 12).Data;
        Assert.Equal(8u, BinaryPrimitives.ReadUInt32BigEndian(status));
        Assert.Equal(0x01, status[4]);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16BigEndian(status.AsSpan(5)));
        Assert.Equal(0, status[7]);
        Assert.Equal(80u * 512, BinaryPrimitives.ReadUInt32BigEndian(status.AsSpan(8)));
        // LIST ID USAGE 10b keeps the status but no failed segment details.
        Assert.Equal(0x01, h.Run(Rcr(0x00, 2), 12).Data[4]);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Rcr(0x04, 2), 64).AscAscq);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(h.Run(Rcr(0x04, 1), 64).Data));
    }

    [Fact]
    public void DcBit_CountsDestinationBlocks_AndZeroBlocksCopiesNothing()
    {
        var h = TwoLuns();
        var data = Pattern(4, 2);
        h.Run(Cdb.Rw10(0x2A, 10, 4), dataOut: data);
        Assert.Equal(ScsiStatus.Good, Copy(h, List(0, 3, [Cscd(Naa(h)), Cscd(Naa(h, Lun1))], [Segment(0, 1, 4, 10, 20, dc: true), Segment(0, 1, 0, 0, 0)])).Status);
        Assert.Equal(data, h.Run(Cdb.Rw10(0x28, 20, 4), 4 * 512, lunField: Lun1).Data);
        // LIST ID USAGE 11b: no list identifier, nothing held.
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Rcr(0x00, 0), 12).AscAscq);
    }

    [Fact]
    public void ParameterListChecks_GetIllegalRequest()
    {
        var h = TwoLuns();
        var naa = Naa(h);
        var good = List(1, 0, [Cscd(naa)], [Segment(0, 0, 1, 0, 1)]);
        // PARAMETER LIST LENGTH 0 is not an error (SPC-4 6.4.1).
        Assert.Equal(ScsiStatus.Good, h.Run(XCopy(0)).Status);
        // Truncated lists: shorter than the header, or than the descriptor lists it announces.
        Assert.Equal(Asc.ParameterListLengthError, Copy(h, good[..15]).AscAscq);
        Assert.Equal(Asc.ParameterListLengthError, Copy(h, good[..(good.Length - 1)]).AscAscq);
        Assert.Equal(Asc.ParameterListLengthError, h.Run(XCopy(good.Length + 1), dataOut: good).AscAscq);
        // LIST ID USAGE 01b is reserved; 11b needs a zero list identifier.
        var r = Copy(h, List(1, 1, [Cscd(naa)], [Segment(0, 0, 1, 0, 1)]));
        Assert.Equal((SenseKey.IllegalRequest, Asc.InvalidFieldInParameterList), (r.Key, r.AscAscq));
        Assert.Equal(0x80 | 0x08 | 4, r.Sense[15]); // SKSV, C/D=0, BPV, bit 4
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(r.Sense.AsSpan(16)));
        Assert.Equal(Asc.InvalidFieldInParameterList, Copy(h, List(1, 3, [Cscd(naa)], [Segment(0, 0, 1, 0, 1)])).AscAscq);
        // Limits: 17 CSCD descriptors, 65 segment descriptors, and both (beyond MAXIMUM DESCRIPTOR LIST LENGTH).
        var many = Enumerable.Repeat(Cscd(naa), 17).ToArray();
        var segs = Enumerable.Repeat(Segment(0, 0, 1, 0, 1), 65).ToArray();
        Assert.Equal(Asc.TooManyTargetDescriptors, Copy(h, List(1, 0, many, [Segment(0, 0, 1, 0, 1)])).AscAscq);
        Assert.Equal(Asc.TooManySegmentDescriptors, Copy(h, List(1, 0, [Cscd(naa)], segs)).AscAscq);
        Assert.Equal(Asc.ParameterListLengthError, Copy(h, List(1, 0, many, segs)).AscAscq);
        // Unsupported descriptor type codes, with the field pointer at the descriptor.
        r = Copy(h, List(1, 0, [Cscd(naa, type: 0xE0)], [Segment(0, 0, 1, 0, 1)]));
        Assert.Equal(Asc.UnsupportedTargetDescriptorTypeCode, r.AscAscq);
        Assert.Equal(16, BinaryPrimitives.ReadUInt16BigEndian(r.Sense.AsSpan(16)));
        r = Copy(h, List(1, 0, [Cscd(naa)], [Segment(0, 0, 1, 0, 1, type: 0x03)]));
        Assert.Equal(Asc.UnsupportedSegmentDescriptorTypeCode, r.AscAscq);
        Assert.Equal(48, BinaryPrimitives.ReadUInt16BigEndian(r.Sense.AsSpan(16)));
        // Inline data is not supported (MAXIMUM INLINE DATA LENGTH 0).
        Assert.Equal(Asc.InlineDataLengthExceeded, Copy(h, List(1, 0, [Cscd(naa)], [Segment(0, 0, 1, 0, 1)], inline: 4)).AscAscq);
        // A block → block descriptor with the wrong DESCRIPTOR LENGTH, or a reserved bit set.
        var badLength = Segment(0, 0, 1, 0, 1);
        badLength[3] = 0x14;
        Assert.Equal(Asc.InvalidFieldInParameterList, Copy(h, List(1, 0, [Cscd(naa)], [badLength])).AscAscq);
        var reserved = Segment(0, 0, 1, 0, 1);
        reserved[8] = 1;
        Assert.Equal(Asc.InvalidFieldInParameterList, Copy(h, List(1, 0, [Cscd(naa)], [reserved])).AscAscq);
        // LU ID TYPE and NUL do not apply to an identification descriptor (SPC-4): ignored.
        Assert.Equal(ScsiStatus.Good, Copy(h, List(1, 0, [Cscd(naa, byte1: 0xE0)], [Segment(0, 0, 1, 0, 1)])).Status);
    }

    [Fact]
    public void ErrorsDuringTheCopy_AreCopyAborted_WithTheSegmentAndForwardedSense()
    {
        var h = TwoLuns();
        var naa = Naa(h);
        // A CSCD index beyond the list: COPY TARGET DEVICE NOT REACHABLE, segment 1 (the second).
        var r = Copy(h, List(7, 0, [Cscd(naa)], [Segment(0, 0, 1, 0, 1), Segment(0, 1, 1, 0, 1)]));
        Assert.Equal((SenseKey.CopyAborted, Asc.CopyTargetDeviceNotReachable), (r.Key, r.AscAscq));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(r.Sense.AsSpan(10)));
        Assert.Equal(0x80 | 0x20, r.Sense[15]); // SKSV, SD=1
        var status = h.Run(Rcr(0x00, 7), 12).Data;
        Assert.Equal((0x02, 1), (status[4], BinaryPrimitives.ReadUInt16BigEndian(status.AsSpan(5))));
        // FAILED SEGMENT DETAILS return the status and sense of the EXTENDED COPY.
        var details = h.Run(Rcr(0x04, 7), 256).Data;
        Assert.Equal(ScsiStatus.CheckCondition, details[56]);
        Assert.Equal(r.Sense, details.AsSpan(60, BinaryPrimitives.ReadUInt16BigEndian(details.AsSpan(58))).ToArray());
        Assert.Equal((uint)details.Length - 4, BinaryPrimitives.ReadUInt32BigEndian(details));

        // Beyond the end of the destination: the destination's ILLEGAL REQUEST / LBA OUT OF RANGE is forwarded.
        r = Copy(h, List(1, 0, [Cscd(naa)], [Segment(0, 0, 2, 0, 1023)]));
        Assert.Equal((SenseKey.CopyAborted, (ushort)0), (r.Key, r.AscAscq));
        Assert.Equal(0, r.Sense[8]);
        Assert.Equal(18, r.Sense[9]); // destination sense data offset
        Assert.Equal((SenseKey.IllegalRequest, Asc.LbaOutOfRange), SenseBuilder.Parse(r.Sense.AsSpan(18)));

        // An NAA designator no LU has, and a DISK BLOCK LENGTH that is not the LU's.
        var unknown = (byte[])naa.Clone();
        unknown[15] ^= 0xFF;
        Assert.Equal(Asc.CopyTargetDeviceNotReachable, Copy(h, List(1, 0, [Cscd(unknown)], [Segment(0, 0, 1, 0, 1)])).AscAscq);
        Assert.Equal(Asc.IncorrectCopyTargetDeviceType, Copy(h, List(1, 0, [Cscd(naa, blockSize: 4096)], [Segment(0, 0, 1, 0, 1)])).AscAscq);
        Assert.Equal(Asc.IncorrectCopyTargetDeviceType, Copy(h, List(1, 0, [Cscd(naa, byte1: 0x01)], [Segment(0, 0, 1, 0, 1)])).AscAscq);
    }

    [Fact]
    public void DescriptorSense_CarriesTheForwardedSenseDataDescriptor()
    {
        var h = TwoLuns();
        // D_SENSE=1 in the control mode page of LU 0.
        var page = h.Run(Cdb.ModeSense6(0x0A), 255).Data;
        var select = new byte[4 + 12];
        page.AsSpan(4 + page[3], 12).CopyTo(select.AsSpan(4));
        select[4] &= 0x7F;
        select[6] |= 0x04;
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.ModeSelect6(select.Length), dataOut: select).Status);
        var r = Copy(h, List(1, 0, [Cscd(Naa(h))], [Segment(0, 0, 2, 1023, 0)]));
        Assert.Equal(0x72, r.Sense[0]);
        Assert.Equal((SenseKey.CopyAborted, (ushort)0), (r.Key, r.AscAscq));
        int p = 8;
        var types = new List<byte>();
        int forwarded = -1;
        while (p < 8 + r.Sense[7])
        {
            types.Add(r.Sense[p]);
            if (r.Sense[p] == 0x0C)
            {
                forwarded = p;
            }
            p += 2 + r.Sense[p + 1];
        }
        Assert.Equal([0x01, 0x02, 0x0C], types);
        Assert.Equal(1, r.Sense[forwarded + 2]); // SENSE DATA SOURCE: copy source
        Assert.Equal(ScsiStatus.CheckCondition, r.Sense[forwarded + 3]);
        Assert.Equal((SenseKey.IllegalRequest, Asc.LbaOutOfRange), SenseBuilder.Parse(r.Sense.AsSpan(forwarded + 4)));
    }

    [Fact]
    public void ReservationsAndWriteProtect_OnACscd_AbortTheCopy()
    {
        var h = TwoLuns();
        ReadyLun1(h.Ready(Harness.NexusB), Harness.NexusB);
        var data = Pattern(1, 3);
        h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: data);
        // RESERVE(6) of LU 1 by another nexus: the copy cannot write there.
        Assert.Equal(ScsiStatus.Good, h.Run([0x16, 0, 0, 0, 0, 0], nexus: Harness.NexusB, lunField: Lun1).Status);
        var list = List(1, 0, [Cscd(Naa(h)), Cscd(Naa(h, Lun1))], [Segment(0, 1, 1, 0, 5)]);
        Assert.Equal(SenseKey.CopyAborted, Copy(h, list).Key);
        Assert.NotEqual(data, h.Run(Cdb.Rw10(0x28, 5, 1), 512, lunField: Lun1).Data);
        Assert.Equal(ScsiStatus.Good, h.Run([0x17, 0, 0, 0, 0, 0], nexus: Harness.NexusB, lunField: Lun1).Status);
        Assert.Equal(ScsiStatus.Good, Copy(h, list).Status);
        Assert.Equal(data, h.Run(Cdb.Rw10(0x28, 5, 1), 512, lunField: Lun1).Data);

        // A read-only destination: DATA PROTECT forwarded.
        var ro = new Harness(blocks: 64, options: new LogicalUnitOptions { ReadOnly = true }).Ready();
        var r = Copy(ro, List(1, 0, [Cscd(Naa(ro))], [Segment(0, 0, 1, 0, 1)]));
        Assert.Equal(SenseKey.CopyAborted, r.Key);
        Assert.Equal(SenseKey.DataProtect, SenseBuilder.Parse(r.Sense.AsSpan(r.Sense[9])).Key);
    }

    [Fact]
    public void BackEndFailure_IsCopyAborted_WithMediumError()
    {
        var h = TwoLuns();
        h.Device.FailReads = true;
        var r = Copy(h, List(1, 0, [Cscd(Naa(h))], [Segment(0, 0, 1, 0, 1)]));
        Assert.Equal(SenseKey.CopyAborted, r.Key);
        Assert.Equal(18, r.Sense[8]); // source sense data offset
        Assert.Equal((SenseKey.MediumError, Asc.UnrecoveredReadError), SenseBuilder.Parse(r.Sense.AsSpan(18)));
    }

    [Fact]
    public async Task Abort_StopsTheCopy_AndTheStatusSaysSo()
    {
        var slow = new SlowDevice(4096 * 512L);
        var h = new Harness(slow, blocks: 4096).Ready();
        var list = List(9, 0, [Cscd(Naa(h))], [Segment(0, 0, 4000, 0, 0)]);
        using var cts = new CancellationTokenSource();
        var running = h.RunAsync(XCopy(list.Length), dataOut: list, cancellationToken: cts.Token);
        await slow.Started.Task.WaitAsync(TimeSpan.FromSeconds(5));
        // The same list identifier while that copy runs: OPERATION IN PROGRESS.
        Assert.Equal(Asc.OperationInProgress, Copy(h, list).AscAscq);
        Assert.Equal(0x00, h.Run(Rcr(0x00, 9), 12).Data[4]); // in progress
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(0x02, h.Run(Rcr(0x00, 9), 12).Data[4]); // completed with errors
        Assert.Equal(ScsiStatus.TaskAborted, h.Run(Rcr(0x04, 9), 64).Data[56]);
        // I_T nexus loss discards the held results.
        h.Target.NexusLost(Harness.NexusA);
        h.Ready();
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Rcr(0x00, 9), 12).AscAscq);
    }

    [Fact]
    public void ReceiveCopyResults_OperatingParameters_MatchVpd8F_AndUnknownListIsInvalid()
    {
        var h = TwoLuns();
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Rcr(0x00, 1), 12).AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Rcr(0x04, 1), 64).AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Rcr(0x01, 1), 64).AscAscq); // RECEIVE DATA: not supported

        var op = h.Run(Rcr(0x03, 0), 1024).Data;
        Assert.Equal(46, op.Length);
        Assert.Equal(42u, BinaryPrimitives.ReadUInt32BigEndian(op));
        ushort maxCscd = BinaryPrimitives.ReadUInt16BigEndian(op.AsSpan(8));
        ushort maxSeg = BinaryPrimitives.ReadUInt16BigEndian(op.AsSpan(10));
        uint maxList = BinaryPrimitives.ReadUInt32BigEndian(op.AsSpan(12));
        Assert.Equal((16, 64, 16u * 32 + (64u * 28)), (maxCscd, maxSeg, maxList));
        Assert.Equal(65535u * 512, BinaryPrimitives.ReadUInt32BigEndian(op.AsSpan(16)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(op.AsSpan(20)));
        Assert.Equal([0x02, 0xE4], op[44..46]);
        Assert.Equal(12, h.Run(Rcr(0x03, 0, 12), 1024).Data.Length); // allocation length truncates

        // VPD 00h lists 8Fh; 8Fh reports the same limits.
        Assert.Contains((byte)0x8F, h.Run(Cdb.Inquiry(evpd: true, page: 0x00), 255).Data[4..]);
        var vpd = h.Run(Cdb.Inquiry(evpd: true, page: 0x8F), 1024).Data;
        Assert.Equal(0x8F, vpd[1]);
        Assert.Equal(vpd.Length - 4, BinaryPrimitives.ReadUInt16BigEndian(vpd.AsSpan(2)));
        var descriptors = new Dictionary<ushort, byte[]>();
        for (int p = 4; p < vpd.Length;)
        {
            int len = BinaryPrimitives.ReadUInt16BigEndian(vpd.AsSpan(p + 2));
            Assert.Equal(0, len % 4);
            descriptors[BinaryPrimitives.ReadUInt16BigEndian(vpd.AsSpan(p))] = vpd[p..(p + 4 + len)];
            p += 4 + len;
        }
        Assert.Equal(new ushort[] { 0x0001, 0x0008, 0x0009, 0x000A, 0x8001 }, descriptors.Keys.Order().ToArray());
        var commands = descriptors[0x0001];
        Assert.Equal([0x83, 1, 0x00, 0x84, 3, 0x00, 0x03, 0x04], commands[5..(5 + commands[4])]);
        var param = descriptors[0x0008];
        Assert.Equal(maxCscd, BinaryPrimitives.ReadUInt16BigEndian(param.AsSpan(8)));
        Assert.Equal(maxSeg, BinaryPrimitives.ReadUInt16BigEndian(param.AsSpan(10)));
        Assert.Equal(maxList, BinaryPrimitives.ReadUInt32BigEndian(param.AsSpan(12)));
        var supported = descriptors[0x0009];
        Assert.Equal([0x02, 0xE4], supported[5..(5 + supported[4])]);
        var general = descriptors[0x8001];
        Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(op.AsSpan(16)), BinaryPrimitives.ReadUInt32BigEndian(general.AsSpan(12)));
        Assert.Equal(op[36], BinaryPrimitives.ReadUInt32BigEndian(general.AsSpan(8)));

        // Standard INQUIRY: 3PC.
        Assert.Equal(0x08, h.Run(Cdb.Inquiry(), 96).Data[5] & 0x08);
    }

    [Fact]
    public void ReportSupportedOpcodes_AdvertisesExactlyTheCopyCommands()
    {
        var h = TwoLuns();
        var c = new byte[12];
        c[0] = 0xA3;
        c[1] = 0x0C;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(6), 8192);
        var data = h.Run(c, 8192).Data;
        var found = new List<(byte, ushort)>();
        for (int p = 4; p < 4 + BinaryPrimitives.ReadUInt32BigEndian(data); p += 8 + ((data[p + 5] & 0x02) != 0 ? 12 : 0))
        {
            if (data[p] is 0x83 or 0x84)
            {
                found.Add((data[p], BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(p + 2))));
            }
        }
        Assert.Equal([(0x83, 0), (0x84, 0), (0x84, 3), (0x84, 4)], found);
    }

    /// <summary>A back end whose reads wait until cancelled: a copy that only an abort ends.</summary>
    private sealed class SlowDevice(long length) : IBlockDevice
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public long Length => length;
        public bool IsReadOnly => false;
        public bool SupportsUnmap => false;

        public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
        {
            if (destination.Length > 512)
            {
                Started.TrySetResult();
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            destination.Span.Clear();
        }

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
        public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
        public ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
