using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>
/// SANITIZE (SBC-3 5.27, opcode 48h): OVERWRITE with an initialization pattern, BLOCK ERASE
/// (thin LUs only: the whole medium is deallocated and reads as zeros), EXIT FAILURE MODE.
/// CRYPTOGRAPHIC ERASE is not supported (no service action, so INVALID FIELD IN CDB).
/// While a sanitize runs every command except INQUIRY, REPORT LUNS and REQUEST SENSE gets
/// NOT READY, LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS (04h/1Bh); the operation goes on
/// through task management and nexus loss. A failed sanitize leaves the LU in sanitize failure
/// mode (medium access gets MEDIUM ERROR, SANITIZE COMMAND FAILED 31h/03h) until a later
/// sanitize succeeds or EXIT FAILURE MODE is received.
/// </summary>
internal static class SanitizeCommands
{
    public const byte Opcode = 0x48;
    public const int Overwrite = 0x01;
    public const int BlockErase = 0x02;
    public const int ExitFailureMode = 0x1F;

    //  byte 1: IMMED(7) AUSE(5) SERVICE ACTION(4:0)   bytes 7-8 PARAMETER LIST LENGTH
    //  OVERWRITE parameter list: 0 INVERT(7) TEST(6:5) OVERWRITE COUNT(4:0)
    //    2-3 INITIALIZATION PATTERN LENGTH   4.. INITIALIZATION PATTERN

    public static ValueTask<ScsiResponse> Sanitize(ScsiTargetDevice target, LogicalUnit? lu, NexusState? nexus, ScsiRequest request, CancellationToken cancellationToken)
    {
        var unit = lu!;
        var cdb = request.Cdb.Span;
        bool immed = (cdb[1] & 0x80) != 0;
        int sa = cdb[1] & 0x1F;
        int listLength = BinaryPrimitives.ReadUInt16BigEndian(cdb[7..]);
        byte[]? pattern = null;
        bool invert = false;
        int passes = 1;
        if (sa == Overwrite)
        {
            int bs = unit.BlockSize;
            if (listLength < 5 || listLength > bs + 4)
            {
                return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 7));
            }
            var data = request.DataOut.Span;
            if (data.Length < listLength)
            {
                return Responses.Done(Responses.Check(request, unit, SenseKey.IllegalRequest, Asc.ParameterListLengthError));
            }
            passes = data[0] & 0x1F;
            int patternLength = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
            // libiscsi's Sanitize suite expects INVALID FIELD IN CDB for a zero OVERWRITE COUNT
            // and for a pattern length that is zero, too long or disagrees with the list length.
            if (passes == 0 || (data[0] & 0x60) != 0 || patternLength == 0 || patternLength > bs || patternLength + 4 != listLength)
            {
                return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 7));
            }
            invert = (data[0] & 0x80) != 0;
            pattern = data.Slice(4, patternLength).ToArray();
        }
        else if (listLength != 0)
        {
            // BLOCK ERASE and EXIT FAILURE MODE take no parameter list.
            return Responses.Done(Responses.InvalidFieldInCdb(request, unit, 7));
        }

        if (sa == ExitFailureMode)
        {
            unit.SanitizeFailed = false;
            return Responses.Done(Responses.Good(0, 0));
        }
        if (unit.WriteProtected)
        {
            return Responses.Done(SbcCommands.WriteProtected(request, unit));
        }
        if (!unit.TryBeginBackgroundOperation(Asc.LogicalUnitNotReadySanitizeInProgress))
        {
            return Responses.Done(Responses.Check(request, unit, SenseKey.NotReady, unit.BackgroundOperation));
        }
        // The operation is not the task's: aborts and resets do not stop it (SBC-3 4.11.3).
        var work = Task.Run(() => RunAsync(target, unit, pattern, invert, passes));
        if (immed)
        {
            return Responses.Done(Responses.Good(0, listLength));
        }
        return Wait();

        async ValueTask<ScsiResponse> Wait()
        {
            bool ok = await work.WaitAsync(cancellationToken).ConfigureAwait(false);
            return ok ? Responses.Good(0, listLength) : Responses.Check(request, unit, SenseKey.MediumError, Asc.SanitizeCommandFailed);
        }
    }

    private static async Task<bool> RunAsync(ScsiTargetDevice target, LogicalUnit unit, byte[]? pattern, bool invert, int passes)
    {
        try
        {
            if (pattern is null)
            {
                await FormatCommands.FillAsync(unit, null, CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                byte[] inverted = new byte[pattern.Length];
                for (int i = 0; i < pattern.Length; i++)
                {
                    inverted[i] = (byte)~pattern[i];
                }
                for (int pass = 1; pass <= passes; pass++)
                {
                    // INVERT: the pattern is inverted between passes; the last pass writes it as given.
                    bool useInverted = invert && ((passes - pass) % 2) == 1;
                    await FormatCommands.FillAsync(unit, useInverted ? inverted : pattern, CancellationToken.None).ConfigureAwait(false);
                }
            }
            await unit.Device.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            unit.SanitizeFailed = false;
            return true;
        }
        catch (Exception ex)
        {
            Log.BackendFailure(target.Logger, target.TargetName, unit.Lun, "SANITIZE", ex);
            unit.SanitizeFailed = true;
            return false;
        }
        finally
        {
            unit.EndBackgroundOperation();
        }
    }
}
