using Sluice.Cli.Commands;
using Sluice.Target.Configuration;

namespace Sluice.Cli.Tests;

/// <summary><c>sluice serve --metrics</c> and the <c>metrics.listen</c> key.</summary>
public class MetricsFlagTests
{
    private static ServerConfig FileConfig(string metrics) => ConfigLoader.Parse($$"""
        {
          "portals": [ { "host": "127.0.0.1", "port": 3260 } ],
          "targets": [ { "name": "iqn.2026-11.dev.sluice:one", "luns": [ { "backend": "memory:1MiB" } ] } ],
          "metrics": {{metrics}}
        }
        """, "/etc");

    [Fact]
    public void Flag_SetsListen_OverridingTheFile()
    {
        var config = ServeConfigBuilder.Build(new ServeOptions { Metrics = "127.0.0.1:9500" }, FileConfig("""{ "listen": "[::1]:9464" }"""), "/d", "/w");
        ConfigValidator.Validate(config);
        Assert.Equal("127.0.0.1:9500", config.Metrics.Listen);
    }

    [Fact]
    public void File_ListenKept_DefaultOff()
    {
        Assert.Equal("[::1]:9464", ServeConfigBuilder.Build(new ServeOptions(), FileConfig("""{ "listen": "[::1]:9464" }"""), "/d", "/w").Metrics.Listen);
        Assert.Null(ServeConfigBuilder.Build(new ServeOptions(), null, "/d", "/w").Metrics.Listen);
    }

    [Fact]
    public void Flag_NotLoopback_UsageError()
    {
        var e = Assert.Throws<ConfigException>(() => ServeConfigBuilder.Build(new ServeOptions { Metrics = "0.0.0.0:9464" }, null, "/d", "/w"));
        Assert.Equal("--metrics", e.KeyPath);
        Assert.Contains("is not a loopback address", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void File_NotLoopback_NamesTheKey()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigValidator.Validate(FileConfig("""{ "listen": "192.168.1.2:9464" }""")));
        Assert.Equal("metrics.listen", e.KeyPath);
    }

    [Fact]
    public async Task Check_PrintsTheMetricsKey()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = await SluiceCli.RunAsync(["serve", "--lun", "memory:1MiB", "--metrics", "localhost", "--check"], output, error);
        Assert.Equal("", error.ToString());
        Assert.Equal(0, code);
        Assert.Contains("\"listen\": \"localhost\"", output.ToString(), StringComparison.Ordinal);
    }
}
