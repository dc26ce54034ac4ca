using System.Globalization;

namespace Sluice.Storage;

/// <summary>
/// Sizes as operators write them: a positive integer with an optional unit. <c>B</c> is bytes;
/// <c>K M G T P</c> and <c>KiB MiB GiB TiB PiB</c> are powers of 1024 (as in <c>truncate -s</c> and
/// <c>qemu-img</c>); <c>KB MB GB TB PB</c> are powers of 1000. Units are case-insensitive.
/// </summary>
public static class ByteSize
{
    private static readonly (string Suffix, long Multiplier)[] s_units =
    [
        ("", 1), ("B", 1),
        ("K", 1L << 10), ("KiB", 1L << 10), ("KB", 1_000),
        ("M", 1L << 20), ("MiB", 1L << 20), ("MB", 1_000_000),
        ("G", 1L << 30), ("GiB", 1L << 30), ("GB", 1_000_000_000),
        ("T", 1L << 40), ("TiB", 1L << 40), ("TB", 1_000_000_000_000),
        ("P", 1L << 50), ("PiB", 1L << 50), ("PB", 1_000_000_000_000_000),
    ];

    // Largest first: Format uses the largest unit that divides the value exactly.
    private static readonly (string Suffix, long Multiplier)[] s_formatUnits =
    [
        ("PiB", 1L << 50), ("PB", 1_000_000_000_000_000),
        ("TiB", 1L << 40), ("TB", 1_000_000_000_000),
        ("GiB", 1L << 30), ("GB", 1_000_000_000),
        ("MiB", 1L << 20), ("MB", 1_000_000),
        ("KiB", 1L << 10), ("KB", 1_000),
    ];

    /// <summary>
    /// Parses <paramref name="text"/>; false for empty text, a sign, a fraction, zero, an unknown
    /// unit or a value that doesn't fit in a <see cref="long"/>.
    /// </summary>
    public static bool TryParse(string? text, out long bytes)
    {
        bytes = 0;
        if (text is null)
            return false;
        var span = text.AsSpan().Trim();
        int digits = 0;
        while (digits < span.Length && char.IsAsciiDigit(span[digits]))
            digits++;
        if (digits == 0)
            return false;
        var suffix = span[digits..];
        long multiplier = 0;
        foreach (var (s, m) in s_units)
        {
            if (suffix.Equals(s, StringComparison.OrdinalIgnoreCase))
            {
                multiplier = m;
                break;
            }
        }
        if (multiplier == 0)
            return false;
        if (!long.TryParse(span[..digits], NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value == 0)
            return false;
        if (value > long.MaxValue / multiplier)
            return false;
        bytes = value * multiplier;
        return true;
    }

    /// <summary><paramref name="bytes"/> in the largest unit that divides it exactly; a spelling <see cref="TryParse"/> reads back.</summary>
    public static string Format(long bytes)
    {
        if (bytes > 0)
        {
            foreach (var (suffix, multiplier) in s_formatUnits)
            {
                if (bytes % multiplier == 0)
                    return string.Create(CultureInfo.InvariantCulture, $"{bytes / multiplier}{suffix}");
            }
        }
        return string.Create(CultureInfo.InvariantCulture, $"{bytes}B");
    }
}
