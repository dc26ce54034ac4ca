using System.Buffers;
using System.Buffers.Binary;
using Sluice.Storage;

namespace Sluice.Scsi;

/// <summary>
/// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18): the LU that receives the
/// command is the copy manager; it moves blocks between LUs it can resolve by NAA designator
/// (its own target's, and others' through <see cref="ICopyTargetResolver"/>) device to device,
/// without any data crossing the transport.
/// </summary>
internal static class ExtendedCopyCommands
{
    public const byte ExtendedCopyOpcode = 0x83;
    public const byte ReceiveCopyResultsOpcode = 0x84;
    public const byte CopyStatus = 0x00;
    public const byte OperatingParameters = 0x03;
    public const byte FailedSegmentDetails = 0x04;

    private const int HeaderLength = 16;
    private const int ChunkBytes = 1024 * 1024;

    // Reservation rules of the I/O the copy manager does on a CSCD: READ(16) on a copy
    // source, WRITE(16) on a copy destination (SPC-4 5.12.1 Table 46).
    private static readonly byte[] Read16 = [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly byte[] Write16 = [0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    // ---- EXTENDED COPY(LID1) (SPC-4 6.4; opcode 83h, service action 00h) ---------------------
    //  CDB bytes 10-13: PARAMETER LIST LENGTH.
    //  Parameter list header (SPC-4 6.4.3): 0 LIST IDENTIFIER  1 STR(5) LIST ID USAGE(4:3)
    //  PRIORITY(2:0)  2-3 CSCD DESCRIPTOR LIST LENGTH  8-11 SEGMENT DESCRIPTOR LIST LENGTH
    //  12-15 INLINE DATA LENGTH, then the CSCD descriptors, segment descriptors, inline data.

    public static ValueTask<ScsiResponse> ExtendedCopy(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        uint listLength = BinaryPrimitives.ReadUInt32BigEndian(cdb[10..]);
        if (listLength == 0)
        {
            // SPC-4 6.4.1: a zero PARAMETER LIST LENGTH is not an error; nothing is copied.
            return Responses.Done(Responses.Good(0, 0));
        }
        var data = request.DataOut.Span;
        if (listLength < HeaderLength || (uint)data.Length < listLength)
        {
            return Responses.Done(ParameterListLengthError(request, unit));
        }
        data = data[..(int)listLength];
        var parsed = Validate(request, unit, data, out var failure);
        if (parsed is null)
        {
            return Responses.Done(failure);
        }
        var p = parsed.Value;
        if (p.Segments == 0)
        {
            return Responses.Done(Responses.Good(0, listLength));
        }
        if (!unit.Copies.TryBegin(CopyLimits.MaxConcurrentCopies))
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.InsufficientResources));
        }
        CopyRecord? record = null;
        if (p.Usage != 3)
        {
            record = new CopyRecord(p.ListId, holdDetails: p.Usage == 0);
            if (!unit.Copies.TryAdd(request.Nexus, record))
            {
                unit.Copies.End();
                // SPC-4 6.4.3: the list identifier of a copy that is still running.
                return Responses.Done(Responses.Check(request, unit.DescriptorSense, SenseKey.IllegalRequest, Asc.OperationInProgress, new FieldPointer(0, -1, false)));
            }
        }
        return RunAsync(target, unit, request, record, p, listLength, cancellationToken);
    }

    internal readonly record struct ParameterList(byte ListId, int Usage, int CscdCount, int Segments, int SegmentOffset);

    /// <summary>
    /// Every check SPC-4 6.4 makes before data moves: lengths, limits, descriptor type codes and
    /// fields. Failures are ILLEGAL REQUEST with a field pointer into the parameter list.
    /// </summary>
    internal static ParameterList? Validate(ScsiRequest request, LogicalUnit unit, ReadOnlySpan<byte> data, out ScsiResponse failure)
    {
        failure = default;
        byte listId = data[0];
        int usage = (data[1] >> 3) & 0x03;
        if ((data[1] & 0xC0) != 0)
        {
            failure = InvalidField(request, unit, 1, 31 - int.LeadingZeroCount(data[1] & 0xC0));
            return null;
        }
        if (usage == 1)
        {
            failure = InvalidField(request, unit, 1, 4); // LIST ID USAGE 01b is reserved
            return null;
        }
        if (usage == 3 && listId != 0)
        {
            failure = InvalidField(request, unit, 0); // 11b: no list identifier, so it must be zero
            return null;
        }
        for (int i = 4; i < 8; i++)
        {
            if (data[i] != 0)
            {
                failure = InvalidField(request, unit, i);
                return null;
            }
        }
        int cscdLength = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
        uint segmentLength = BinaryPrimitives.ReadUInt32BigEndian(data[8..]);
        uint inlineLength = BinaryPrimitives.ReadUInt32BigEndian(data[12..]);
        if (cscdLength + (long)segmentLength > CopyLimits.MaxDescriptorListLength)
        {
            // SPC-4 6.4.3: the descriptor lists exceed MAXIMUM DESCRIPTOR LIST LENGTH.
            failure = ParameterListLengthError(request, unit);
            return null;
        }
        if (inlineLength > CopyLimits.MaxInlineData)
        {
            failure = Responses.Check(request, unit.DescriptorSense, SenseKey.IllegalRequest, Asc.InlineDataLengthExceeded, new FieldPointer(12, -1, false));
            return null;
        }
        if (HeaderLength + cscdLength + (long)segmentLength + inlineLength > data.Length)
        {
            failure = ParameterListLengthError(request, unit);
            return null;
        }
        if (cscdLength % CopyLimits.CscdDescriptorLength != 0)
        {
            failure = InvalidField(request, unit, 2);
            return null;
        }
        int cscdCount = cscdLength / CopyLimits.CscdDescriptorLength;
        if (cscdCount > CopyLimits.MaxCscdDescriptors)
        {
            failure = Responses.Check(request, unit.DescriptorSense, SenseKey.IllegalRequest, Asc.TooManyTargetDescriptors, new FieldPointer(2, -1, false));
            return null;
        }
        for (int i = 0; i < cscdCount; i++)
        {
            int off = HeaderLength + (i * CopyLimits.CscdDescriptorLength);
            if (data[off] != CopyLimits.CscdIdentification)
            {
                failure = Responses.Check(request, unit.DescriptorSense, SenseKey.IllegalRequest, Asc.UnsupportedTargetDescriptorTypeCode, new FieldPointer(off, -1, false));
                return null;
            }
            // LU ID TYPE (byte 1 bits 7:6) only applies to CSCD descriptors with a LU
            // IDENTIFIER field, which an identification descriptor has not: it is ignored
            // (SPC-4 6.4.5.1), as is the NUL bit (bit 5), obsolete since SPC-4.
        }
        int segmentOffset = HeaderLength + cscdLength;
        int end = segmentOffset + (int)segmentLength;
        int segments = 0;
        for (int off = segmentOffset; off < end;)
        {
            if (end - off < 4)
            {
                failure = ParameterListLengthError(request, unit);
                return null;
            }
            if (++segments > CopyLimits.MaxSegmentDescriptors)
            {
                failure = Responses.Check(request, unit.DescriptorSense, SenseKey.IllegalRequest, Asc.TooManySegmentDescriptors, new FieldPointer(8, -1, false));
                return null;
            }
            if (data[off] != CopyLimits.BlockToBlock)
            {
                failure = Responses.Check(request, unit.DescriptorSense, SenseKey.IllegalRequest, Asc.UnsupportedSegmentDescriptorTypeCode, new FieldPointer(off, -1, false));
                return null;
            }
            int length = BinaryPrimitives.ReadUInt16BigEndian(data[(off + 2)..]) + 4;
            if (length != CopyLimits.BlockToBlockLength)
            {
                failure = InvalidField(request, unit, off + 2);
                return null;
            }
            if (off + length > end)
            {
                failure = ParameterListLengthError(request, unit);
                return null;
            }
            // Byte 1: DC (bit 1) and CAT (bit 0); bytes 8-9 reserved (SPC-4 6.4.6.5).
            if ((data[off + 1] & 0xFC) != 0)
            {
                failure = InvalidField(request, unit, off + 1, 31 - int.LeadingZeroCount(data[off + 1] & 0xFC));
                return null;
            }
            if (data[off + 8] != 0 || data[off + 9] != 0)
            {
                failure = InvalidField(request, unit, data[off + 8] != 0 ? off + 8 : off + 9);
                return null;
            }
            off += length;
        }
        return new ParameterList(listId, usage, cscdCount, segments, segmentOffset);
    }

    private readonly record struct Segment(int Index, int Offset, bool Dc, int SourceIndex, int DestinationIndex, ushort Blocks, ulong SourceLba, ulong DestinationLba);

    private static async ValueTask<ScsiResponse> RunAsync(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, CopyRecord? record, ParameterList p, uint listLength, CancellationToken cancellationToken)
    {
        byte[]? buffer = null;
        try
        {
            var resolved = new CopyTarget?[p.CscdCount];
            for (int i = 0; i < p.Segments; i++)
            {
                int off = p.SegmentOffset + (i * CopyLimits.BlockToBlockLength);
                var s = request.DataOut.Span.Slice(off, CopyLimits.BlockToBlockLength);
                var segment = new Segment(i, off, (s[1] & 0x02) != 0,
                    BinaryPrimitives.ReadUInt16BigEndian(s[4..]), BinaryPrimitives.ReadUInt16BigEndian(s[6..]),
                    BinaryPrimitives.ReadUInt16BigEndian(s[10..]),
                    BinaryPrimitives.ReadUInt64BigEndian(s[12..]), BinaryPrimitives.ReadUInt64BigEndian(s[20..]));
                var failed = await CopySegmentAsync(target, unit, request, record, segment, p.CscdCount, resolved, buffer ??= ArrayPool<byte>.Shared.Rent(ChunkBytes), cancellationToken).ConfigureAwait(false);
                if (failed is { } response)
                {
                    record?.Complete(response.Status, request.Sense.Span[..response.SenseLength]);
                    return response;
                }
                record?.SegmentDone();
            }
            record?.Complete(ScsiStatus.Good, []);
            return Responses.Good(0, listLength);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // ABORT TASK, a reset or I_T nexus loss: the copy stops at the next chunk.
            record?.Complete(ScsiStatus.TaskAborted, []);
            throw;
        }
        catch
        {
            record?.Complete(ScsiStatus.CheckCondition, []);
            throw;
        }
        finally
        {
            unit.Copies.End();
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>One block → block segment (SPC-4 6.4.6.5). Returns the failure, or null when copied.</summary>
    private static async ValueTask<ScsiResponse?> CopySegmentAsync(ScsiTargetDevice target, LogicalUnit unit, ScsiRequest request, CopyRecord? record, Segment s, int cscdCount, CopyTarget?[] resolved, byte[] buffer, CancellationToken cancellationToken)
    {
        var source = Resolve(target, request, s.SourceIndex, cscdCount, resolved, out ushort asc);
        if (source is null)
        {
            return CopyAborted(request, unit, s, asc);
        }
        var destination = Resolve(target, request, s.DestinationIndex, cscdCount, resolved, out asc);
        if (destination is null)
        {
            return CopyAborted(request, unit, s, asc);
        }
        var src = source.Unit;
        var dst = destination.Unit;
        // DC=0: BLOCK DEVICE NUMBER OF BLOCKS counts copy source blocks; DC=1: destination blocks.
        long bytes = (long)s.Blocks * (s.Dc ? dst.BlockSize : src.BlockSize);
        if (bytes % src.BlockSize != 0 || bytes % dst.BlockSize != 0)
        {
            return CopyAborted(request, unit, s, Asc.UnexpectedInexactSegment);
        }
        ulong srcBlocks = (ulong)(bytes / src.BlockSize);
        ulong dstBlocks = (ulong)(bytes / dst.BlockSize);

        // Each CSCD is checked as the READ / WRITE the copy manager issues to it would be; a
        // failure is COPY ABORTED with that command's status and sense forwarded (SPC-4 4.5.2.?
        // forwarded sense data, 6.4.? errors detected by a CSCD).
        if (CheckDevice(src, source.Nexus, read: true, s.SourceLba, srcBlocks) is { } srcError)
        {
            return CopyAborted(request, unit, s, 0, CsdSource, srcError.Status, srcError.Key, srcError.Asc);
        }
        if (CheckDevice(dst, destination.Nexus, read: false, s.DestinationLba, dstBlocks) is { } dstError)
        {
            return CopyAborted(request, unit, s, 0, CsdDestination, dstError.Status, dstError.Key, dstError.Asc);
        }
        if (bytes == 0)
        {
            return null;
        }

        var srcIo = src.Device;
        var dstIo = dst.Device;
        int granule = Math.Max(src.BlockSize, dst.BlockSize);
        int chunk = (int)Math.Min(bytes, ChunkBytes - (ChunkBytes % granule));
        long srcBase = (long)s.SourceLba * src.BlockSize;
        long dstBase = (long)s.DestinationLba * dst.BlockSize;
        // Same LU and the destination overlaps the source further on: copy back to front, as
        // memmove does, so every block is read before it is overwritten.
        bool backwards = ReferenceEquals(src, dst) && dstBase > srcBase && dstBase < srcBase + bytes;
        long chunks = (bytes + chunk - 1) / chunk;
        bool fua = !dst.WriteCacheEnabled;
        for (long c = 0; c < chunks; c++)
        {
            long pos = (backwards ? chunks - 1 - c : c) * chunk;
            int n = (int)Math.Min(chunk, bytes - pos);
            var memory = buffer.AsMemory(0, n);
            ulong readLba = (ulong)((srcBase + pos) / src.BlockSize);
            ulong writeLba = (ulong)((dstBase + pos) / dst.BlockSize);
            try
            {
                // One range at a time (never both), so two copies in opposite directions
                // cannot deadlock behind exclusive holders (COMPARE AND WRITE).
                using (await src.Ranges.EnterSharedAsync(readLba, (ulong)(n / src.BlockSize), cancellationToken).ConfigureAwait(false))
                {
                    await srcIo.ReadAsync(srcBase + pos, memory, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BackendFailure(target.Logger, target.TargetName, src.Lun, "EXTENDED COPY (read)", ex);
                return CopyAborted(request, unit, s, 0, CsdSource, ScsiStatus.CheckCondition, SenseKey.MediumError, Asc.UnrecoveredReadError);
            }
            try
            {
                using (await dst.Ranges.EnterSharedAsync(writeLba, (ulong)(n / dst.BlockSize), cancellationToken).ConfigureAwait(false))
                {
                    await dstIo.WriteAsync(dstBase + pos, memory, fua, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BackendFailure(target.Logger, target.TargetName, dst.Lun, "EXTENDED COPY (write)", ex);
                return CopyAborted(request, unit, s, 0, CsdDestination, ScsiStatus.CheckCondition, SenseKey.MediumError, Asc.WriteError);
            }
            record?.AddBytes(n);
        }
        return null;
    }

    private readonly record struct DeviceError(byte Status, byte Key, ushort Asc);

    private static DeviceError? CheckDevice(LogicalUnit lu, ITNexus nexus, bool read, ulong lba, ulong blocks)
    {
        if (!lu.MediumPresent)
        {
            return new(ScsiStatus.CheckCondition, SenseKey.NotReady, Asc.MediumNotPresent);
        }
        if (lu.BackgroundOperation is ushort busy and not 0)
        {
            return new(ScsiStatus.CheckCondition, SenseKey.NotReady, busy);
        }
        if (lu.Reservations.Active && CommandTable.Lookup(read ? Read16 : Write16) is { } d && lu.Reservations.Conflicts(d, nexus, read ? Read16 : Write16))
        {
            return new(ScsiStatus.ReservationConflict, 0, 0);
        }
        if (!read && lu.WriteProtected)
        {
            return new(ScsiStatus.CheckCondition, SenseKey.DataProtect, lu.ReadOnly ? Asc.WriteProtected : Asc.SoftwareWriteProtected);
        }
        if (lba > (ulong)lu.BlockCount || blocks > (ulong)lu.BlockCount - lba)
        {
            return new(ScsiStatus.CheckCondition, SenseKey.IllegalRequest, Asc.LbaOutOfRange);
        }
        return null;
    }

    /// <summary>
    /// The CSCD an index names (SPC-4 6.4.5.6 identification descriptor): binary, LU-associated
    /// NAA designator, peripheral type 00h (block), disk block length equal to the LU's.
    /// </summary>
    private static CopyTarget? Resolve(ScsiTargetDevice target, ScsiRequest request, int index, int cscdCount, CopyTarget?[] resolved, out ushort asc)
    {
        asc = 0;
        if (index >= cscdCount)
        {
            asc = Asc.CopyTargetDeviceNotReachable;
            return null;
        }
        if (resolved[index] is { } known)
        {
            return known;
        }
        var d = request.DataOut.Span.Slice(HeaderLength + (index * CopyLimits.CscdDescriptorLength), CopyLimits.CscdDescriptorLength);
        if ((d[1] & 0x1F) != 0)
        {
            asc = Asc.IncorrectCopyTargetDeviceType;
            return null;
        }
        int codeSet = d[4] & 0x0F;
        int association = (d[5] >> 4) & 0x03;
        int type = d[5] & 0x0F;
        int length = d[7];
        if (codeSet != 1 || association != 0 || type != 3 || length != 16)
        {
            asc = Asc.CopyTargetDeviceNotReachable;
            return null;
        }
        var found = target.ResolveCopyTarget(d.Slice(8, length), request.Nexus);
        if (found is null)
        {
            asc = Asc.CopyTargetDeviceNotReachable;
            return null;
        }
        // Block device parameters (SPC-4 6.4.5.?): bytes 29-31 DISK BLOCK LENGTH.
        int blockLength = (d[29] << 16) | (d[30] << 8) | d[31];
        if (blockLength != found.Unit.BlockSize)
        {
            asc = Asc.IncorrectCopyTargetDeviceType;
            return null;
        }
        resolved[index] = found;
        return found;
    }

    private const int CsdNone = 0;
    private const int CsdSource = 1;
    private const int CsdDestination = 2;

    /// <summary>
    /// COPY ABORTED sense (SPC-4 6.4.? / 4.5.2.4.6): the COMMAND-SPECIFIC INFORMATION carries the
    /// number of the segment descriptor being processed (bytes 2-3) and, in fixed format, the
    /// offsets of forwarded copy source / destination sense data (bytes 0-1); the segment
    /// pointer (SD=1) names that segment descriptor. A CSCD's own status and sense, when there
    /// is one, follow as forwarded sense data.
    /// </summary>
    internal static ScsiResponse CopyAborted(ScsiRequest request, LogicalUnit unit, int segmentIndex, int segmentOffset, ushort asc,
        int forwardedFrom = CsdNone, byte forwardedStatus = 0, byte forwardedKey = 0, ushort forwardedAsc = 0)
    {
        Span<byte> s = stackalloc byte[96];
        s.Clear();
        bool descriptor = unit.DescriptorSense;
        bool hasForwardedSense = forwardedFrom != CsdNone && forwardedStatus == ScsiStatus.CheckCondition;
        int length;
        if (!descriptor)
        {
            s[0] = 0x70;
            s[2] = SenseKey.CopyAborted;
            BinaryPrimitives.WriteUInt16BigEndian(s[10..], (ushort)segmentIndex);
            s[12] = (byte)(asc >> 8);
            s[13] = (byte)asc;
            s[15] = 0x80 | 0x20; // SKSV, SD=1: the field pointer is relative to the segment descriptor
            length = SenseBuilder.FixedLength;
            if (hasForwardedSense)
            {
                s[forwardedFrom == CsdSource ? 8 : 9] = (byte)length;
                length += SenseBuilder.Write(s[length..], false, forwardedKey, forwardedAsc);
            }
            s[7] = (byte)(length - 8);
        }
        else
        {
            s[0] = 0x72;
            s[1] = SenseKey.CopyAborted;
            s[2] = (byte)(asc >> 8);
            s[3] = (byte)asc;
            int p = 8;
            // Command-specific information descriptor (SPC-4 4.5.2.3): type 01h, length 0Ah.
            s[p] = 0x01;
            s[p + 1] = 0x0A;
            BinaryPrimitives.WriteUInt16BigEndian(s[(p + 10)..], (ushort)segmentIndex);
            p += 12;
            // Sense key specific descriptor: segment pointer.
            s[p] = 0x02;
            s[p + 1] = 0x06;
            s[p + 4] = 0x80 | 0x20;
            p += 8;
            if (forwardedFrom != CsdNone)
            {
                // Forwarded sense data descriptor (SPC-4 4.5.2.?): type 0Ch, FSDT=0, SENSE DATA
                // SOURCE 1 (copy source) or 2 (copy destination), FORWARDED STATUS, sense data.
                s[p] = 0x0C;
                s[p + 2] = (byte)forwardedFrom;
                s[p + 3] = forwardedStatus;
                int n = hasForwardedSense ? SenseBuilder.Write(s[(p + 4)..], true, forwardedKey, forwardedAsc) : 0;
                s[p + 1] = (byte)(2 + n);
                p += 4 + n;
            }
            s[7] = (byte)(p - 8);
            length = p;
        }
        int count = Math.Min(length, request.Sense.Length);
        s[..count].CopyTo(request.Sense.Span);
        return new ScsiResponse(ScsiStatus.CheckCondition, 0, count, -1);
    }

    private static ScsiResponse CopyAborted(ScsiRequest request, LogicalUnit unit, Segment s, ushort asc,
        int forwardedFrom = CsdNone, byte forwardedStatus = 0, byte forwardedKey = 0, ushort forwardedAsc = 0) =>
        CopyAborted(request, unit, s.Index, s.Offset, asc, forwardedFrom, forwardedStatus, forwardedKey, forwardedAsc);

    private static ScsiResponse ParameterListLengthError(ScsiRequest request, LogicalUnit unit) =>
        Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError);

    private static ScsiResponse InvalidField(ScsiRequest request, LogicalUnit unit, int byteIndex, int bit = -1) =>
        Responses.InvalidFieldInParameterList(request, unit, byteIndex, bit);

    // ---- RECEIVE COPY RESULTS (SPC-4 6.18; opcode 84h) ---------------------------------------
    //  byte 1: SERVICE ACTION   byte 2: LIST IDENTIFIER   bytes 10-13: ALLOCATION LENGTH

    public static ValueTask<ScsiResponse> ReceiveCopyResults(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        int action = cdb[1] & 0x1F;
        byte listId = cdb[2];
        int alloc = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(cdb[10..]), int.MaxValue);
        Span<byte> b = stackalloc byte[320];
        b.Clear();
        int length;
        switch (action)
        {
            case OperatingParameters:
                length = OperatingParametersData(b, unit);
                break;
            case CopyStatus:
            {
                // SPC-4 6.18.2: an unknown list identifier is INVALID FIELD IN CDB.
                var record = unit.Copies.Find(request.Nexus, listId);
                if (record is null)
                {
                    return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 2));
                }
                //  0-3 AVAILABLE DATA (8)  4 HDD | COPY MANAGER STATUS  5-6 SEGMENTS PROCESSED
                //  7 TRANSFER COUNT UNITS  8-11 TRANSFER COUNT
                BinaryPrimitives.WriteUInt32BigEndian(b, 8);
                b[4] = record.State;
                BinaryPrimitives.WriteUInt16BigEndian(b[5..], (ushort)Math.Min(record.SegmentsProcessed, ushort.MaxValue));
                long count = record.BytesTransferred;
                byte units = 0;
                while (count > uint.MaxValue)
                {
                    count >>= 10; // 00h bytes, 01h KiB, 02h MiB, ...
                    units++;
                }
                b[7] = units;
                BinaryPrimitives.WriteUInt32BigEndian(b[8..], (uint)count);
                length = 12;
                break;
            }
            case FailedSegmentDetails:
            {
                var record = unit.Copies.Find(request.Nexus, listId);
                if (record is null || !record.HoldDetails)
                {
                    return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 2));
                }
                //  0-3 AVAILABLE DATA  56 COPY COMMAND STATUS  58-59 SENSE DATA LENGTH  60- SENSE DATA
                // A copy still running or completed without errors has no details (AVAILABLE DATA 0).
                if (record.State != CopyRecord.CompletedWithErrors)
                {
                    length = 4;
                    break;
                }
                var sense = record.Sense;
                BinaryPrimitives.WriteUInt32BigEndian(b, (uint)(60 + sense.Length - 4));
                b[56] = record.CommandStatus;
                BinaryPrimitives.WriteUInt16BigEndian(b[58..], (ushort)sense.Length);
                sense.CopyTo(b[60..]);
                length = 60 + sense.Length;
                break;
            }
            default:
                return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 4));
        }
        return Responses.Done(SpcCommands.CopyOut(request, b[..length], alloc));
    }

    /// <summary>OPERATING PARAMETERS (SPC-4 6.18.4): the same limits VPD page 8Fh reports.</summary>
    internal static int OperatingParametersData(Span<byte> b, LogicalUnit unit)
    {
        var implemented = CopyLimits.ImplementedDescriptors;
        int length = 44 + implemented.Length;
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)(length - 4));
        b[4] = 0x01; // SNLID: the LIST ID USAGE 11b (no list identifier) is supported
        BinaryPrimitives.WriteUInt16BigEndian(b[8..], CopyLimits.MaxCscdDescriptors);
        BinaryPrimitives.WriteUInt16BigEndian(b[10..], CopyLimits.MaxSegmentDescriptors);
        BinaryPrimitives.WriteUInt32BigEndian(b[12..], CopyLimits.MaxDescriptorListLength);
        BinaryPrimitives.WriteUInt32BigEndian(b[16..], CopyLimits.MaxSegmentLength(unit));
        BinaryPrimitives.WriteUInt32BigEndian(b[20..], CopyLimits.MaxInlineData);
        BinaryPrimitives.WriteUInt32BigEndian(b[24..], 0); // HELD DATA LIMIT: no RECEIVE DATA
        BinaryPrimitives.WriteUInt32BigEndian(b[28..], 0); // MAXIMUM STREAM DEVICE TRANSFER SIZE: no stream devices
        BinaryPrimitives.WriteUInt16BigEndian(b[34..], CopyLimits.MaxConcurrentCopies);
        b[36] = CopyLimits.MaxConcurrentCopies;
        b[37] = (byte)int.Log2(unit.BlockSize); // DATA SEGMENT GRANULARITY
        b[38] = 0; // INLINE DATA GRANULARITY
        b[39] = 0; // HELD DATA GRANULARITY
        b[43] = (byte)implemented.Length;
        implemented.CopyTo(b[44..]);
        return length;
    }

    /// <summary>
    /// Third-party copy VPD page (SPC-4 7.8.17), the descriptors after the 4-byte page header:
    /// supported commands, parameter data, supported descriptors, supported CSCD descriptor IDs
    /// and general copy operations.
    /// </summary>
    internal static int ThirdPartyCopyDescriptors(Span<byte> b, LogicalUnit unit)
    {
        int p = 0;

        // Supported Commands (0001h): 4 COMMANDS SUPPORTED LIST LENGTH, then per command
        // OPERATION CODE, SERVICE ACTIONS LIST LENGTH, SERVICE ACTIONS.
        ReadOnlySpan<byte> commands = [ExtendedCopyOpcode, 1, 0x00, ReceiveCopyResultsOpcode, 3, CopyStatus, OperatingParameters, FailedSegmentDetails];
        int body = 1 + commands.Length;
        int padded = (body + 3) & ~3;
        BinaryPrimitives.WriteUInt16BigEndian(b[p..], 0x0001);
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 2)..], (ushort)padded);
        b[p + 4] = (byte)commands.Length;
        commands.CopyTo(b[(p + 5)..]);
        p += 4 + padded;

        // Parameter Data (0008h), length 1Ch.
        BinaryPrimitives.WriteUInt16BigEndian(b[p..], 0x0008);
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 2)..], 0x1C);
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 8)..], CopyLimits.MaxCscdDescriptors);
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 10)..], CopyLimits.MaxSegmentDescriptors);
        BinaryPrimitives.WriteUInt32BigEndian(b[(p + 12)..], CopyLimits.MaxDescriptorListLength);
        BinaryPrimitives.WriteUInt32BigEndian(b[(p + 16)..], CopyLimits.MaxInlineData);
        p += 32;

        // Supported Descriptors (0009h): 4 SUPPORTED DESCRIPTOR LIST LENGTH, the type codes.
        var implemented = CopyLimits.ImplementedDescriptors;
        body = 1 + implemented.Length;
        padded = (body + 3) & ~3;
        BinaryPrimitives.WriteUInt16BigEndian(b[p..], 0x0009);
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 2)..], (ushort)padded);
        b[p + 4] = (byte)implemented.Length;
        implemented.CopyTo(b[(p + 5)..]);
        p += 4 + padded;

        // Supported CSCD Descriptor IDs (000Ah): none (CSCD descriptor IDs belong to LID4).
        BinaryPrimitives.WriteUInt16BigEndian(b[p..], 0x000A);
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 2)..], 4);
        p += 8;

        // General Copy Operations (8001h), length 20h.
        BinaryPrimitives.WriteUInt16BigEndian(b[p..], 0x8001);
        BinaryPrimitives.WriteUInt16BigEndian(b[(p + 2)..], 0x20);
        BinaryPrimitives.WriteUInt32BigEndian(b[(p + 4)..], CopyLimits.MaxConcurrentCopies); // TOTAL CONCURRENT COPIES
        BinaryPrimitives.WriteUInt32BigEndian(b[(p + 8)..], CopyLimits.MaxConcurrentCopies); // MAXIMUM IDENTIFIED CONCURRENT COPIES
        BinaryPrimitives.WriteUInt32BigEndian(b[(p + 12)..], CopyLimits.MaxSegmentLength(unit));
        b[p + 16] = (byte)int.Log2(unit.BlockSize); // DATA SEGMENT GRANULARITY
        b[p + 17] = 0; // INLINE DATA GRANULARITY
        p += 36;
        return p;
    }
}
