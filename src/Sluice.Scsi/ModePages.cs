using System.Buffers.Binary;

namespace Sluice.Scsi;

/// <summary>
/// The mode pages this device server implements: Caching (08h, SBC-3 6.4.5), Control (0Ah,
/// SPC-4 7.5.8) and Informational Exceptions Control (1Ch, SPC-4 7.5.11). Values are not
/// saved: PC=11b (saved) is answered with SAVING PARAMETERS NOT SUPPORTED.
/// </summary>
internal static class ModePages
{
    public const byte CachingCode = 0x08;
    public const byte ControlCode = 0x0A;
    public const byte IecCode = 0x1C;
    public const byte AllPages = 0x3F;

    public const int CachingLength = 20;
    public const int ControlLength = 12;
    public const int IecLength = 12;

    // Changeable-values masks (what MODE SENSE PC=01b reports and MODE SELECT may alter).
    private static ReadOnlySpan<byte> CachingChangeable => [CachingCode, CachingLength - 2, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private static ReadOnlySpan<byte> ControlChangeable => [ControlCode, ControlLength - 2, 0x04, 0, 0x08, 0, 0, 0, 0, 0, 0, 0];
    private static ReadOnlySpan<byte> IecChangeable => [IecCode, IecLength - 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    public static void InitDefaults(LogicalUnit lu)
    {
        WriteDefault(lu, CachingCode, lu.Caching);
        WriteDefault(lu, ControlCode, lu.Control);
        WriteDefault(lu, IecCode, lu.InformationalExceptions);
    }

    private static void WriteDefault(LogicalUnit lu, byte code, Span<byte> page)
    {
        page.Clear();
        page[0] = code;
        page[1] = (byte)(page.Length - 2);
        switch (code)
        {
            case CachingCode:
                // WCE per configuration; RCD=0 (read cache on).
                if (lu.Options.WriteCacheEnabled)
                {
                    page[2] = 0x04;
                }
                break;
            case ControlCode:
                // TST=000b (one task set), QUEUE ALGORITHM MODIFIER=1 (unrestricted reordering:
                // SIMPLE tasks run concurrently), D_SENSE=0 (fixed format by default), SWP=0,
                // BUSY TIMEOUT PERIOD unlimited.
                page[3] = 0x10;
                BinaryPrimitives.WriteUInt16BigEndian(page[8..], 0xFFFF);
                break;
            case IecCode:
                // DEXCPT=1: no informational exception reporting; MRIE=0.
                page[2] = 0x08;
                break;
        }
    }

    /// <summary>Returns the page bytes for a page control value (00b current, 01b changeable, 10b default).</summary>
    public static void Copy(LogicalUnit lu, byte code, int pageControl, Span<byte> destination)
    {
        switch (pageControl)
        {
            case 1:
                Changeable(code).CopyTo(destination);
                break;
            case 2:
                WriteDefault(lu, code, destination[..Length(code)]);
                break;
            default:
                Current(lu, code).CopyTo(destination);
                break;
        }
    }

    public static int Length(byte code) => code switch
    {
        CachingCode => CachingLength,
        ControlCode => ControlLength,
        IecCode => IecLength,
        _ => 0,
    };

    public static bool IsSupported(byte code) => Length(code) != 0;

    public static ReadOnlySpan<byte> Changeable(byte code) => code switch
    {
        CachingCode => CachingChangeable,
        ControlCode => ControlChangeable,
        _ => IecChangeable,
    };

    public static byte[] Current(LogicalUnit lu, byte code) => code switch
    {
        CachingCode => lu.Caching,
        ControlCode => lu.Control,
        _ => lu.InformationalExceptions,
    };

    /// <summary>Page codes in the order MODE SENSE returns them for 3Fh (SPC-4 6.11: ascending).</summary>
    public static ReadOnlySpan<byte> All => [CachingCode, ControlCode, IecCode];
}
