using Sluice.Target.Configuration;

namespace Sluice.Cli.Tests;

public class PortalAddressTests
{
    [Theory]
    [InlineData("127.0.0.1:3260", "127.0.0.1", 3260)]
    [InlineData("127.0.0.1", "127.0.0.1", 3260)]
    [InlineData("0.0.0.0:0", "0.0.0.0", 0)]
    [InlineData("10.1.2.3:65535", "10.1.2.3", 65535)]
    [InlineData("[::1]:3260", "::1", 3260)]
    [InlineData("[::1]", "::1", 3260)]
    [InlineData("[::]:0", "::", 0)]
    [InlineData("[fe80::1:2]:13260", "fe80::1:2", 13260)]
    [InlineData("localhost:3261", "127.0.0.1", 3261)]
    public void TryParse_ValidAddress_ReturnsHostAndPort(string text, string host, int port)
    {
        Assert.True(PortalAddress.TryParse(text, out string? parsedHost, out int parsedPort, out string? error), error);
        Assert.Equal(host, parsedHost);
        Assert.Equal(port, parsedPort);
    }

    [Theory]
    [InlineData("", "empty address")]
    [InlineData("::1:3260", "write IPv6 addresses in brackets")]
    [InlineData("::1", "write IPv6 addresses in brackets")]
    [InlineData("[::1", "no closing ']'")]
    [InlineData("[::1]3260", "expected ':PORT' after ']'")]
    [InlineData("[127.0.0.1]:3260", "brackets are only for IPv6")]
    [InlineData(":3260", "has no host")]
    [InlineData("127.0.0.1:99999", "invalid port '99999'")]
    [InlineData("127.0.0.1:-1", "invalid port '-1'")]
    [InlineData("127.0.0.1:abc", "invalid port 'abc'")]
    [InlineData("127.0.0.1:", "invalid port ''")]
    [InlineData("example.com:3260", "invalid host 'example.com'")]
    [InlineData("1.2.3:3260", "invalid host '1.2.3'")]
    [InlineData("256.1.1.1", "invalid host '256.1.1.1'")]
    [InlineData("[x::y::z]:3260", "invalid host 'x::y::z'")]
    public void TryParse_InvalidAddress_ExplainsProblem(string text, string expected)
    {
        Assert.False(PortalAddress.TryParse(text, out _, out _, out string? error));
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("::1", true)]
    [InlineData("::", true)]
    [InlineData("1", false)]
    [InlineData("1.2", false)]
    [InlineData("01.2.3.4a", false)]
    [InlineData("x::y::z", false)]
    [InlineData("[::1]", false)]
    [InlineData("localhost", false)]
    [InlineData("", false)]
    public void TryParseHost_Literal_AcceptsOnlyFullIpAddresses(string host, bool valid)
    {
        Assert.Equal(valid, PortalAddress.TryParseHost(host, out _));
    }

    [Fact]
    public void Format_Ipv6Host_UsesBrackets()
    {
        Assert.Equal("[::1]:3260", PortalAddress.Format("::1", 3260));
        Assert.Equal("127.0.0.1:0", PortalAddress.Format("127.0.0.1", 0));
    }
}
