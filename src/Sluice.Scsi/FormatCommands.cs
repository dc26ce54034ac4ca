using System.Buffers;
using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>
/// FORMAT UNIT (SBC-3 5.3) and the whole-medium fill shared with SANITIZE. A format
/// initialises every logical block to zeros: a thin LU deallocates the whole medium (LBPRZ=1),
/// a fully provisioned one is written with zeros.
/// </summary>
internal static class FormatCommands
{
    private const int FillChunk = 1024 * 1024;

    //  byte 1: FMTPINFO(7:6) LONGLIST(5) FMTDATA(4) CMPLST(3) DEFECT LIST FORMAT(2:0)
    //  Parameter list header, short (LONGLIST=0): 0 PROTECTION FIELD USAGE(2:0)
    //    1 FOV(7) DPRY(6) DCRT(5) STPF(4) IP(3) IMMED(1)   2-3 DEFECT LIST LENGTH
    //  long (LONGLIST=1): 0, 1 as above   3 P_I_INFORMATION / PROTECTION INTERVAL EXPONENT
    //    4-7 DEFECT LIST LENGTH

    public static ValueTask<ScsiResponse> FormatUnit(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        if ((cdb[1] & 0xC0) != 0)
        {
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 1, 7)); // no protection information
        }
        bool fmtData = (cdb[1] & 0x10) != 0;
        bool longList = (cdb[1] & 0x20) != 0;
        long transfer = 0;
        if (fmtData)
        {
            int headerLength = longList ? 8 : 4;
            var data = request.DataOut.Span;
            if (data.Length < headerLength)
            {
                return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
            }
            if ((data[0] & 0x07) != 0)
            {
                return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 0, 2)); // PROTECTION FIELD USAGE
            }
            if ((data[1] & 0x08) != 0)
            {
                return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 1, 3)); // IP: no initialization pattern
            }
            if (longList && data[3] != 0)
            {
                return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, 3, 7));
            }
            long defectListLength = longList ? BinaryPrimitives.ReadUInt32BigEndian(data[4..]) : BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
            if (defectListLength != 0)
            {
                // There is no defect management on a virtual medium: a supplied list is refused.
                return Responses.Done(Responses.InvalidFieldInParameterList(request, unit, longList ? 4 : 2));
            }
            transfer = headerLength;
        }
        if (unit.WriteProtected)
        {
            return Responses.Done(SbcCommands.WriteProtected(request, unit));
        }
        if (!unit.TryBeginBackgroundOperation(Asc.LogicalUnitNotReadyFormatInProgress))
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.NotReady, unit.BackgroundOperation));
        }
        return Core();

        async ValueTask<ScsiResponse> Core()
        {
            try
            {
                await FillAsync(unit, null, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "FORMAT UNIT", ex);
                return Responses.Check(request, unit, SenseKey.MediumError, Asc.FormatCommandFailed);
            }
            finally
            {
                unit.EndBackgroundOperation();
            }
            return Responses.Good(0, transfer);
        }
    }

    /// <summary>
    /// Writes <paramref name="pattern"/> (repeated, restarting at each block) to every block,
    /// or zeros when it is null; zeros on a thin LU deallocate instead.
    /// </summary>
    internal static async ValueTask FillAsync(LogicalUnit unit, byte[]? pattern, CancellationToken cancellationToken)
    {
        int bs = unit.BlockSize;
        ulong blocks = (ulong)unit.BlockCount;
        long total = unit.BlockCount * bs;
        using var range = await unit.Ranges.EnterExclusiveAsync(0, blocks, cancellationToken).ConfigureAwait(false);
        if (pattern is null && unit.ThinProvisioned)
        {
            await unit.Device.UnmapAsync(0, total, cancellationToken).ConfigureAwait(false);
            return;
        }
        int chunk = (int)Math.Min(total, FillChunk);
        chunk -= chunk % bs;
        if (chunk == 0)
        {
            return;
        }
        byte[] buffer = ArrayPool<byte>.Shared.Rent(chunk);
        try
        {
            var fill = buffer.AsSpan(0, chunk);
            fill.Clear();
            if (pattern is not null)
            {
                for (int block = 0; block < chunk; block += bs)
                {
                    for (int p = 0; p < bs; p += pattern.Length)
                    {
                        pattern.AsSpan(0, Math.Min(pattern.Length, bs - p)).CopyTo(fill[(block + p)..]);
                    }
                }
            }
            for (long done = 0; done < total;)
            {
                int n = (int)Math.Min(chunk, total - done);
                await unit.Device.WriteAsync(done, buffer.AsMemory(0, n), forceUnitAccess: true, cancellationToken).ConfigureAwait(false);
                done += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
