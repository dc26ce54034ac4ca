namespace Sluice.Scsi;

/// <summary>Builds command outcomes; CHECK CONDITION responses carry sense in the request's buffer.</summary>
internal static class Responses
{
    public static ScsiResponse Good(int dataInLength, long transferLength) =>
        new(ScsiStatus.Good, dataInLength, 0, transferLength);

    public static ScsiResponse Check(ScsiRequest request, LogicalUnit? lu, byte key, ushort ascAscq) =>
        Check(request, lu?.DescriptorSense ?? false, key, ascAscq, FieldPointer.None);

    public static ScsiResponse Check(ScsiRequest request, bool descriptor, byte key, ushort ascAscq, FieldPointer pointer, bool hasInformation = false, ulong information = 0)
    {
        int n = SenseBuilder.Write(request.Sense.Span, descriptor, key, ascAscq, pointer, hasInformation, information);
        return new ScsiResponse(ScsiStatus.CheckCondition, 0, n, -1);
    }

    /// <summary>ILLEGAL REQUEST, INVALID FIELD IN CDB with C/D=1 and the field pointer (SPC-4 4.5.2.4.2).</summary>
    public static ScsiResponse InvalidFieldInCdb(ScsiRequest request, LogicalUnit? lu, int byteIndex, int bitIndex = -1) =>
        Check(request, lu?.DescriptorSense ?? false, SenseKey.IllegalRequest, Asc.InvalidFieldInCdb, new FieldPointer(byteIndex, bitIndex, true));

    /// <summary>ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST with C/D=0.</summary>
    public static ScsiResponse InvalidFieldInParameterList(ScsiRequest request, LogicalUnit? lu, int byteIndex, int bitIndex = -1) =>
        Check(request, lu?.DescriptorSense ?? false, SenseKey.IllegalRequest, Asc.InvalidFieldInParameterList, new FieldPointer(byteIndex, bitIndex, false));

    public static ScsiResponse LbaOutOfRange(ScsiRequest request, LogicalUnit lu) =>
        Check(request, lu, SenseKey.IllegalRequest, Asc.LbaOutOfRange);

    public static ValueTask<ScsiResponse> Done(ScsiResponse response) => new(response);
}
