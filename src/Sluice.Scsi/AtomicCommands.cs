using System.Buffers;
using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>
/// Commands that read-modify-write or must not interleave with other commands on the same
/// blocks: COMPARE AND WRITE (SBC-3 5.2), ORWRITE(16) (SBC-3 5.?; SBC-4 5.12) and WRITE
/// ATOMIC(16) (SBC-4 5.48). Each holds its LBA range exclusively in <see cref="RangeLock"/>.
/// </summary>
internal static class AtomicCommands
{
    // ---- COMPARE AND WRITE (SBC-3 5.2) -------------------------------------------------
    //  byte 1: WRPROTECT(7:5) DPO(4) FUA(3) FUA_NV(1)   bytes 2-9: LBA
    //  byte 13: NUMBER OF LOGICAL BLOCKS   byte 14: GROUP NUMBER
    //  Data-Out: NUMBER OF LOGICAL BLOCKS of verify data, then as many of write data.

    public static ValueTask<ScsiResponse> CompareAndWrite(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        ulong lba = BinaryPrimitives.ReadUInt64BigEndian(cdb[2..]);
        uint blocks = cdb[13];
        if ((cdb[1] & 0xE0) != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 7));
        }
        if (blocks > unit.MaxCompareAndWriteBlocks)
        {
            // Block Limits VPD MAXIMUM COMPARE AND WRITE LENGTH (SBC-3 6.5.3).
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 13));
        }
        if (!SbcCommands.InRange(unit, lba, blocks))
        {
            return Responses.Done(Responses.LbaOutOfRange(request, unit));
        }
        if (unit.WriteProtected)
        {
            return Responses.Done(SbcCommands.WriteProtected(request, unit));
        }
        long half = (long)blocks * unit.BlockSize;
        if (blocks == 0)
        {
            // SBC-3 5.2: zero blocks is not an error; nothing is compared or written. An
            // initiator that nevertheless sends data most likely meant 256 blocks (the one-byte
            // field wrapped), which exceeds MAXIMUM COMPARE AND WRITE LENGTH: refuse it
            // rather than silently doing nothing (libiscsi CompareAndWrite.Simple expects this).
            return Responses.Done(request.ExpectedDataOutLength > 0
                ? Responses.InvalidFieldInCdb(request, unit, 13)
                : Responses.Good(0, 0));
        }
        if (request.DataOut.Length < 2 * half)
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
        }
        bool fua = (cdb[1] & 0x08) != 0 || !unit.WriteCacheEnabled;
        return CompareAndWriteCore(target, unit, request, lba, blocks, (int)half, fua, cancellationToken);
    }

    private static async ValueTask<ScsiResponse> CompareAndWriteCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, ulong lba, uint blocks, int half, bool fua, CancellationToken cancellationToken)
    {
        long offset = (long)lba * unit.BlockSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(half);
        try
        {
            using var range = await unit.Ranges.EnterExclusiveAsync(lba, blocks, cancellationToken).ConfigureAwait(false);
            try
            {
                await unit.Device.ReadAsync(offset, buffer.AsMemory(0, half), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "COMPARE AND WRITE", ex);
                return Responses.Check(request, unit, SenseKey.MediumError, Asc.UnrecoveredReadError);
            }
            int same = buffer.AsSpan(0, half).CommonPrefixLength(request.DataOut.Span[..half]);
            if (same != half)
            {
                // SBC-3 5.2: MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION, INFORMATION =
                // offset of the first differing byte in the Data-Out buffer; nothing is written.
                return Responses.Check(request, unit.DescriptorSense, SenseKey.Miscompare, Asc.MiscompareDuringVerify,
                    FieldPointer.None, hasInformation: true, information: (ulong)same);
            }
            try
            {
                await unit.Device.WriteAsync(offset, request.DataOut.Slice(half, half), fua, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "COMPARE AND WRITE", ex);
                return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return Responses.Good(0, 2L * half);
    }

    // ---- ORWRITE(16) (SBC-3 5.?, SBC-4 5.12) ----------------------------------------------
    //  byte 1: ORPROTECT(7:5) DPO(4) FUA(3) FUA_NV(1)   bytes 2-9 LBA   bytes 10-13 TRANSFER LENGTH
    //  The medium becomes (medium OR data-out), atomically with respect to other commands.

    public static ValueTask<ScsiResponse> OrWrite(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        ulong lba = BinaryPrimitives.ReadUInt64BigEndian(cdb[2..]);
        uint blocks = BinaryPrimitives.ReadUInt32BigEndian(cdb[10..]);
        if ((cdb[1] & 0xE0) != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 7));
        }
        if (blocks > unit.MaxTransferBlocks)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 10));
        }
        if (!SbcCommands.InRange(unit, lba, blocks))
        {
            return Responses.Done(Responses.LbaOutOfRange(request, unit));
        }
        if (unit.WriteProtected)
        {
            return Responses.Done(SbcCommands.WriteProtected(request, unit));
        }
        long bytes = (long)blocks * unit.BlockSize;
        long available = Math.Min(bytes, request.DataOut.Length);
        int count = (int)(available - (available % unit.BlockSize));
        if (count == 0)
        {
            return Responses.Done(Responses.Good(0, bytes));
        }
        bool fua = (cdb[1] & 0x08) != 0 || !unit.WriteCacheEnabled;
        return OrWriteCore(target, unit, request, lba, (uint)(count / unit.BlockSize), count, fua, bytes, cancellationToken);
    }

    private static async ValueTask<ScsiResponse> OrWriteCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, ulong lba, uint blocks, int count, bool fua, long bytes, CancellationToken cancellationToken)
    {
        long offset = (long)lba * unit.BlockSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(count);
        try
        {
            using var range = await unit.Ranges.EnterExclusiveAsync(lba, blocks, cancellationToken).ConfigureAwait(false);
            await unit.Device.ReadAsync(offset, buffer.AsMemory(0, count), cancellationToken).ConfigureAwait(false);
            Or(buffer.AsSpan(0, count), request.DataOut.Span[..count]);
            await unit.Device.WriteAsync(offset, buffer.AsMemory(0, count), fua, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "ORWRITE", ex);
            return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return Responses.Good(0, bytes);
    }

    private static void Or(Span<byte> medium, ReadOnlySpan<byte> data)
    {
        int i = 0;
        var wide = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(medium);
        var wideData = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data);
        for (; i < wide.Length; i++)
        {
            wide[i] |= wideData[i];
        }
        for (i *= 8; i < medium.Length; i++)
        {
            medium[i] |= data[i];
        }
    }

    // ---- WRITE ATOMIC(16) (SBC-4 5.48) -------------------------------------------------
    //  byte 1: WRPROTECT(7:5) DPO(4) FUA(3)   bytes 2-9 LBA   bytes 10-11 ATOMIC BOUNDARY
    //  bytes 12-13 TRANSFER LENGTH   byte 14 GROUP NUMBER
    //  MAXIMUM ATOMIC BOUNDARY SIZE is 0, so ATOMIC BOUNDARY is reserved (usage bits clear).

    public static ValueTask<ScsiResponse> WriteAtomic(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        ulong lba = BinaryPrimitives.ReadUInt64BigEndian(cdb[2..]);
        uint blocks = BinaryPrimitives.ReadUInt16BigEndian(cdb[12..]);
        if ((cdb[1] & 0xE0) != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 7));
        }
        if (blocks > unit.MaxAtomicBlocks)
        {
            // SBC-4 5.48: TRANSFER LENGTH above MAXIMUM ATOMIC TRANSFER LENGTH.
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 12));
        }
        if (!SbcCommands.InRange(unit, lba, blocks))
        {
            return Responses.Done(Responses.LbaOutOfRange(request, unit));
        }
        if (unit.WriteProtected)
        {
            return Responses.Done(SbcCommands.WriteProtected(request, unit));
        }
        long bytes = (long)blocks * unit.BlockSize;
        if (blocks == 0)
        {
            return Responses.Done(Responses.Good(0, 0));
        }
        if (request.DataOut.Length < bytes)
        {
            // An atomic write is all or nothing: a short Data-Out cannot be written in part.
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
        }
        bool fua = (cdb[1] & 0x08) != 0 || !unit.WriteCacheEnabled;
        return WriteAtomicCore(target, unit, request, lba, blocks, (int)bytes, fua, cancellationToken);
    }

    private static async ValueTask<ScsiResponse> WriteAtomicCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, ulong lba, uint blocks, int bytes, bool fua, CancellationToken cancellationToken)
    {
        using var range = await unit.Ranges.EnterExclusiveAsync(lba, blocks, cancellationToken).ConfigureAwait(false);
        try
        {
            await unit.Device.WriteAsync((long)lba * unit.BlockSize, request.DataOut[..bytes], fua, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "WRITE ATOMIC", ex);
            return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
        }
        return Responses.Good(0, bytes);
    }
}
