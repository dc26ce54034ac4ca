namespace Sluice.Iscsi.Text;

/// <summary>
/// Splits an encoded text response into data segments no longer than the receiver's
/// MaxRecvDataSegmentLength. Every segment but the last goes out with C=1; the initiator pulls
/// the next one with an empty request (RFC 7143 §11.11.2 Text Response, §11.13.2 Login Response).
/// During login the limit is the default 8192 (§13.12: the declared value applies after login).
/// Segments end after a NUL when one falls inside the window, so that peers which (wrongly) parse
/// each PDU on its own still see whole pairs; a pair longer than the window is split mid-pair,
/// which §6.1 allows.
/// </summary>
public sealed class TextSegmenter
{
    private readonly ReadOnlyMemory<byte> _text;
    private readonly int _maxSegment;
    private int _offset;
    private bool _sentAny;

    /// <summary>Creates a segmenter over <paramref name="text"/>.</summary>
    public TextSegmenter(ReadOnlyMemory<byte> text, int maxSegmentLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxSegmentLength);
        _text = text;
        _maxSegment = maxSegmentLength;
    }

    /// <summary>True once the last segment (C=0) has been returned.</summary>
    public bool IsComplete => _sentAny && _offset >= _text.Length;

    /// <summary>Bytes not yet returned.</summary>
    public int Remaining => _text.Length - _offset;

    /// <summary>
    /// Returns the next segment; <paramref name="more"/> is the C bit to send with it. An empty text
    /// yields one empty segment with C=0.
    /// </summary>
    public ReadOnlyMemory<byte> Next(out bool more)
    {
        if (IsComplete)
        {
            throw new InvalidOperationException("All segments have been returned.");
        }

        _sentAny = true;
        int remaining = _text.Length - _offset;
        int take = remaining;
        if (remaining > _maxSegment)
        {
            var window = _text.Span.Slice(_offset, _maxSegment);
            int lastNul = window.LastIndexOf((byte)0);
            take = lastNul >= 0 ? lastNul + 1 : _maxSegment;
        }

        var segment = _text.Slice(_offset, take);
        _offset += take;
        more = _offset < _text.Length;
        return segment;
    }

    /// <summary>All segments of <paramref name="text"/> at once.</summary>
    public static IReadOnlyList<ReadOnlyMemory<byte>> Split(ReadOnlyMemory<byte> text, int maxSegmentLength)
    {
        var segmenter = new TextSegmenter(text, maxSegmentLength);
        var list = new List<ReadOnlyMemory<byte>>();
        while (!segmenter.IsComplete)
        {
            list.Add(segmenter.Next(out _));
        }

        return list;
    }
}
