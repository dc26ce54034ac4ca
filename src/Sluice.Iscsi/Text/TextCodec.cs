using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace Sluice.Iscsi.Text;

/// <summary>
/// Encoder and decoder for the data segment of Login and Text PDUs: a sequence of
/// <c>key=value</c> strings, each followed by one NUL byte (RFC 7143 §6.1).
/// </summary>
public static class TextCodec
{
    /// <summary>RFC 7143 §6.1: a standard-label "MUST NOT exceed 63 characters".</summary>
    public const int MaxKeyLength = 63;

    /// <summary>RFC 7143 §6.1: the maximum length of an individual value is 255 bytes.</summary>
    public const int MaxValueLength = 255;

    /// <summary>
    /// Cap for the string form of keys whose values are large-binary-values (CHAP_C, CHAP_R and the
    /// SRP/Kerberos exchanges, §6.1 and §12.1): up to 1024 binary bytes, which is 2050 characters in
    /// hex and more with other encodings, and the whole pair must fit the 8192-byte pair limit.
    /// </summary>
    public const int MaxLargeValueLength = 8192;

    /// <summary>
    /// Decodes a complete text data segment. Empty strings between NULs (padding some peers leave
    /// in the segment) are skipped. When <paramref name="allowDuplicateKeys"/> is false a key that
    /// appears twice is an error — the rule for a negotiation (RFC 7143 §6.2); SendTargets responses
    /// legitimately repeat TargetName and TargetAddress and are decoded with it set to true.
    /// </summary>
    public static bool TryParse(
        ReadOnlySpan<byte> data,
        bool allowDuplicateKeys,
        out IReadOnlyList<TextPair> pairs,
        out TextFormatError error)
    {
        var list = new List<TextPair>();
        HashSet<string>? seen = allowDuplicateKeys ? null : new HashSet<string>(StringComparer.Ordinal);
        pairs = list;
        var rest = data;
        while (!rest.IsEmpty)
        {
            int nul = rest.IndexOf((byte)0);
            if (nul < 0)
            {
                error = TextFormatError.MissingTerminator;
                return false;
            }

            var item = rest[..nul];
            rest = rest[(nul + 1)..];
            if (item.IsEmpty)
            {
                continue;
            }

            error = ParsePair(item, out var pair);
            if (error != TextFormatError.None)
            {
                return false;
            }

            if (seen is not null && !seen.Add(pair.Key))
            {
                error = TextFormatError.DuplicateKey;
                return false;
            }

            list.Add(pair);
        }

        error = TextFormatError.None;
        return true;
    }

    /// <summary>Number of bytes <see cref="Encode(IEnumerable{TextPair}, IBufferWriter{byte})"/> writes.</summary>
    public static int GetEncodedLength(IEnumerable<TextPair> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        int total = 0;
        foreach (var p in pairs)
        {
            total = checked(total + Encoding.ASCII.GetByteCount(p.Key) + 1 + Encoding.UTF8.GetByteCount(p.Value) + 1);
        }

        return total;
    }

    /// <summary>Encodes pairs as <c>key=value\0</c> strings into a new array.</summary>
    public static byte[] Encode(IEnumerable<TextPair> pairs)
    {
        var writer = new ArrayBufferWriter<byte>(256);
        Encode(pairs, writer);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>Encodes pairs as <c>key=value\0</c> strings. Keys are validated; an invalid key is a bug in the caller.</summary>
    public static void Encode(IEnumerable<TextPair> pairs, IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(writer);
        foreach (var p in pairs)
        {
            if (!IsValidKey(p.Key))
            {
                throw new ArgumentException($"'{p.Key}' is not a valid iSCSI key name (RFC 7143 §6.1).", nameof(pairs));
            }

            int keyLen = p.Key.Length;
            int valueLen = Encoding.UTF8.GetByteCount(p.Value);
            var span = writer.GetSpan(keyLen + valueLen + 2);
            Encoding.ASCII.GetBytes(p.Key, span);
            span[keyLen] = (byte)'=';
            Encoding.UTF8.GetBytes(p.Value, span[(keyLen + 1)..]);
            span[keyLen + 1 + valueLen] = 0;
            writer.Advance(keyLen + valueLen + 2);
        }
    }

    /// <summary>
    /// True when <paramref name="key"/> is a well-formed key name: 1..63 characters from the
    /// standard-label alphabet of RFC 7143 §6.1 (letters, digits, '.', '-', '+', '@', '_'), plus '#'
    /// so that "X#" extension keys (§13.22) decode and can be answered NotUnderstood.
    /// </summary>
    public static bool IsValidKey(string key)
    {
        if (string.IsNullOrEmpty(key) || key.Length > MaxKeyLength)
        {
            return false;
        }

        foreach (char c in key)
        {
            if (c > 0x7F || !IsKeyChar((byte)c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Keys whose values may be large-binary-values (RFC 7143 §12.1).</summary>
    internal static bool IsLargeValueKey(ReadOnlySpan<byte> key) =>
        key.SequenceEqual("CHAP_C"u8) || key.SequenceEqual("CHAP_R"u8) ||
        key.StartsWith("SRP_"u8) || key.StartsWith("KRB_"u8);

    private static TextFormatError ParsePair(ReadOnlySpan<byte> item, out TextPair pair)
    {
        pair = default;
        int eq = item.IndexOf((byte)'=');
        if (eq < 0)
        {
            return TextFormatError.MissingEquals;
        }

        if (eq == 0)
        {
            return TextFormatError.EmptyKey;
        }

        if (eq > MaxKeyLength)
        {
            return TextFormatError.KeyTooLong;
        }

        var key = item[..eq];
        foreach (byte b in key)
        {
            if (!IsKeyChar(b))
            {
                return TextFormatError.InvalidKeyCharacter;
            }
        }

        var value = item[(eq + 1)..];
        int limit = IsLargeValueKey(key) ? MaxLargeValueLength : MaxValueLength;
        if (value.Length > limit)
        {
            return TextFormatError.ValueTooLong;
        }

        if (!Utf8.IsValid(value))
        {
            return TextFormatError.InvalidUtf8;
        }

        pair = new TextPair(Encoding.ASCII.GetString(key), Encoding.UTF8.GetString(value));
        return TextFormatError.None;
    }

    private static bool IsKeyChar(byte b) =>
        b is (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z') or (>= (byte)'0' and <= (byte)'9')
            or (byte)'.' or (byte)'-' or (byte)'+' or (byte)'@' or (byte)'_' or (byte)'#';
}
