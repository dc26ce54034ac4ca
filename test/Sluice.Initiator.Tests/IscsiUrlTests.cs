namespace Sluice.Initiator.Tests;

public sealed class IscsiUrlTests
{
    [Theory]
    [InlineData("iscsi://127.0.0.1/iqn.2026-11.dev.sluice:t/1", "127.0.0.1", 3260, "iqn.2026-11.dev.sluice:t", 1, null, null)]
    [InlineData("iscsi://host:3261/iqn.x:y/0", "host", 3261, "iqn.x:y", 0, null, null)]
    [InlineData("iscsi://[::1]:3262/iqn.x:y/7", "::1", 3262, "iqn.x:y", 7, null, null)]
    [InlineData("iscsi://[fe80::1]/iqn.x:y/2", "fe80::1", 3260, "iqn.x:y", 2, null, null)]
    [InlineData("iscsi://alice%s3cret@host/iqn.x:y/1", "host", 3260, "iqn.x:y", 1, "alice", "s3cret")]
    [InlineData("iscsi://alice@host/iqn.x:y/1", "host", 3260, "iqn.x:y", 1, "alice", null)]
    [InlineData("iscsi://al%pa%25ss%40word@host:99/iqn.x:y/3", "host", 99, "iqn.x:y", 3, "al", "pa%ss@word")]
    [InlineData("iscsi://bob%p%3Aw@[::1]:5/iqn.x%3Ay/4", "::1", 5, "iqn.x:y", 4, "bob", "p:w")]
    [InlineData("iscsi://host", "host", 3260, null, null, null, null)]
    [InlineData("iscsi://host:1234/", "host", 1234, null, null, null, null)]
    [InlineData("iscsi://host/iqn.x:y", "host", 3260, "iqn.x:y", null, null, null)]
    [InlineData("ISCSI://HOST/iqn.x:y/16383", "HOST", 3260, "iqn.x:y", 16383, null, null)]
    public void Parse_ValidUrl_YieldsParts(string text, string host, int port, string? target, int? lun, string? user, string? secret)
    {
        var url = IscsiUrl.Parse(text);
        Assert.Equal(host, url.Host);
        Assert.Equal(port, url.Port);
        Assert.Equal(target, url.Target);
        Assert.Equal(lun, url.Lun);
        Assert.Equal(user, url.User);
        Assert.Equal(secret, url.Secret);
    }

    [Theory]
    [InlineData("http://host/iqn.x:y/1")]
    [InlineData("iscsi://")]
    [InlineData("iscsi:///iqn.x:y/1")]
    [InlineData("iscsi://host:0/iqn.x:y/1")]
    [InlineData("iscsi://host:65536/iqn.x:y/1")]
    [InlineData("iscsi://host:abc/iqn.x:y/1")]
    [InlineData("iscsi://[::1/iqn.x:y/1")]
    [InlineData("iscsi://::1/iqn.x:y/1")]
    [InlineData("iscsi://host/iqn.x:y/notalun")]
    [InlineData("iscsi://host/iqn.x:y/16384")]
    [InlineData("iscsi://host/iqn.x:y/-1")]
    [InlineData("iscsi://@host/iqn.x:y/1")]
    [InlineData("iscsi://u%p%zz@host/iqn.x:y/1")]
    [InlineData("iscsi://host//1")]
    public void TryParse_InvalidUrl_FailsWithReason(string text)
    {
        Assert.False(IscsiUrl.TryParse(text, out _, out var error));
        Assert.NotEmpty(error);
        Assert.Throws<FormatException>(() => IscsiUrl.Parse(text));
    }

    [Fact]
    public void ToString_OmitsSecret_AndRoundTrips()
    {
        var url = IscsiUrl.Parse("iscsi://u%secret@[::1]:3261/iqn.x:y/2");
        var text = url.ToString();
        Assert.DoesNotContain("secret", text, StringComparison.Ordinal);
        Assert.Equal("iscsi://u@[::1]:3261/iqn.x:y/2", text);
        Assert.Equal(url with { Secret = null }, IscsiUrl.Parse(text));
    }

    [Theory]
    [InlineData("10.0.0.1:3260,1", "10.0.0.1", 3260, 1)]
    [InlineData("10.0.0.1,7", "10.0.0.1", 3260, 7)]
    [InlineData("[fe80::1]:3261,2", "fe80::1", 3261, 2)]
    [InlineData("host.example", "host.example", 3260, -1)]
    public void TargetAddress_Parses(string value, string host, int port, int tag)
    {
        Assert.True(IscsiDiscovery.TryParseAddress(value, out var h, out int p, out int t));
        Assert.Equal((host, port, tag), (h, p, t));
    }
}
