using System.Text;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Tests;

public class TextCodecTests
{
    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void TryParse_WellFormedPairs_ReturnsPairsInOrder()
    {
        Assert.True(TextCodec.TryParse(Bytes("InitiatorName=iqn.a\0HeaderDigest=None,CRC32C\0X-com.ex.k=v=w\0"), false, out var pairs, out var error));
        Assert.Equal(TextFormatError.None, error);
        Assert.Equal(
            [new("InitiatorName", "iqn.a"), new("HeaderDigest", "None,CRC32C"), new("X-com.ex.k", "v=w")],
            pairs);
    }

    [Fact]
    public void TryParse_EmptyValueAndPaddingNuls_Accepted()
    {
        Assert.True(TextCodec.TryParse(Bytes("TargetAlias=\0\0\0\0"), false, out var pairs, out _));
        Assert.Equal([new TextPair("TargetAlias", "")], pairs);
    }

    [Fact]
    public void TryParse_EmptyData_ReturnsNoPairs()
    {
        Assert.True(TextCodec.TryParse([], false, out var pairs, out _));
        Assert.Empty(pairs);
    }

    [Theory]
    [InlineData("Key=v", TextFormatError.MissingTerminator)]
    [InlineData("KeyWithoutEquals\0", TextFormatError.MissingEquals)]
    [InlineData("=v\0", TextFormatError.EmptyKey)]
    [InlineData("Bad Key=v\0", TextFormatError.InvalidKeyCharacter)]
    [InlineData("Bad/Key=v\0", TextFormatError.InvalidKeyCharacter)]
    [InlineData("A=1\0A=2\0", TextFormatError.DuplicateKey)]
    public void TryParse_Malformed_ReportsError(string text, TextFormatError expected)
    {
        Assert.False(TextCodec.TryParse(Bytes(text), false, out _, out var error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void TryParse_DuplicatesAllowed_KeepsBoth()
    {
        Assert.True(TextCodec.TryParse(Bytes("TargetName=a\0TargetName=b\0"), true, out var pairs, out _));
        Assert.Equal(2, pairs.Count);
    }

    [Fact]
    public void TryParse_KeyOf63Bytes_Accepted_64Rejected()
    {
        Assert.True(TextCodec.TryParse(Bytes(new string('K', 63) + "=v\0"), false, out _, out _));
        Assert.False(TextCodec.TryParse(Bytes(new string('K', 64) + "=v\0"), false, out _, out var error));
        Assert.Equal(TextFormatError.KeyTooLong, error);
    }

    [Fact]
    public void TryParse_ValueOf255Bytes_Accepted_256Rejected()
    {
        Assert.True(TextCodec.TryParse(Bytes("K=" + new string('v', 255) + "\0"), false, out _, out _));
        Assert.False(TextCodec.TryParse(Bytes("K=" + new string('v', 256) + "\0"), false, out _, out var error));
        Assert.Equal(TextFormatError.ValueTooLong, error);
    }

    [Fact]
    public void TryParse_ChapChallengeUpTo8192_Accepted()
    {
        Assert.True(TextCodec.TryParse(Bytes("CHAP_C=0x" + new string('a', 8190) + "\0"), false, out _, out _));
        Assert.False(TextCodec.TryParse(Bytes("CHAP_C=0x" + new string('a', 8191) + "\0"), false, out _, out var error));
        Assert.Equal(TextFormatError.ValueTooLong, error);
    }

    [Fact]
    public void TryParse_InvalidUtf8_Rejected()
    {
        byte[] data = [(byte)'K', (byte)'=', 0xC3, 0x28, 0];
        Assert.False(TextCodec.TryParse(data, false, out _, out var error));
        Assert.Equal(TextFormatError.InvalidUtf8, error);
    }

    [Fact]
    public void TryParse_Utf8Value_Decoded()
    {
        Assert.True(TextCodec.TryParse(Bytes("InitiatorAlias=höst\0"), false, out var pairs, out _));
        Assert.Equal("höst", pairs[0].Value);
    }

    [Fact]
    public void Encode_Pairs_RoundTrips()
    {
        TextPair[] pairs = [new("A", "1"), new("InitiatorAlias", "höst"), new("E", "")];
        var bytes = TextCodec.Encode(pairs);
        Assert.Equal(TextCodec.GetEncodedLength(pairs), bytes.Length);
        Assert.Equal(Bytes("A=1\0InitiatorAlias=höst\0E=\0"), bytes);
        Assert.True(TextCodec.TryParse(bytes, false, out var back, out _));
        Assert.Equal(pairs, back);
    }

    [Fact]
    public void Encode_InvalidKey_Throws()
    {
        Assert.Throws<ArgumentException>(() => TextCodec.Encode([new TextPair("bad key", "v")]));
    }
}

public class TextAccumulatorTests
{
    private static readonly byte[] Sample = Encoding.UTF8.GetBytes(
        "InitiatorName=iqn.2024-01.com.example:host\0SessionType=Normal\0TargetName=iqn.t:disk\0CHAP_C=0x0102\0");

    [Fact]
    public void Append_SplitAtEveryByte_YieldsSamePairs()
    {
        Assert.True(TextCodec.TryParse(Sample, false, out var expected, out _));
        for (int split = 0; split <= Sample.Length; split++)
        {
            var acc = new TextAccumulator();
            Assert.Equal(TextAccumulatorResult.NeedMore, acc.Append(Sample.AsSpan(0, split), final: false));
            Assert.Equal(TextAccumulatorResult.Complete, acc.Append(Sample.AsSpan(split), final: true));
            Assert.Equal(expected, acc.Pairs);
        }
    }

    [Fact]
    public void Append_OneBytePerSegment_YieldsSamePairs()
    {
        var acc = new TextAccumulator();
        for (int i = 0; i < Sample.Length - 1; i++)
        {
            Assert.Equal(TextAccumulatorResult.NeedMore, acc.Append(Sample.AsSpan(i, 1), final: false));
        }

        Assert.Equal(TextAccumulatorResult.Complete, acc.Append(Sample.AsSpan(Sample.Length - 1), final: true));
        Assert.Equal(4, acc.Pairs.Count);
        Assert.Equal(0, acc.Length);
    }

    [Fact]
    public void Append_BeyondCap_FailsTooLarge()
    {
        var acc = new TextAccumulator(maxBytes: 16);
        Assert.Equal(TextAccumulatorResult.NeedMore, acc.Append(new byte[10], final: false));
        Assert.Equal(TextAccumulatorResult.Failed, acc.Append(new byte[7], final: true));
        Assert.Equal(TextFormatError.TooLarge, acc.Error);
        Assert.Equal(0, acc.Length);
    }

    [Fact]
    public void Append_FinalWithTruncatedPair_FailsMissingTerminator()
    {
        var acc = new TextAccumulator();
        acc.Append("A=1\0B="u8, final: false);
        Assert.Equal(TextAccumulatorResult.Failed, acc.Append("2"u8, final: true));
        Assert.Equal(TextFormatError.MissingTerminator, acc.Error);
    }

    [Fact]
    public void Append_AfterComplete_StartsFreshText()
    {
        var acc = new TextAccumulator();
        acc.Append("A=1\0"u8, final: true);
        Assert.Equal(TextAccumulatorResult.Complete, acc.Append("B=2\0"u8, final: true));
        Assert.Equal([new TextPair("B", "2")], acc.Pairs);
    }

    [Fact]
    public void Append_DuplicateKeysAcrossSegments_Rejected()
    {
        var acc = new TextAccumulator();
        acc.Append("A=1\0"u8, final: false);
        Assert.Equal(TextAccumulatorResult.Failed, acc.Append("A=2\0"u8, final: true));
        Assert.Equal(TextFormatError.DuplicateKey, acc.Error);
    }
}

public class TextSegmenterTests
{
    [Fact]
    public void Split_ShortText_OneFinalSegment()
    {
        var segments = TextSegmenter.Split(new byte[100], 8192);
        Assert.Single(segments);
    }

    [Fact]
    public void Split_EmptyText_OneEmptySegment()
    {
        var seg = new TextSegmenter(ReadOnlyMemory<byte>.Empty, 512);
        var first = seg.Next(out bool more);
        Assert.True(first.IsEmpty);
        Assert.False(more);
        Assert.True(seg.IsComplete);
    }

    [Fact]
    public void Next_LongText_SegmentsAtPairBoundariesWithinLimit()
    {
        var pairs = Enumerable.Range(0, 200).Select(i => new TextPair("TargetName", $"iqn.2024-01.com.example:target{i:D4}")).ToList();
        var text = TextCodec.Encode(pairs);
        var seg = new TextSegmenter(text, 512);
        var acc = new TextAccumulator { AllowDuplicateKeys = true };
        var result = TextAccumulatorResult.NeedMore;
        while (!seg.IsComplete)
        {
            var chunk = seg.Next(out bool more);
            Assert.InRange(chunk.Length, 1, 512);
            Assert.Equal(0, chunk.Span[^1]);
            result = acc.Append(chunk.Span, final: !more);
        }

        Assert.Equal(TextAccumulatorResult.Complete, result);
        Assert.Equal(pairs, acc.Pairs);
    }

    [Fact]
    public void Next_PairLongerThanLimit_SplitsMidPair()
    {
        var text = TextCodec.Encode([new TextPair("CHAP_C", "0x" + new string('a', 2048))]);
        var segments = TextSegmenter.Split(text, 512);
        Assert.Equal((text.Length + 511) / 512, segments.Count);
        Assert.All(segments.SkipLast(1), s => Assert.Equal(512, s.Length));
        Assert.Equal(text, segments.SelectMany(s => s.ToArray()).ToArray());
    }
}

public class TextValueTests
{
    [Theory]
    [InlineData("0", 0UL)]
    [InlineData("8192", 8192UL)]
    [InlineData("0x2000", 8192UL)]
    [InlineData("0X2000", 8192UL)]
    [InlineData("0x200", 512UL)]
    [InlineData("0bIAA=", 8192UL)]
    [InlineData("18446744073709551615", ulong.MaxValue)]
    public void TryParseNumber_Encodings_Decoded(string text, ulong expected)
    {
        Assert.True(TextValue.TryParseNumber(text, out ulong value));
        Assert.Equal(expected, value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("12a")]
    [InlineData("0x")]
    [InlineData("0xZZ")]
    [InlineData("18446744073709551616")]
    [InlineData("0x010203040506070809")]
    [InlineData("0b!!")]
    public void TryParseNumber_Invalid_ReturnsFalse(string text)
    {
        Assert.False(TextValue.TryParseNumber(text, out _));
    }

    [Fact]
    public void TryParseBinary_OddHexDigits_ImpliesLeadingZero()
    {
        Assert.True(TextValue.TryParseBinary("0xabc", out var bytes));
        Assert.Equal(new byte[] { 0x0A, 0xBC }, bytes);
    }

    [Fact]
    public void FormatHexAndBase64_RoundTrip()
    {
        byte[] data = [0, 1, 0xFE, 0xFF];
        Assert.Equal("0x0001feff", TextValue.FormatHex(data));
        Assert.True(TextValue.TryParseBinary(TextValue.FormatHex(data), out var hex));
        Assert.True(TextValue.TryParseBinary(TextValue.FormatBase64(data), out var b64));
        Assert.Equal(data, hex);
        Assert.Equal(data, b64);
    }
}
