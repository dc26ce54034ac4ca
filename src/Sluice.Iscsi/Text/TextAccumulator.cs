namespace Sluice.Iscsi.Text;

/// <summary>Outcome of <see cref="TextAccumulator.Append"/>.</summary>
public enum TextAccumulatorResult
{
    /// <summary>The segment was buffered; more PDUs (C=1) are expected.</summary>
    NeedMore,
    /// <summary>The final segment arrived and the whole text decoded; see <see cref="TextAccumulator.Pairs"/>.</summary>
    Complete,
    /// <summary>The text does not decode, or exceeds the cap; see <see cref="TextAccumulator.Error"/>.</summary>
    Failed,
}

/// <summary>
/// Collects a text that spans several Login or Text Request PDUs. RFC 7143 §11.10.2 / §11.12.2:
/// while the C (continue) bit is 1 the sender has more text to send, and a key=value pair may be
/// split anywhere across the PDU boundary; only the PDU with C=0 completes the text. The total is
/// capped so that a peer cannot make us buffer without bound (DESIGN.md: every limit has a name).
/// </summary>
public sealed class TextAccumulator
{
    /// <summary>Default cap on the bytes of one multi-PDU text.</summary>
    public const int DefaultMaxBytes = 64 * 1024;

    private readonly int _maxBytes;
    private byte[] _buffer = [];
    private int _length;

    /// <summary>Creates an accumulator that fails texts longer than <paramref name="maxBytes"/>.</summary>
    public TextAccumulator(int maxBytes = DefaultMaxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        _maxBytes = maxBytes;
    }

    /// <summary>When true, a key may repeat (SendTargets responses); false for negotiations (§6.2).</summary>
    public bool AllowDuplicateKeys { get; init; }

    /// <summary>Bytes buffered for the text in progress.</summary>
    public int Length => _length;

    /// <summary>The decoded pairs after <see cref="TextAccumulatorResult.Complete"/>.</summary>
    public IReadOnlyList<TextPair> Pairs { get; private set; } = [];

    /// <summary>The reason after <see cref="TextAccumulatorResult.Failed"/>.</summary>
    public TextFormatError Error { get; private set; }

    /// <summary>
    /// Appends one PDU's data segment. <paramref name="final"/> is true for the PDU whose C bit is 0.
    /// After Complete or Failed the accumulator is empty and ready for the next text.
    /// </summary>
    public TextAccumulatorResult Append(ReadOnlySpan<byte> segment, bool final)
    {
        Error = TextFormatError.None;
        if (segment.Length > _maxBytes - _length)
        {
            Reset();
            Error = TextFormatError.TooLarge;
            return TextAccumulatorResult.Failed;
        }

        if (!final || _length > 0)
        {
            EnsureCapacity(_length + segment.Length);
            segment.CopyTo(_buffer.AsSpan(_length));
            _length += segment.Length;
        }

        if (!final)
        {
            return TextAccumulatorResult.NeedMore;
        }

        // Single-PDU texts (the common case) are decoded straight from the caller's span.
        var whole = _length > 0 ? _buffer.AsSpan(0, _length) : segment;
        bool ok = TextCodec.TryParse(whole, AllowDuplicateKeys, out var pairs, out var error);
        _length = 0;
        if (_buffer.Length > 16 * 1024)
        {
            _buffer = [];
        }

        Pairs = ok ? pairs : [];
        Error = error;
        return ok ? TextAccumulatorResult.Complete : TextAccumulatorResult.Failed;
    }

    /// <summary>Drops any partial text.</summary>
    public void Reset()
    {
        _length = 0;
        _buffer = [];
        Pairs = [];
    }

    private void EnsureCapacity(int needed)
    {
        if (needed <= _buffer.Length)
        {
            return;
        }

        int size = Math.Max(needed, Math.Min(_maxBytes, Math.Max(_buffer.Length * 2, 1024)));
        Array.Resize(ref _buffer, size);
    }
}
