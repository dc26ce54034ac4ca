using System.Diagnostics.CodeAnalysis;

namespace Sluice.Target.Configuration;

/// <summary>
/// iSCSI names (RFC 7143 §4.2.7): <c>iqn.YYYY-MM.reversed.domain[:anything]</c>,
/// <c>eui.</c> + 16 hex digits, or <c>naa.</c> + 16 or 32 hex digits; at most 223 bytes.
/// </summary>
public static class IscsiName
{
    /// <summary>RFC 7143 §4.2.7.1: iSCSI names are at most 223 bytes.</summary>
    public const int MaxLength = 223;

    private const string Reference = "RFC 7143 §4.2.7.2: iqn./eui./naa.";

    /// <summary>
    /// True when <paramref name="name"/> is a well-formed iSCSI name in its normalised (lower
    /// case) form; otherwise <paramref name="problem"/> says why, in one line.
    /// </summary>
    public static bool TryValidate(string? name, [NotNullWhen(false)] out string? problem)
    {
        problem = null;
        if (string.IsNullOrEmpty(name))
        {
            problem = $"must not be empty (an iSCSI name, {Reference})";
            return false;
        }
        if (name.Length > MaxLength)
        {
            problem = $"'{Shorten(name)}' is longer than {MaxLength} bytes (RFC 7143 §4.2.7.1)";
            return false;
        }

        // RFC 3722 stringprep maps upper case to lower case and prohibits everything in ASCII
        // but letters, digits, '-', '.' and ':'. Names travel normalised, so we only accept that form.
        foreach (char c in name)
        {
            if (char.IsAsciiLetterUpper(c))
            {
                problem = $"'{name}' must be lower case (iSCSI names are normalised to lower case, RFC 3722)";
                return false;
            }
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.' or ':'))
            {
                problem = $"'{name}' contains '{c}'; only a-z, 0-9, '-', '.' and ':' are allowed ({Reference})";
                return false;
            }
        }

        bool ok;
        if (name.StartsWith("iqn.", StringComparison.Ordinal))
            ok = IsIqn(name);
        else if (name.StartsWith("eui.", StringComparison.Ordinal))
            ok = IsHex(name.AsSpan(4), 16);
        else if (name.StartsWith("naa.", StringComparison.Ordinal))
            ok = IsHex(name.AsSpan(4), 16) || IsHex(name.AsSpan(4), 32);
        else
            ok = false;

        if (!ok)
            problem = $"'{name}' is not a valid iSCSI name ({Reference})";
        return ok;
    }

    // iqn.YYYY-MM.<reversed domain>[:<unique string>]
    private static bool IsIqn(string name)
    {
        var rest = name.AsSpan(4);
        if (rest.Length < 8
            || !char.IsAsciiDigit(rest[0]) || !char.IsAsciiDigit(rest[1]) || !char.IsAsciiDigit(rest[2]) || !char.IsAsciiDigit(rest[3])
            || rest[4] != '-' || !char.IsAsciiDigit(rest[5]) || !char.IsAsciiDigit(rest[6]))
            return false;
        int month = ((rest[5] - '0') * 10) + (rest[6] - '0');
        if (month is < 1 or > 12 || rest[7] != '.')
            return false;

        rest = rest[8..];
        int colon = rest.IndexOf(':');
        var domain = colon < 0 ? rest : rest[..colon];
        if (domain.IsEmpty)
            return false;
        foreach (var range in domain.Split('.'))
        {
            var label = domain[range];
            if (label.IsEmpty || label[0] == '-' || label[^1] == '-' || label.Contains(':'))
                return false;
        }
        // Anything after the colon is the naming authority's own; only the character set applies.
        return colon < 0 || colon + 1 < rest.Length;
    }

    private static bool IsHex(ReadOnlySpan<char> digits, int count)
    {
        if (digits.Length != count)
            return false;
        foreach (char c in digits)
        {
            if (!char.IsAsciiHexDigit(c))
                return false;
        }
        return true;
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : string.Concat(s.AsSpan(0, 37), "...");
}
