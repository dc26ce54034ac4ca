using System.Globalization;

namespace Sluice.Iscsi.Text;

/// <summary>
/// Value syntaxes of RFC 7143 §6.1: boolean-value, decimal-constant, hex-constant (0x/0X),
/// base64-constant (0b/0B), numerical-value and binary-value, and the special answers of §6.2.
/// </summary>
internal static class TextValue
{
    public const string Yes = "Yes";
    public const string No = "No";
    public const string Reject = "Reject";
    public const string Irrelevant = "Irrelevant";
    public const string NotUnderstood = "NotUnderstood";
    public const string None = "None";

    /// <summary>§6.1: large-binary-value "MUST NOT exceed 1024 bytes" of binary length.</summary>
    public const int MaxLargeBinaryLength = 1024;

    public static bool TryParseBoolean(string value, out bool result)
    {
        switch (value)
        {
            case Yes:
                result = true;
                return true;
            case No:
                result = false;
                return true;
            default:
                result = false;
                return false;
        }
    }

    public static string FormatBoolean(bool value) => value ? Yes : No;

    /// <summary>True for the answers that are not values: Reject, Irrelevant, NotUnderstood (§6.2).</summary>
    public static bool IsSpecialAnswer(string value) =>
        value is Reject or Irrelevant or NotUnderstood;

    /// <summary>
    /// numerical-value (§6.1): an unsigned integer below 2^64 written as a decimal-constant, a
    /// hex-constant or a base64-constant. Decimal leading zeros are tolerated.
    /// </summary>
    public static bool TryParseNumber(string value, out ulong result)
    {
        result = 0;
        if (string.IsNullOrEmpty(value))
        {
            return false;
        }

        if (value.Length > 2 && value[0] == '0' && (value[1] is 'x' or 'X' or 'b' or 'B'))
        {
            if (!TryParseBinary(value, out var bytes) || bytes.Length > 8)
            {
                return false;
            }

            foreach (byte b in bytes)
            {
                result = (result << 8) | b;
            }

            return true;
        }

        foreach (char c in value)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        return ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out result);
    }

    /// <summary>
    /// binary-value (§6.1): a hex-constant ("0x" + hex digits; an odd count means an implied leading
    /// zero nibble) or a base64-constant ("0b" + RFC 4648 base64).
    /// </summary>
    public static bool TryParseBinary(string value, out byte[] result)
    {
        result = [];
        if (value is null || value.Length < 3 || value[0] != '0')
        {
            return false;
        }

        var digits = value.AsSpan(2);
        switch (value[1])
        {
            case 'x' or 'X':
            {
                bool odd = (digits.Length & 1) != 0;
                var bytes = new byte[(digits.Length + 1) / 2];
                for (int i = 0; i < digits.Length; i++)
                {
                    int nibble = HexNibble(digits[i]);
                    if (nibble < 0)
                    {
                        return false;
                    }

                    int position = i + (odd ? 1 : 0);
                    bytes[position / 2] |= (byte)((position & 1) == 0 ? nibble << 4 : nibble);
                }

                result = bytes;
                return true;
            }

            case 'b' or 'B':
            {
                var buffer = new byte[(digits.Length * 3 / 4) + 3];
                if (!Convert.TryFromBase64Chars(digits, buffer, out int written) || written == 0)
                {
                    return false;
                }

                result = buffer.AsSpan(0, written).ToArray();
                return true;
            }

            default:
                return false;
        }
    }

    /// <summary>hex-constant with the "0x" prefix, lower-case digits.</summary>
    public static string FormatHex(ReadOnlySpan<byte> bytes) => "0x" + Convert.ToHexStringLower(bytes);

    /// <summary>base64-constant with the "0b" prefix.</summary>
    public static string FormatBase64(ReadOnlySpan<byte> bytes) => "0b" + Convert.ToBase64String(bytes);

    public static string FormatNumber(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static int HexNibble(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}
