namespace Sluice.Iscsi.Text;

/// <summary>
/// One <c>key=value</c> pair of the iSCSI text format (RFC 7143 §6.1). Keys are case-sensitive
/// ASCII labels; values are UTF-8 strings whose syntax depends on the key.
/// </summary>
public readonly record struct TextPair(string Key, string Value)
{
    /// <inheritdoc />
    public override string ToString() => Key + "=" + Value;
}

/// <summary>Why a text data segment could not be decoded (RFC 7143 §6.1).</summary>
public enum TextFormatError
{
    /// <summary>No error.</summary>
    None,
    /// <summary>The last pair is not followed by its NUL delimiter.</summary>
    MissingTerminator,
    /// <summary>A pair has no '=' separating key and value.</summary>
    MissingEquals,
    /// <summary>A pair starts with '='.</summary>
    EmptyKey,
    /// <summary>A key is longer than 63 bytes.</summary>
    KeyTooLong,
    /// <summary>A key contains a byte outside the label alphabet.</summary>
    InvalidKeyCharacter,
    /// <summary>A value is longer than the limit for its key.</summary>
    ValueTooLong,
    /// <summary>A value is not well-formed UTF-8.</summary>
    InvalidUtf8,
    /// <summary>The same key appears twice where that is not allowed.</summary>
    DuplicateKey,
    /// <summary>The text (possibly spanning several PDUs) exceeds the accumulator's cap.</summary>
    TooLarge,
}
