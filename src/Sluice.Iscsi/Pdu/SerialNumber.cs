namespace Sluice.Iscsi.Pdu;

/// <summary>
/// 32-bit serial number arithmetic (RFC 1982) used for CmdSN, StatSN, DataSN and R2TSN
/// comparisons (RFC 7143 §4.2.2.1).
/// </summary>
public static class SerialNumber
{
    /// <summary>True when <paramref name="a"/> is before <paramref name="b"/>.</summary>
    public static bool LessThan(uint a, uint b) => a != b && (int)(a - b) < 0;

    public static bool LessOrEqual(uint a, uint b) => a == b || (int)(a - b) < 0;

    public static bool GreaterThan(uint a, uint b) => LessThan(b, a);

    /// <summary>True when <paramref name="value"/> lies in the window [low, high].</summary>
    public static bool InWindow(uint value, uint low, uint high) => LessOrEqual(low, value) && LessOrEqual(value, high);
}
