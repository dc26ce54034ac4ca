namespace Sluice.Storage.Tests;

public class ByteSizeTests
{
    [Theory]
    [InlineData("512", 512L)]
    [InlineData("4096B", 4096L)]
    [InlineData("512KiB", 512L * 1024)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("1GiB", 1L << 30)]
    [InlineData("2TiB", 2L << 40)]
    [InlineData("4K", 4096L)]
    [InlineData("3M", 3L << 20)]
    [InlineData("64G", 64L << 30)]
    [InlineData("1T", 1L << 40)]
    [InlineData("1KB", 1000L)]
    [InlineData("10MB", 10_000_000L)]
    [InlineData("5GB", 5_000_000_000L)]
    [InlineData("2TB", 2_000_000_000_000L)]
    [InlineData("1gib", 1L << 30)]
    [InlineData(" 8MiB ", 8L << 20)]
    [InlineData("007", 7L)]
    [InlineData("8191PiB", 8191L << 50)]
    [InlineData("9223372036854775807", long.MaxValue)]
    public void TryParse_ValidText_ReturnsBytes(string text, long expected)
    {
        Assert.True(ByteSize.TryParse(text, out long bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData("0")]
    [InlineData("0GiB")]
    [InlineData("-1")]
    [InlineData("-1GiB")]
    [InlineData("+1GiB")]
    [InlineData("1.5GiB")]
    [InlineData("1,024")]
    [InlineData("GiB")]
    [InlineData("12XB")]
    [InlineData("1 GiB")]
    [InlineData("1GiBx")]
    [InlineData("1Gi")]
    [InlineData("0x10")]
    [InlineData("8192PiB")]
    [InlineData("9223372036854775808")]
    [InlineData("99999999999999999999999")]
    [InlineData("10000000TiB")]
    public void TryParse_InvalidText_ReturnsFalse(string? text)
    {
        Assert.False(ByteSize.TryParse(text, out long bytes));
        Assert.Equal(0, bytes);
    }

    [Theory]
    [InlineData(512L, "512B")]
    [InlineData(1024L, "1KiB")]
    [InlineData(1536L, "1536B")]
    [InlineData(1L << 30, "1GiB")]
    [InlineData(64L << 30, "64GiB")]
    [InlineData(3L << 40, "3TiB")]
    [InlineData(1_000_000_000L, "1GB")]
    [InlineData(1_000L, "1KB")]
    [InlineData(0L, "0B")]
    public void Format_Value_UsesLargestExactUnit(long bytes, string expected)
    {
        Assert.Equal(expected, ByteSize.Format(bytes));
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(4096L)]
    [InlineData(123_456_789L)]
    [InlineData(5L << 20)]
    [InlineData(long.MaxValue)]
    public void Format_PositiveValue_RoundTripsThroughTryParse(long bytes)
    {
        Assert.True(ByteSize.TryParse(ByteSize.Format(bytes), out long parsed));
        Assert.Equal(bytes, parsed);
    }
}
