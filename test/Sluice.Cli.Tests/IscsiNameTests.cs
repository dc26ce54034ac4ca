using Sluice.Target.Configuration;

namespace Sluice.Cli.Tests;

public class IscsiNameTests
{
    [Theory]
    [InlineData("iqn.2026-11.dev.sluice:default")]
    [InlineData("iqn.2026-11.dev.sluice")]
    [InlineData("iqn.1994-05.com.redhat:5f2f1c3b9e0")]
    [InlineData("iqn.2001-04.com.example:storage:diskarrays-sn-a8675309")]
    [InlineData("eui.02004567a425678d")]
    [InlineData("naa.52004567ba64678d")]
    [InlineData("naa.62004567ba64678d0123456789abcdef")]
    public void TryValidate_WellFormedName_Accepts(string name)
    {
        Assert.True(IscsiName.TryValidate(name, out string? problem), problem);
    }

    [Theory]
    [InlineData("", "must not be empty")]
    [InlineData("iqn.2026-11.dev.Sluice:x", "must be lower case")]
    [InlineData("iqn.2026-11.dev.sluice:a_b", "contains '_'")]
    [InlineData("iqn.2026-11.dev.sluice:a b", "contains ' '")]
    [InlineData("target0", "not a valid iSCSI name (RFC 7143 §4.2.7.2: iqn./eui./naa.)")]
    [InlineData("iqn.2026-13.dev.sluice", "not a valid iSCSI name")]
    [InlineData("iqn.26-11.dev.sluice", "not a valid iSCSI name")]
    [InlineData("iqn.2026-11", "not a valid iSCSI name")]
    [InlineData("iqn.2026-11.:x", "not a valid iSCSI name")]
    [InlineData("iqn.2026-11.dev..sluice", "not a valid iSCSI name")]
    [InlineData("iqn.2026-11.dev.sluice:", "not a valid iSCSI name")]
    [InlineData("eui.02004567a425678", "not a valid iSCSI name")]
    [InlineData("naa.52004567ba64678dxx", "not a valid iSCSI name")]
    public void TryValidate_MalformedName_ExplainsProblem(string name, string expected)
    {
        Assert.False(IscsiName.TryValidate(name, out string? problem));
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void TryValidate_LongerThan223Bytes_Rejects()
    {
        string name = "iqn.2026-11.dev.sluice:" + new string('a', 201);
        Assert.Equal(224, name.Length);
        Assert.False(IscsiName.TryValidate(name, out string? problem));
        Assert.Contains("223", problem, StringComparison.Ordinal);
        Assert.True(IscsiName.TryValidate(name[..223], out _));
    }
}
