using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Sluice.Initiator;

/// <summary>
/// Async block I/O on one logical unit of an <see cref="IscsiSession"/>. Block-level calls throw
/// <see cref="ScsiCommandException"/> for SCSI errors; a UNIT ATTENTION (reset, capacity change)
/// is retried, as libiscsi does, since the command was not executed.
/// </summary>
public sealed class IscsiLun : IAsyncDisposable
{
    /// <summary>Largest single command this class sends; bigger I/Os are split.</summary>
    public const int DefaultMaxTransferBytes = 8 * 1024 * 1024;

    private const int UnitAttentionRetries = 3;

    private readonly bool _ownsSession;

    private IscsiLun(IscsiSession session, int lun, bool ownsSession)
    {
        Session = session;
        Lun = lun;
        EncodedLun = IscsiSession.EncodeLun(lun);
        _ownsSession = ownsSession;
    }

    /// <summary>The session commands go through.</summary>
    public IscsiSession Session { get; }

    /// <summary>Logical unit number.</summary>
    public int Lun { get; }

    internal ulong EncodedLun { get; }

    /// <summary>Logical block length, from READ CAPACITY.</summary>
    public int BlockSize { get; private set; }

    /// <summary>Number of logical blocks, from READ CAPACITY.</summary>
    public long BlockCount { get; private set; }

    /// <summary>Capacity in bytes.</summary>
    public long SizeBytes => BlockCount * BlockSize;

    /// <summary>Largest byte count sent in one command (Block Limits VPD, capped at <see cref="DefaultMaxTransferBytes"/>).</summary>
    public int MaxTransferBytes { get; private set; } = DefaultMaxTransferBytes;

    /// <summary>Connects to the URL's target, opens its LUN (0 when the URL names none) and reads its capacity. Disposing the LUN logs out.</summary>
    public static async Task<IscsiLun> OpenAsync(IscsiUrl url, IscsiClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(url);
        var session = await IscsiSession.ConnectAsync(url, options, cancellationToken).ConfigureAwait(false);
        try
        {
            var lun = new IscsiLun(session, url.Lun ?? 0, ownsSession: true);
            await lun.InitializeAsync(cancellationToken).ConfigureAwait(false);
            return lun;
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Opens LUN <paramref name="lun"/> of an existing session and reads its capacity. The session stays the caller's.</summary>
    public static async Task<IscsiLun> OpenAsync(IscsiSession session, int lun, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        var l = new IscsiLun(session, lun, ownsSession: false);
        await l.InitializeAsync(cancellationToken).ConfigureAwait(false);
        return l;
    }

    private async Task InitializeAsync(CancellationToken ct)
    {
        await ReadCapacityAsync(ct).ConfigureAwait(false);
        try
        {
            var limits = BlockLimits.Parse(await InquiryAsync(0xB0, ct).ConfigureAwait(false));
            if (limits.MaxTransferBlocks > 0 && limits.MaxTransferBlocks * BlockSize < MaxTransferBytes)
            {
                MaxTransferBytes = (int)(limits.MaxTransferBlocks * BlockSize);
            }
        }
        catch (ScsiCommandException)
        {
            // Page B0h is optional.
        }
    }

    // ---------------------------------------------------------------- raw

    /// <summary>Runs a CDB on this LUN and returns its status without throwing for SCSI errors.</summary>
    public ValueTask<ScsiResult> ExecuteAsync(ReadOnlySpan<byte> cdb, ReadOnlyMemory<byte> dataOut = default, Memory<byte> dataIn = default, CancellationToken cancellationToken = default) =>
        Session.ExecuteAsync(Lun, cdb, dataOut, dataIn, cancellationToken);

    /// <summary>Runs a command, retrying UNIT ATTENTION, BUSY and TASK SET FULL a few times; throws for any other error.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ScsiResult> RunAsync(Cdb16 cdb, int cdbLength, ReadOnlyMemory<byte> dataOut, Memory<byte> dataIn,
        IReadOnlyList<Memory<byte>>? dataInList, int dataInLength, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            var r = await Session.StartAsync(EncodedLun, cdb, cdbLength, dataOut, dataIn, dataInList, dataInLength, ct).ConfigureAwait(false);
            if (r.IsGood)
            {
                return r;
            }

            if (attempt < UnitAttentionRetries)
            {
                if (r.Status == ScsiStatus.CheckCondition && SenseDecoder.TryDecode(r.Sense.Span, out byte key, out _, out _) && key == SenseKey.UnitAttention)
                {
                    continue;
                }

                if (r.Status is ScsiStatus.Busy or ScsiStatus.TaskSetFull)
                {
                    await Task.Delay(10 << attempt, ct).ConfigureAwait(false);
                    continue;
                }
            }

            throw new ScsiCommandException(cdb[0], r);
        }
    }

    private ValueTask<ScsiResult> RunAsync(ReadOnlySpan<byte> cdb, ReadOnlyMemory<byte> dataOut, Memory<byte> dataIn, CancellationToken ct)
    {
        var c = default(Cdb16);
        cdb.CopyTo(c);
        return RunAsync(c, cdb.Length, dataOut, dataIn, null, dataIn.Length, ct);
    }

    // ---------------------------------------------------------------- block I/O

    /// <summary>Reads <c>buffer.Length / BlockSize</c> blocks at <paramref name="lba"/> straight into <paramref name="buffer"/>.</summary>
    public ValueTask ReadAsync(long lba, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int blocks = CheckRange(lba, buffer.Length);
        return buffer.Length <= MaxTransferBytes
            ? ReadOneAsync(lba, blocks, buffer, null, cancellationToken)
            : ReadSplitAsync(lba, buffer, cancellationToken);
    }

    /// <summary>Reads blocks at <paramref name="lba"/> into a scatter-gather list, filled in order.</summary>
    public ValueTask ReadAsync(long lba, IReadOnlyList<Memory<byte>> buffers, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        long total = 0;
        for (int i = 0; i < buffers.Count; i++)
        {
            total += buffers[i].Length;
        }

        if (total > int.MaxValue)
        {
            throw new ArgumentException("scatter-gather list larger than 2 GiB", nameof(buffers));
        }

        int blocks = CheckRange(lba, (int)total);
        return ReadOneAsync(lba, blocks, default, buffers, cancellationToken);
    }

    private ValueTask ReadOneAsync(long lba, int blocks, Memory<byte> buffer, IReadOnlyList<Memory<byte>>? list, CancellationToken ct)
    {
        var cdb = default(Cdb16);
        int length = Cdbs.ReadWrite(cdb, write: false, lba, blocks, fua: false);
        return Session.StartBlockAsync(new CommandRequest(EncodedLun, cdb, length, default, buffer, list, blocks * BlockSize, true, true), ct);
    }

    private async ValueTask ReadSplitAsync(long lba, Memory<byte> buffer, CancellationToken ct)
    {
        for (int offset = 0; offset < buffer.Length; offset += MaxTransferBytes)
        {
            var piece = buffer.Slice(offset, Math.Min(MaxTransferBytes, buffer.Length - offset));
            await ReadOneAsync(lba + (offset / BlockSize), piece.Length / BlockSize, piece, null, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Writes whole blocks at <paramref name="lba"/>; <paramref name="fua"/> asks for stable storage before the status.</summary>
    public ValueTask WriteAsync(long lba, ReadOnlyMemory<byte> data, bool fua = false, CancellationToken cancellationToken = default)
    {
        int blocks = CheckRange(lba, data.Length);
        if (data.Length <= MaxTransferBytes)
        {
            var cdb = default(Cdb16);
            int length = Cdbs.ReadWrite(cdb, write: true, lba, blocks, fua);
            return Session.StartBlockAsync(new CommandRequest(EncodedLun, cdb, length, data, default, null, 0, true, false), cancellationToken);
        }

        return WriteSplitAsync(lba, data, fua, cancellationToken);
    }

    private async ValueTask WriteSplitAsync(long lba, ReadOnlyMemory<byte> data, bool fua, CancellationToken ct)
    {
        for (int offset = 0; offset < data.Length; offset += MaxTransferBytes)
        {
            var piece = data.Slice(offset, Math.Min(MaxTransferBytes, data.Length - offset));
            var cdb = default(Cdb16);
            int length = Cdbs.ReadWrite(cdb, write: true, lba + (offset / BlockSize), piece.Length / BlockSize, fua);
            await RunAsync(cdb, length, piece, default, null, 0, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// WRITE SAME (SBC-3 §5.41/§5.42): writes <paramref name="block"/> (one block) to
    /// <paramref name="blocks"/> blocks; with <paramref name="unmap"/> the target may deallocate them instead.
    /// </summary>
    public async Task WriteSameAsync(long lba, long blocks, ReadOnlyMemory<byte> block, bool unmap = false, CancellationToken cancellationToken = default)
    {
        EnsureCapacityKnown();
        if (block.Length != BlockSize)
        {
            throw new ArgumentException($"WRITE SAME takes exactly one {BlockSize}-byte block", nameof(block));
        }

        CheckBlocks(lba, blocks);
        while (blocks > 0)
        {
            uint n = (uint)Math.Min(blocks, uint.MaxValue);
            var cdb = new byte[16];
            cdb[0] = Cdbs.WriteSame16;
            cdb[1] = unmap ? (byte)0x08 : (byte)0;
            BinaryPrimitives.WriteUInt64BigEndian(cdb.AsSpan(2), (ulong)lba);
            BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(10), n);
            await RunAsync(cdb, block, default, cancellationToken).ConfigureAwait(false);
            lba += n;
            blocks -= n;
        }
    }

    /// <summary>UNMAP (SBC-3 §5.28) of the given ranges; ranges longer than 2^32-1 blocks are split.</summary>
    public async Task UnmapAsync(IReadOnlyList<BlockRange> ranges, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        EnsureCapacityKnown();
        var descriptors = new List<(long Lba, uint Count)>();
        foreach (var r in ranges)
        {
            CheckBlocks(r.Lba, r.Blocks);
            for (long lba = r.Lba, left = r.Blocks; left > 0;)
            {
                uint n = (uint)Math.Min(left, uint.MaxValue);
                descriptors.Add((lba, n));
                lba += n;
                left -= n;
            }
        }

        const int perCommand = 4095; // parameter list length is 16 bits: 8 + 16n <= 65535
        for (int start = 0; start < descriptors.Count; start += perCommand)
        {
            int count = Math.Min(perCommand, descriptors.Count - start);
            var data = new byte[8 + (16 * count)];
            BinaryPrimitives.WriteUInt16BigEndian(data, (ushort)(6 + (16 * count)));
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(2), (ushort)(16 * count));
            for (int i = 0; i < count; i++)
            {
                var (lba, n) = descriptors[start + i];
                BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(8 + (16 * i)), (ulong)lba);
                BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(16 + (16 * i)), n);
            }

            var cdb = new byte[10];
            cdb[0] = Cdbs.Unmap;
            BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(7), (ushort)data.Length);
            await RunAsync(cdb, data, default, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// COMPARE AND WRITE (SBC-3 §5.2, VAAI's ATS): writes <paramref name="write"/> only if the blocks
    /// hold <paramref name="compare"/>. Returns false on a miscompare.
    /// </summary>
    public async Task<bool> CompareAndWriteAsync(long lba, ReadOnlyMemory<byte> compare, ReadOnlyMemory<byte> write, CancellationToken cancellationToken = default)
    {
        int blocks = CheckRange(lba, compare.Length);
        if (write.Length != compare.Length || blocks > 255)
        {
            throw new ArgumentException("compare and write buffers must be the same whole number of blocks, at most 255");
        }

        var data = new byte[compare.Length * 2];
        compare.CopyTo(data);
        write.CopyTo(data.AsMemory(compare.Length));
        var cdb = new byte[16];
        cdb[0] = Cdbs.CompareAndWrite;
        BinaryPrimitives.WriteUInt64BigEndian(cdb.AsSpan(2), (ulong)lba);
        cdb[13] = (byte)blocks;
        try
        {
            await RunAsync(cdb, data, default, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ScsiCommandException e) when (e.SenseKey == SenseKey.Miscompare)
        {
            return false;
        }
    }

    /// <summary>SYNCHRONIZE CACHE (SBC-3 §5.24): the whole unit when <paramref name="blocks"/> is 0.</summary>
    public async Task SynchronizeCacheAsync(long lba = 0, int blocks = 0, CancellationToken cancellationToken = default)
    {
        var cdb = new byte[10];
        cdb[0] = Cdbs.SynchronizeCache10;
        if (lba > uint.MaxValue || blocks > ushort.MaxValue)
        {
            cdb = new byte[16];
            cdb[0] = Cdbs.SynchronizeCache16;
            BinaryPrimitives.WriteUInt64BigEndian(cdb.AsSpan(2), (ulong)lba);
            BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(10), (uint)blocks);
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), (uint)lba);
            BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(7), (ushort)blocks);
        }

        await RunAsync(cdb, default, default, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>READ CAPACITY(10), then (16) when the unit is too large for 10 or thin provisioning is to be learnt (SBC-3 §5.15, §5.16).</summary>
    public async Task<Capacity> ReadCapacityAsync(CancellationToken cancellationToken = default)
    {
        var buffer = new byte[32];
        var cdb10 = new byte[10];
        cdb10[0] = Cdbs.ReadCapacity10;
        await RunAsync(cdb10, default, buffer.AsMemory(0, 8), cancellationToken).ConfigureAwait(false);
        var capacity = Capacity.Parse10(buffer);
        var cdb16 = new byte[16];
        cdb16[0] = Cdbs.ServiceActionIn16;
        cdb16[1] = 0x10; // READ CAPACITY(16)
        BinaryPrimitives.WriteUInt32BigEndian(cdb16.AsSpan(10), 32);
        try
        {
            await RunAsync(cdb16, default, buffer, cancellationToken).ConfigureAwait(false);
            capacity = Capacity.Parse16(buffer);
        }
        catch (ScsiCommandException) when (capacity.BlockCount <= uint.MaxValue)
        {
            // READ CAPACITY(16) is optional below 2^32 blocks.
        }

        if (capacity.BlockSize is < 512 or > 1 << 20 || (capacity.BlockSize & (capacity.BlockSize - 1)) != 0)
        {
            throw new IOException($"the target reports an unusable block size of {capacity.BlockSize} bytes");
        }

        BlockSize = capacity.BlockSize;
        BlockCount = capacity.BlockCount;
        return capacity;
    }

    /// <summary>
    /// GET LBA STATUS (SBC-3 §5.7): the provisioning status of the blocks from <paramref name="lba"/> on,
    /// as the target reports them (the first descriptor starts at <paramref name="lba"/>; the list may end
    /// before the unit does). At most <paramref name="maxDescriptors"/> descriptors are asked for.
    /// </summary>
    public async Task<IReadOnlyList<LbaStatus>> GetLbaStatusAsync(long lba, int maxDescriptors = 64, CancellationToken cancellationToken = default)
    {
        EnsureCapacityKnown();
        CheckBlocks(lba, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDescriptors, 1);
        var buffer = new byte[8 + (16 * Math.Min(maxDescriptors, 4096))];
        var cdb = new byte[16];
        cdb[0] = Cdbs.ServiceActionIn16;
        cdb[1] = 0x12; // GET LBA STATUS
        BinaryPrimitives.WriteUInt64BigEndian(cdb.AsSpan(2), (ulong)lba);
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(10), (uint)buffer.Length);
        var r = await RunAsync(cdb, default, buffer, cancellationToken).ConfigureAwait(false);
        int got = buffer.Length - (r.Underflow ? r.ResidualCount : 0);
        // PARAMETER DATA LENGTH counts the bytes after itself (SBC-3 §5.7.3).
        int length = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(buffer) + 4L, Math.Min(got, buffer.Length));
        var list = new List<LbaStatus>();
        for (int o = 8; o + 16 <= length; o += 16)
        {
            list.Add(new LbaStatus((long)BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(o)),
                BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(o + 8)), buffer[o + 12] & 0x0f));
        }

        return list;
    }

    /// <summary>Standard INQUIRY (SPC-4 §6.6).</summary>
    public async Task<StandardInquiry> InquiryAsync(CancellationToken cancellationToken = default)
    {
        var data = await InquiryRawAsync(false, 0, cancellationToken).ConfigureAwait(false);
        return StandardInquiry.Parse(data);
    }

    /// <summary>INQUIRY with EVPD=1: the raw vital product data page <paramref name="page"/>, header included.</summary>
    public Task<byte[]> InquiryAsync(byte page, CancellationToken cancellationToken = default) => InquiryRawAsync(true, page, cancellationToken);

    private async Task<byte[]> InquiryRawAsync(bool evpd, byte page, CancellationToken ct)
    {
        var buffer = new byte[evpd ? 1024 : 255];
        var cdb = new byte[6];
        cdb[0] = Cdbs.Inquiry;
        cdb[1] = evpd ? (byte)1 : (byte)0;
        cdb[2] = page;
        BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(3), (ushort)buffer.Length);
        var r = await RunAsync(cdb, default, buffer, ct).ConfigureAwait(false);
        int got = buffer.Length - (r.Underflow ? r.ResidualCount : 0);
        int declared = evpd ? 4 + BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(2)) : 5 + buffer[4];
        return buffer.AsSpan(0, Math.Clamp(Math.Min(got, declared), 0, buffer.Length)).ToArray();
    }

    /// <summary>The VPD pages the unit supports (page 00h).</summary>
    public async Task<IReadOnlyList<byte>> SupportedVpdPagesAsync(CancellationToken cancellationToken = default)
    {
        var d = await InquiryAsync(0x00, cancellationToken).ConfigureAwait(false);
        return d.Length > 4 ? d.AsSpan(4).ToArray() : [];
    }

    /// <summary>REPORT LUNS (SPC-4 §6.33): the LUNs of the target, decoded from peripheral or flat addressing.</summary>
    public Task<IReadOnlyList<int>> ReportLunsAsync(CancellationToken cancellationToken = default) => ReportLunsAsync(Session, cancellationToken);

    /// <summary>REPORT LUNS sent to LUN 0 of <paramref name="session"/> (any LUN may answer it; SPC-4 §6.33).</summary>
    public static async Task<IReadOnlyList<int>> ReportLunsAsync(IscsiSession session, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        var buffer = new byte[8 + (8 * 256)];
        for (int attempt = 0; ; attempt++)
        {
            var cdb = new byte[12];
            cdb[0] = Cdbs.ReportLuns;
            BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(6), (uint)buffer.Length);
            var r = await session.ExecuteAsync(0, cdb, default, buffer, cancellationToken).ConfigureAwait(false);
            if (!r.IsGood)
            {
                if (attempt < UnitAttentionRetries && SenseDecoder.TryDecode(r.Sense.Span, out byte key, out _, out _) && key == SenseKey.UnitAttention)
                {
                    continue;
                }

                throw new ScsiCommandException(Cdbs.ReportLuns, r);
            }

            int listLength = (int)BinaryPrimitives.ReadUInt32BigEndian(buffer);
            if (8 + listLength > buffer.Length && attempt < UnitAttentionRetries)
            {
                buffer = new byte[8 + listLength];
                continue;
            }

            var luns = new List<int>();
            for (int o = 8; o + 8 <= Math.Min(buffer.Length, 8 + listLength); o += 8)
            {
                int method = buffer[o] >> 6;
                luns.Add(method switch
                {
                    0 => buffer[o + 1],
                    1 => ((buffer[o] & 0x3f) << 8) | buffer[o + 1],
                    _ => -1,
                });
            }

            return luns;
        }
    }

    /// <summary>TEST UNIT READY (SPC-4 §6.37).</summary>
    public async Task TestUnitReadyAsync(CancellationToken cancellationToken = default) =>
        await RunAsync(new byte[6], default, default, cancellationToken).ConfigureAwait(false);

    /// <summary>A seekable <see cref="Stream"/> over the whole unit.</summary>
    public IscsiLunStream AsStream() => new(this);

    private int CheckRange(long lba, int bytes)
    {
        EnsureCapacityKnown();
        if (bytes <= 0 || bytes % BlockSize != 0)
        {
            throw new ArgumentException($"length {bytes} is not a positive multiple of the {BlockSize}-byte block size");
        }

        int blocks = bytes / BlockSize;
        CheckBlocks(lba, blocks);
        return blocks;
    }

    private void CheckBlocks(long lba, long blocks)
    {
        if (lba < 0 || blocks < 0 || lba + blocks > BlockCount)
        {
            throw new ArgumentOutOfRangeException(nameof(lba), $"blocks {lba}..{lba + blocks} are outside the unit's {BlockCount} blocks");
        }
    }

    private void EnsureCapacityKnown()
    {
        if (BlockSize == 0)
        {
            throw new InvalidOperationException("the capacity is not known yet; call ReadCapacityAsync first");
        }
    }

    /// <summary>Logs out when this LUN opened its own session.</summary>
    public ValueTask DisposeAsync() => _ownsSession ? Session.DisposeAsync() : ValueTask.CompletedTask;
}
