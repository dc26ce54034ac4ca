namespace Sluice.Storage.Tests;

public class BackendSpecTests
{
    public static TheoryData<string, BackendSpec> Valid => new()
    {
        { "memory:64GiB", new MemoryBackendSpec(64L << 30) },
        { "memory:512", new MemoryBackendSpec(512) },
        { "MEMORY:1M", new MemoryBackendSpec(1L << 20) },
        { "file:lun0.img", new FileBackendSpec("lun0.img", null) },
        { "file:lun0.img:10GiB", new FileBackendSpec("lun0.img", 10L << 30) },
        { "file:/var/lib/sluice/a.img:1TB", new FileBackendSpec("/var/lib/sluice/a.img", 1_000_000_000_000) },
        { "file:odd:name.img", new FileBackendSpec("odd:name.img", null) },
        { "file:odd:name.img:4K", new FileBackendSpec("odd:name.img", 4096) },
        { "file:dir/x:", new FileBackendSpec("dir/x:", null) },
        { "block:/dev/loop0", new BlockBackendSpec("/dev/loop0") },
        { "  block:/dev/sdb  ", new BlockBackendSpec("/dev/sdb") },
    };

    [Theory]
    [MemberData(nameof(Valid))]
    public void TryParse_ValidSpec_ReturnsSpec(string text, BackendSpec expected)
    {
        Assert.True(BackendSpec.TryParse(text, out var spec, out var error), error);
        Assert.Null(error);
        Assert.Equal(expected, spec);
    }

    [Theory]
    [InlineData("foo:bar", "unknown back end 'foo' (expected memory:, file:, block: or model:)")]
    [InlineData("memory:12XB", "invalid size '12XB'")]
    [InlineData("memory:0", "invalid size '0'")]
    [InlineData("memory:-5G", "invalid size '-5G'")]
    [InlineData("memory:", "memory: needs a size (e.g. memory:1GiB)")]
    [InlineData("file:a.img:12XB", "invalid size '12XB'")]
    [InlineData("file:a.img:0", "invalid size '0'")]
    [InlineData("file:", "file: needs a path (e.g. file:lun0.img:10GiB)")]
    [InlineData("file::1G", "file: needs a path (e.g. file:lun0.img:10GiB)")]
    [InlineData("block:", "block: needs a device path (e.g. block:/dev/loop0)")]
    [InlineData("block:loop0", "block device path 'loop0' must be absolute")]
    [InlineData("", "empty back-end spec (expected memory:SIZE, file:PATH[:SIZE] or block:PATH)")]
    [InlineData("memory", "invalid back-end spec 'memory' (expected memory:SIZE, file:PATH[:SIZE] or block:PATH)")]
    public void TryParse_InvalidSpec_ReturnsOneLineError(string text, string expectedError)
    {
        Assert.False(BackendSpec.TryParse(text, out var spec, out var error));
        Assert.Null(spec);
        Assert.Equal(expectedError, error);
        Assert.DoesNotContain('\n', error);
    }

    [Fact]
    public void Parse_InvalidSpec_ThrowsFormatExceptionWithError()
    {
        var e = Assert.Throws<FormatException>(() => BackendSpec.Parse("tape:/dev/st0"));
        Assert.Equal("unknown back end 'tape' (expected memory:, file:, block: or model:)", e.Message);
    }

    [Theory]
    [InlineData("memory:64GiB")]
    [InlineData("file:a:b.img:1GB")]
    [InlineData("file:lun.img")]
    [InlineData("block:/dev/loop0")]
    public void ToString_ParsedSpec_RoundTrips(string text)
    {
        var spec = BackendSpec.Parse(text);
        Assert.Equal(text, spec.ToString());
        Assert.Equal(spec, BackendSpec.Parse(spec.ToString()));
    }
}
