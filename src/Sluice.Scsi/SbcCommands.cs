using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Sluice.Scsi;

/// <summary>SBC-3 block commands. Validation runs synchronously; only back-end I/O awaits.</summary>
internal static class SbcCommands
{
    private const int VerifyChunk = 1024 * 1024;

    /// <summary>
    /// LBA and TRANSFER LENGTH of the READ/WRITE/VERIFY/PRE-FETCH/SYNCHRONIZE CACHE families
    /// (SBC-3 5.x CDB layouts), plus the CDB byte holding the length for field pointers.
    /// </summary>
    private static void Decode(ReadOnlySpan<byte> cdb, out ulong lba, out uint blocks, out int lengthByte)
    {
        switch (cdb[0] >> 5)
        {
            case 0: // 6-byte: LBA in byte 1 bits 4:0 + bytes 2-3, TRANSFER LENGTH in byte 4 (0 = 256)
                lba = ((uint)(cdb[1] & 0x1F) << 16) | BinaryPrimitives.ReadUInt16BigEndian(cdb[2..]);
                blocks = cdb[4] == 0 ? 256u : cdb[4];
                lengthByte = 4;
                break;
            case 1: // 10-byte: LBA bytes 2-5, TRANSFER LENGTH bytes 7-8
                lba = BinaryPrimitives.ReadUInt32BigEndian(cdb[2..]);
                blocks = BinaryPrimitives.ReadUInt16BigEndian(cdb[7..]);
                lengthByte = 7;
                break;
            case 5: // 12-byte: LBA bytes 2-5, TRANSFER LENGTH bytes 6-9
                lba = BinaryPrimitives.ReadUInt32BigEndian(cdb[2..]);
                blocks = BinaryPrimitives.ReadUInt32BigEndian(cdb[6..]);
                lengthByte = 6;
                break;
            default: // 16-byte: LBA bytes 2-9, TRANSFER LENGTH bytes 10-13
                lba = BinaryPrimitives.ReadUInt64BigEndian(cdb[2..]);
                blocks = BinaryPrimitives.ReadUInt32BigEndian(cdb[10..]);
                lengthByte = 10;
                break;
        }
    }

    /// <summary>
    /// SBC-3 4.5: the range [lba, lba+blocks) must lie within the capacity. A zero-length
    /// transfer at LBA == capacity is accepted; beyond it is LBA OUT OF RANGE.
    /// </summary>
    internal static bool InRange(LogicalUnit lu, ulong lba, ulong blocks)
    {
        ulong capacity = (ulong)lu.BlockCount;
        return lba <= capacity && blocks <= capacity - lba;
    }

    /// <summary>Common checks for medium-access commands; null when the command may proceed.</summary>
    private static ScsiResponse? CheckTransfer(LogicalUnit lu, ScsiRequest request, ulong lba, uint blocks, int lengthByte)
    {
        if (blocks > lu.MaxTransferBlocks)
        {
            // Block Limits VPD MAXIMUM TRANSFER LENGTH exceeded (SBC-3 6.5.3).
            return Responses.InvalidFieldInCdb(request, lu, lengthByte);
        }
        if (!InRange(lu, lba, blocks))
        {
            return Responses.LbaOutOfRange(request, lu);
        }
        return null;
    }

    internal static ScsiResponse WriteProtected(ScsiRequest request, LogicalUnit lu) =>
        Responses.Check(request, lu, SenseKey.DataProtect, lu.ReadOnly ? Asc.WriteProtected : Asc.SoftwareWriteProtected);

    // ---- READ(6/10/12/16) (SBC-3 5.8-5.11) ---------------------------------------------
    //  byte 1 (10/12/16): RDPROTECT(7:5) DPO(4) FUA(3) RARC(2) FUA_NV(1)

    public static ValueTask<ScsiResponse> Read(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        Decode(cdb, out ulong lba, out uint blocks, out int lengthByte);
        if (cdb[0] != 0x08 && (cdb[1] & 0xE0) != 0)
        {
            // No protection information: RDPROTECT must be zero (SBC-3 4.22.2, Table 97).
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 7));
        }
        if (CheckTransfer(unit, request, lba, blocks, lengthByte) is ScsiResponse error)
        {
            return Responses.Done(error);
        }
        long bytes = (long)blocks * unit.BlockSize;
        // Move at most what the initiator can take; the transport reports the residual from
        // TransferLength (RFC 7143 11.4.5.2).
        int n = (int)Math.Min(bytes, request.DataIn.Length);
        if (n == 0)
        {
            return Responses.Done(Responses.Good(0, bytes));
        }
        // Shared range hold (RangeLock): uncontended unless a COMPARE AND WRITE is active.
        bool held = unit.Ranges.TryEnterShared(lba, blocks);
        return ReadCore(target, unit, request, lba, blocks, held, n, bytes, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<ScsiResponse> ReadCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, ulong lba, uint blocks, bool held, int count, long bytes, CancellationToken cancellationToken)
    {
        if (!held)
        {
            await unit.Ranges.EnterSharedAsync(lba, blocks, cancellationToken).ConfigureAwait(false);
        }
        try
        {
            await unit.Device.ReadAsync((long)lba * unit.BlockSize, request.DataIn[..count], cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "READ", ex);
            return Responses.Check(request, unit, SenseKey.MediumError, Asc.UnrecoveredReadError);
        }
        finally
        {
            unit.Ranges.ExitShared(lba, blocks);
        }
        return Responses.Good(count, bytes);
    }

    // ---- WRITE(6/10/12/16) (SBC-3 5.32-5.35), WRITE AND VERIFY (5.36-5.38) ------------
    //  byte 1: WRPROTECT(7:5) DPO(4) FUA(3) FUA_NV(1)      (WRITE AND VERIFY: BYTCHK(2:1))

    public static ValueTask<ScsiResponse> Write(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        bool fua = cdb[0] != 0x0A && (cdb[1] & 0x08) != 0;
        return WriteCommon(target, unit, request, fua, cancellationToken);
    }

    public static ValueTask<ScsiResponse> WriteAndVerify(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        int bytchk = (request.Cdb.Span[1] >> 1) & 0x03;
        if (bytchk > 1)
        {
            // Only 0b (verify medium) and 1b (compare with data-out) are defined for WRITE AND VERIFY.
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 2));
        }
        // Both forms are satisfied by writing through to stable storage: the verify compares
        // the medium with the very bytes just written.
        return WriteCommon(target, unit, request, forceUnitAccess: true, cancellationToken);
    }

    private static ValueTask<ScsiResponse> WriteCommon(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, bool forceUnitAccess, CancellationToken cancellationToken)
    {
        var cdb = request.Cdb.Span;
        Decode(cdb, out ulong lba, out uint blocks, out int lengthByte);
        if (cdb[0] != 0x0A && (cdb[1] & 0xE0) != 0)
        {
            // WRPROTECT must be zero without protection information (SBC-3 4.22.2, Table 101).
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 7));
        }
        if (CheckTransfer(unit, request, lba, blocks, lengthByte) is ScsiResponse error)
        {
            return Responses.Done(error);
        }
        if (unit.WriteProtected)
        {
            return Responses.Done(WriteProtected(request, unit));
        }
        long bytes = (long)blocks * unit.BlockSize;
        // Residual rule (libiscsi iSCSIResiduals.Write10Residuals): when the initiator's
        // expected length differs from what the CDB asks for, write only the whole blocks that
        // are both asked for and present in Data-Out, never pad or invent data; status is GOOD
        // and the transport reports the over/underflow from TransferLength.
        long available = Math.Min(bytes, request.DataOut.Length);
        int count = (int)(available - (available % unit.BlockSize));
        if (count == 0)
        {
            return Responses.Done(Responses.Good(0, bytes));
        }
        // SBC-3 4.15: FUA, or write-through caching (WCE=0), makes the write durable first.
        bool fua = forceUnitAccess || !unit.WriteCacheEnabled;
        bool held = unit.Ranges.TryEnterShared(lba, blocks);
        return WriteCore(target, unit, request, lba, blocks, held, count, fua, bytes, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<ScsiResponse> WriteCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, ulong lba, uint blocks, bool held, int count, bool fua, long bytes, CancellationToken cancellationToken)
    {
        if (!held)
        {
            await unit.Ranges.EnterSharedAsync(lba, blocks, cancellationToken).ConfigureAwait(false);
        }
        try
        {
            await unit.Device.WriteAsync((long)lba * unit.BlockSize, request.DataOut[..count], fua, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "WRITE", ex);
            return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
        }
        finally
        {
            unit.Ranges.ExitShared(lba, blocks);
        }
        return Responses.Good(0, bytes);
    }

    // ---- VERIFY(10/12/16) (SBC-3 5.29-5.31) --------------------------------------------
    //  byte 1: VRPROTECT(7:5) DPO(4) BYTCHK(2:1)
    //  BYTCHK 00b: verify the medium only; 01b: compare TRANSFER LENGTH blocks of data-out;
    //  11b: compare one data-out block against every block in the range (SBC-4); 10b reserved.

    public static ValueTask<ScsiResponse> Verify(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        Decode(cdb, out ulong lba, out uint blocks, out int lengthByte);
        if ((cdb[1] & 0xE0) != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 7));
        }
        int bytchk = (cdb[1] >> 1) & 0x03;
        if (bytchk == 2)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 2));
        }
        if (CheckTransfer(unit, request, lba, blocks, lengthByte) is ScsiResponse error)
        {
            return Responses.Done(error);
        }
        if (bytchk == 0)
        {
            // Medium verification only, no data-out: the back end reports unreadable data on
            // access, there is no separate medium scan.
            return Responses.Done(Responses.Good(0, 0));
        }
        long expected = bytchk == 3 ? unit.BlockSize : (long)blocks * unit.BlockSize;
        if (blocks == 0)
        {
            return Responses.Done(Responses.Good(0, expected));
        }
        // Compare only whole blocks the initiator actually sent (same rule as WRITE).
        long available = Math.Min(expected, request.DataOut.Length);
        available -= available % unit.BlockSize;
        if (available == 0)
        {
            return Responses.Done(Responses.Good(0, expected));
        }
        long compareBytes = bytchk == 3 ? (long)blocks * unit.BlockSize : available;
        return VerifyCore(target, unit, request, lba, blocks, compareBytes, single: bytchk == 3, expected, cancellationToken);
    }

    private static async ValueTask<ScsiResponse> VerifyCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, ulong lba, uint blocks, long compareBytes, bool single, long expected, CancellationToken cancellationToken)
    {
        long offset = (long)lba * unit.BlockSize;
        using var range = await unit.Ranges.EnterSharedAsync(lba, blocks, cancellationToken).ConfigureAwait(false);
        int chunk = (int)Math.Min(compareBytes, VerifyChunk);
        chunk -= chunk % unit.BlockSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(chunk);
        try
        {
            long done = 0;
            while (done < compareBytes)
            {
                int n = (int)Math.Min(chunk, compareBytes - done);
                try
                {
                    await unit.Device.ReadAsync(offset + done, buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "VERIFY", ex);
                    return Responses.Check(request, unit, SenseKey.MediumError, Asc.UnrecoveredReadError);
                }
                long mismatch = Compare(buffer.AsSpan(0, n), request.DataOut.Span, done, single, unit.BlockSize);
                if (mismatch >= 0)
                {
                    // SBC-3 5.29: MISCOMPARE, INFORMATION = offset of the first miscompared
                    // byte in the Data-Out buffer.
                    return Responses.Check(request, unit.DescriptorSense, SenseKey.Miscompare, Asc.MiscompareDuringVerify,
                        FieldPointer.None, hasInformation: true, information: (ulong)mismatch);
                }
                done += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return Responses.Good(0, expected);
    }

    /// <summary>Returns the data-out offset of the first differing byte, or -1.</summary>
    internal static long Compare(ReadOnlySpan<byte> medium, ReadOnlySpan<byte> dataOut, long position, bool single, int blockSize)
    {
        if (!single)
        {
            var expected = dataOut.Slice((int)position, medium.Length);
            int i = medium.CommonPrefixLength(expected);
            return i == medium.Length ? -1 : position + i;
        }
        var block = dataOut[..blockSize];
        for (int b = 0; b < medium.Length; b += blockSize)
        {
            int i = medium.Slice(b, blockSize).CommonPrefixLength(block);
            if (i != blockSize)
            {
                return i; // offset within the single data-out block
            }
        }
        return -1;
    }

    // ---- PRE-FETCH(10/16) (SBC-3 5.6, 5.7) ---------------------------------------------

    public static ValueTask<ScsiResponse> PreFetch(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        Decode(request.Cdb.Span, out ulong lba, out uint blocks, out _);
        if (!InRange(unit, lba, blocks))
        {
            return Responses.Done(Responses.LbaOutOfRange(request, unit));
        }
        // SBC-3 5.6: GOOD (not CONDITION MET) tells the initiator the blocks may not all fit in
        // the cache — true here, caching belongs to the back end. libiscsi expects GOOD too.
        return Responses.Done(Responses.Good(0, -1));
    }

    // ---- SYNCHRONIZE CACHE(10/16) (SBC-3 5.22, 5.23) -----------------------------------
    //  NUMBER OF LOGICAL BLOCKS 0 = to the last LBA. The whole back end is flushed.

    public static ValueTask<ScsiResponse> SynchronizeCache(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        Decode(request.Cdb.Span, out ulong lba, out uint blocks, out _);
        if (!InRange(unit, lba, blocks))
        {
            return Responses.Done(Responses.LbaOutOfRange(request, unit));
        }
        return FlushCore(target, unit, request, cancellationToken);
    }

    private static async ValueTask<ScsiResponse> FlushCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, CancellationToken cancellationToken)
    {
        try
        {
            await unit.Device.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "SYNCHRONIZE CACHE", ex);
            return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
        }
        return Responses.Good(0, -1);
    }

    // ---- READ CAPACITY(10) (SBC-3 5.15) / READ CAPACITY(16) (SBC-3 5.16) ---------------

    public static ValueTask<ScsiResponse> ReadCapacity10(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        bool pmi = (cdb[8] & 0x01) != 0;
        if (!pmi && BinaryPrimitives.ReadUInt32BigEndian(cdb[2..]) != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 2));
        }
        Span<byte> data = stackalloc byte[8];
        ulong last = (ulong)unit.BlockCount - 1;
        // RETURNED LOGICAL BLOCK ADDRESS FFFFFFFFh: use READ CAPACITY(16).
        BinaryPrimitives.WriteUInt32BigEndian(data, last >= uint.MaxValue ? uint.MaxValue : (uint)last);
        BinaryPrimitives.WriteUInt32BigEndian(data[4..], (uint)unit.BlockSize);
        var response = SpcCommands.CopyOut(request, data, data.Length);
        return Responses.Done(response with { TransferLength = 8 });
    }

    public static ValueTask<ScsiResponse> ReadCapacity16(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        uint alloc = BinaryPrimitives.ReadUInt32BigEndian(cdb[10..]);
        bool pmi = (cdb[14] & 0x01) != 0;
        if (!pmi && BinaryPrimitives.ReadUInt64BigEndian(cdb[2..]) != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 2));
        }
        //  0-7 RETURNED LOGICAL BLOCK ADDRESS  8-11 LOGICAL BLOCK LENGTH  12 P_TYPE/PROT_EN
        //  13 P_I_EXPONENT/LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT  14-15 LBPME LBPRZ LOWEST ALIGNED LBA
        Span<byte> data = stackalloc byte[32];
        data.Clear();
        BinaryPrimitives.WriteUInt64BigEndian(data, (ulong)unit.BlockCount - 1);
        BinaryPrimitives.WriteUInt32BigEndian(data[8..], (uint)unit.BlockSize);
        if (unit.ThinProvisioned)
        {
            data[14] = 0x80 | 0x40; // LBPME=1, LBPRZ=1 (SBC-3 5.16.2)
        }
        return Responses.Done(SpcCommands.CopyOut(request, data, (int)Math.Min(alloc, int.MaxValue)));
    }
}
