using System.Buffers;
using System.Buffers.Binary;
using Sluice.Storage;

namespace Sluice.Scsi;

/// <summary>
/// Logical block provisioning (SBC-3 4.7): UNMAP, WRITE SAME(10/16) and GET LBA STATUS.
/// A thin-provisioned LU (the back end really deallocates) reports LBPME=1/LBPRZ=1; a
/// deallocated block reads as zeros.
/// </summary>
internal static class ProvisioningCommands
{
    private const int FillChunk = 1024 * 1024;
    private const int MaxLbaStatusDescriptors = 512;

    // ---- UNMAP (SBC-3 5.28) ------------------------------------------------------------
    //  byte 1: ANCHOR(0)  byte 6: GROUP NUMBER  bytes 7-8: PARAMETER LIST LENGTH
    //  Parameter list: 0-1 UNMAP DATA LENGTH (n-1)  2-3 UNMAP BLOCK DESCRIPTOR DATA LENGTH (n-7)
    //  then 16-byte descriptors: 0-7 LBA, 8-11 NUMBER OF LOGICAL BLOCKS.

    public static ValueTask<ScsiResponse> Unmap(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        int listLength = BinaryPrimitives.ReadUInt16BigEndian(cdb[7..]);
        if (listLength == 0)
        {
            // SBC-3 5.28: a zero PARAMETER LIST LENGTH is not an error; nothing is unmapped.
            return Responses.Done(Responses.Good(0, 0));
        }
        if (unit.WriteProtected)
        {
            return Responses.Done(SbcCommands.WriteProtected(request, unit));
        }
        var data = request.DataOut.Span;
        if (listLength < 8 || data.Length < listLength)
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
        }
        data = data[..listLength];
        int dataLength = BinaryPrimitives.ReadUInt16BigEndian(data);
        int descriptorLength = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
        if (dataLength + 2 > listLength)
        {
            return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 0));
        }
        if (descriptorLength + 8 > listLength)
        {
            return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 2));
        }
        // A trailing partial descriptor is ignored (SBC-3 5.28).
        int count = descriptorLength / 16;
        if (count > LogicalUnit.MaxUnmapDescriptors)
        {
            return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 2));
        }
        // Validate every descriptor before deallocating anything.
        for (int i = 0; i < count; i++)
        {
            var d = data.Slice(8 + (16 * i), 16);
            ulong lba = BinaryPrimitives.ReadUInt64BigEndian(d);
            uint blocks = BinaryPrimitives.ReadUInt32BigEndian(d[8..]);
            if (blocks > unit.MaxUnmapBlocks)
            {
                return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 8 + (16 * i) + 8));
            }
            if (!SbcCommands.InRange(unit, lba, blocks))
            {
                return Responses.Done(Responses.LbaOutOfRange(request, unit));
            }
        }
        return UnmapCore(target, unit, request, count, listLength, cancellationToken);
    }

    private static async ValueTask<ScsiResponse> UnmapCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, int count, int listLength, CancellationToken cancellationToken)
    {
        for (int i = 0; i < count; i++)
        {
            var d = request.DataOut.Span.Slice(8 + (16 * i), 16);
            ulong lba = BinaryPrimitives.ReadUInt64BigEndian(d);
            uint blocks = BinaryPrimitives.ReadUInt32BigEndian(d[8..]);
            if (blocks == 0)
            {
                continue;
            }
            using var range = await unit.Ranges.EnterSharedAsync(lba, blocks, cancellationToken).ConfigureAwait(false);
            try
            {
                await unit.Device.UnmapAsync((long)lba * unit.BlockSize, (long)blocks * unit.BlockSize, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "UNMAP", ex);
                return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
            }
        }
        return Responses.Good(0, listLength);
    }

    // ---- WRITE SAME(10) (SBC-3 5.42) / WRITE SAME(16) (SBC-3 5.43, NDOB from SBC-4) -------
    //  (10) byte 1: WRPROTECT(7:5) ANCHOR(4) UNMAP(3)   bytes 2-5 LBA   bytes 7-8 NUMBER OF LBs
    //  (16) byte 1: WRPROTECT(7:5) ANCHOR(4) UNMAP(3) NDOB(0)   bytes 2-9 LBA   bytes 10-13 NUMBER

    public static ValueTask<ScsiResponse> WriteSame(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        bool sixteen = cdb[0] == 0x93;
        ulong lba = sixteen ? BinaryPrimitives.ReadUInt64BigEndian(cdb[2..]) : BinaryPrimitives.ReadUInt32BigEndian(cdb[2..]);
        uint number = sixteen ? BinaryPrimitives.ReadUInt32BigEndian(cdb[10..]) : BinaryPrimitives.ReadUInt16BigEndian(cdb[7..]);
        int lengthByte = sixteen ? 10 : 7;
        bool unmap = (cdb[1] & 0x08) != 0;
        bool ndob = sixteen && (cdb[1] & 0x01) != 0;
        if ((cdb[1] & 0xE0) != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 7)); // no protection information
        }
        ulong capacity = (ulong)unit.BlockCount;
        if (lba > capacity)
        {
            return Responses.Done(Responses.LbaOutOfRange(request, unit));
        }
        // WSNZ=0: zero blocks means from LBA to the end of the medium (SBC-3 5.42).
        ulong blocks = number == 0 ? capacity - lba : number;
        if (blocks > unit.MaxWriteSameBlocks)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, lengthByte));
        }
        if (!SbcCommands.InRange(unit, lba, blocks))
        {
            return Responses.Done(Responses.LbaOutOfRange(request, unit));
        }
        if (unit.WriteProtected)
        {
            return Responses.Done(SbcCommands.WriteProtected(request, unit));
        }
        long expected = ndob ? 0 : unit.BlockSize;
        if (!ndob && request.DataOut.Length < unit.BlockSize)
        {
            // The single logical block of data is missing: nothing can be written.
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
        }
        if (blocks == 0)
        {
            return Responses.Done(Responses.Good(0, expected));
        }
        bool zeros = ndob || !request.DataOut.Span[..unit.BlockSize].ContainsAnyExcept((byte)0);
        // UNMAP=1 on a thin LU (LBPWS/LBPWS10=1) is an unmap request for the range
        // (SBC-3 4.7.3.4, 5.45, 5.46): the blocks are deallocated whatever the Data-Out block
        // holds, and then read back as LBPRZ=1 says: zeros. Only a fully provisioned LU, where
        // UNMAP=1 is ignored, writes the data.
        bool deallocate = unmap && unit.ThinProvisioned;
        return WriteSameCore(target, unit, request, lba, blocks, deallocate, zeros, expected, cancellationToken);
    }

    private static async ValueTask<ScsiResponse> WriteSameCore(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, ulong lba, ulong blocks, bool deallocate, bool zeros, long expected, CancellationToken cancellationToken)
    {
        int bs = unit.BlockSize;
        long offset = (long)lba * bs;
        long total = (long)blocks * bs;
        using var range = await unit.Ranges.EnterSharedAsync(lba, blocks, cancellationToken).ConfigureAwait(false);
        if (deallocate)
        {
            try
            {
                await unit.Device.UnmapAsync(offset, total, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "WRITE SAME", ex);
                return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
            }
            return Responses.Good(0, expected);
        }
        int chunk = (int)Math.Min(total, FillChunk);
        chunk -= chunk % bs;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(chunk);
        try
        {
            var pattern = buffer.AsSpan(0, chunk);
            if (zeros)
            {
                pattern.Clear();
            }
            else
            {
                var block = request.DataOut.Span[..bs];
                for (int p = 0; p < chunk; p += bs)
                {
                    block.CopyTo(pattern[p..]);
                }
            }
            bool fua = !unit.WriteCacheEnabled;
            for (long done = 0; done < total;)
            {
                int n = (int)Math.Min(chunk, total - done);
                await unit.Device.WriteAsync(offset + done, buffer.AsMemory(0, n), fua, cancellationToken).ConfigureAwait(false);
                done += n;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "WRITE SAME", ex);
            return Responses.Check(request, unit, SenseKey.MediumError, Asc.WriteError);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return Responses.Good(0, expected);
    }

    // ---- GET LBA STATUS (SBC-3 5.4; SERVICE ACTION IN(16) 9Eh/12h) ---------------------
    //  bytes 2-9 STARTING LOGICAL BLOCK ADDRESS   bytes 10-13 ALLOCATION LENGTH
    //  Parameter data: 0-3 PARAMETER DATA LENGTH (n-3), then 16-byte LBA status descriptors:
    //  0-7 LBA, 8-11 NUMBER OF LOGICAL BLOCKS, 12 PROVISIONING STATUS (0 mapped, 1 deallocated).

    public static ValueTask<ScsiResponse> GetLbaStatus(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        ulong lba = BinaryPrimitives.ReadUInt64BigEndian(cdb[2..]);
        uint alloc = BinaryPrimitives.ReadUInt32BigEndian(cdb[10..]);
        if (lba >= (ulong)unit.BlockCount)
        {
            return Responses.Done(Responses.LbaOutOfRange(request, unit));
        }
        int room = (int)Math.Min(Math.Min(alloc, (uint)request.DataIn.Length), int.MaxValue);
        int maxDescriptors = Math.Clamp((room - 8) / 16, 1, MaxLbaStatusDescriptors);
        if (unit.Device is not IAllocationMap map || !unit.ThinProvisioned)
        {
            // Without an allocation map every block is mapped (fully provisioned view).
            return Responses.Done(Emit(request, lba, [((ulong)unit.BlockCount - lba, true)], alloc));
        }
        return GetLbaStatusCore(target, unit, map, request, lba, alloc, maxDescriptors, cancellationToken);
    }

    private static async ValueTask<ScsiResponse> GetLbaStatusCore(ScsiTargetDevice target, LogicalUnit unit, IAllocationMap map, ScsiRequest request, ulong lba, uint alloc, int maxDescriptors, CancellationToken cancellationToken)
    {
        int bs = unit.BlockSize;
        // Look at a bounded window; the initiator asks again from where the answer ends.
        ulong window = Math.Min((ulong)unit.BlockCount - lba, Math.Max(unit.UnmapGranularityBlocks, 1u) * 4096UL);
        IReadOnlyList<(long Offset, long Length, bool Mapped)> extents;
        try
        {
            extents = await map.GetAllocationAsync((long)lba * bs, (long)window * bs, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "GET LBA STATUS", ex);
            return Responses.Check(request, unit, SenseKey.MediumError, Asc.UnrecoveredReadError);
        }
        // Byte extents to block runs. A block any part of which is mapped counts as mapped,
        // so a deallocated extent is shrunk to the whole blocks inside it.
        var runs = new List<(ulong Blocks, bool Mapped)>();
        ulong cursor = lba;
        ulong end = lba + window;
        foreach (var (offset, length, mapped) in extents)
        {
            long stop = offset + length;
            ulong blockEnd = mapped ? (ulong)((stop + bs - 1) / bs) : (ulong)(stop / bs);
            blockEnd = Math.Min(blockEnd, end);
            if (blockEnd <= cursor)
            {
                continue;
            }
            ulong n = blockEnd - cursor;
            if (runs.Count > 0 && runs[^1].Mapped == mapped)
            {
                runs[^1] = (runs[^1].Blocks + n, mapped);
            }
            else
            {
                if (runs.Count == maxDescriptors)
                {
                    break;
                }
                runs.Add((n, mapped));
            }
            cursor = blockEnd;
        }
        if (runs.Count == 0)
        {
            runs.Add((window, true));
        }
        return Emit(request, lba, runs, alloc);
    }

    private static ScsiResponse Emit(ScsiRequest request, ulong lba, List<(ulong Blocks, bool Mapped)> runs, uint alloc)
    {
        var dest = request.DataIn.Span;
        int total = 8 + (16 * runs.Count);
        int limit = (int)Math.Min(Math.Min(alloc, (uint)dest.Length), (uint)total);
        Span<byte> b = stackalloc byte[16];
        b.Clear();
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)(total - 4));
        Put(dest, 0, b[..8], limit);
        int p = 8;
        foreach (var (blocks, mapped) in runs)
        {
            b.Clear();
            BinaryPrimitives.WriteUInt64BigEndian(b, lba);
            BinaryPrimitives.WriteUInt32BigEndian(b[8..], (uint)Math.Min(blocks, uint.MaxValue));
            b[12] = (byte)(mapped ? 0 : 1);
            Put(dest, p, b, limit);
            p += 16;
            lba += blocks;
        }
        return Responses.Good(limit, -1);
    }

    private static void Put(Span<byte> dest, int offset, ReadOnlySpan<byte> src, int limit)
    {
        int n = Math.Min(src.Length, limit - offset);
        if (n > 0)
        {
            src[..n].CopyTo(dest[offset..]);
        }
    }
}
