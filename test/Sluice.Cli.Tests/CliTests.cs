using System.Net;
using Sluice.Cli.Commands;
using Sluice.Target.Configuration;
using static Sluice.Cli.Tests.CliRun;

namespace Sluice.Cli.Tests;

public class CliTests
{
    [Fact]
    public async Task Help_Root_ListsServeAndExitsZero()
    {
        var (code, output, _) = await RunAsync("--help");
        Assert.Equal(0, code);
        Assert.Contains("serve", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoArguments_Root_ShowsHelp()
    {
        var (code, output, _) = await RunAsync();
        Assert.Equal(0, code);
        Assert.Contains("Usage:", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_Root_PrintsVersion()
    {
        var (code, output, _) = await RunAsync("--version");
        Assert.Equal(0, code);
        Assert.StartsWith("0.1.0", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_Serve_ListsEveryFlag()
    {
        var (code, output, _) = await RunAsync("serve", "--help");
        Assert.Equal(0, code);
        foreach (string flag in new[] { "--listen", "--target", "--lun", "--data-dir", "--config", "--chap", "--mutual-chap", "--allow", "--read-only", "--block-size", "--metrics", "--log-level", "--check" })
            Assert.Contains(flag, output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "serve", "--bogus" }, "sluice serve: Unrecognized command or argument '--bogus'. Try 'sluice serve --help'.")]
    [InlineData(new[] { "nope" }, "sluice: Unrecognized command or argument 'nope'. Try 'sluice --help'.")]
    [InlineData(new[] { "serve", "--listen" }, "sluice serve: Required argument missing for option: '--listen'. Try 'sluice serve --help'.")]
    [InlineData(new[] { "serve", "--listen", "::1", "--check" }, "sluice serve: --listen: '::1': write IPv6 addresses in brackets, e.g. [::1]:3260")]
    [InlineData(new[] { "serve", "--block-size", "1024", "--check" }, "sluice serve: --block-size: must be 512 or 4096 (got '1024')")]
    [InlineData(new[] { "serve", "--log-level", "loud", "--check" }, "sluice serve: --log-level: unknown level 'loud' (expected one of: trace, debug, info, warn, error, critical, none)")]
    [InlineData(new[] { "serve", "--mutual-chap", "t:s", "--check" }, "sluice serve: targets[0].mutualChap: requires targets[0].chap (the initiator must authenticate before the target does)")]
    public async Task UsageError_OneLineOnStderr_ExitTwo(string[] args, string expected)
    {
        var (code, output, error) = await RunAsync(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal(expected + Environment.NewLine, error);
    }

    [Fact]
    public async Task Check_MissingConfigFile_ExitTwoNamingFile()
    {
        var (code, _, error) = await RunAsync("serve", "--check", "--config", "/nonexistent/sluice.json");
        Assert.Equal(2, code);
        Assert.StartsWith("sluice serve: /nonexistent/sluice.json: cannot read config file:", error, StringComparison.Ordinal);
        Assert.Single(error.TrimEnd().Split('\n'));
    }

    [Fact]
    public async Task Check_Flags_PrintsEffectiveConfigThatParsesBack()
    {
        var (code, output, error) = await RunAsync(
            "serve", "--check", "--listen", "[::1]:0", "--listen", "127.0.0.1:3261", "--lun", "memory:1MiB", "--lun", "memory:2MiB",
            "--data-dir", "/tmp/sluice-check", "--target", "iqn.2026-11.dev.sluice:check");

        Assert.Equal("", error);
        Assert.Equal(0, code);
        var config = ConfigLoader.Parse(output, "/");
        ConfigValidator.Validate(config);
        Assert.Equal([("::1", 0), ("127.0.0.1", 3261)], config.Portals.Select(p => (p.Host, p.Port)));
        Assert.Equal("/tmp/sluice-check", config.DataDir);
        Assert.Equal([0UL, 1UL], Assert.Single(config.Targets).Luns.Select(l => l.Number));
    }

    [Fact]
    public async Task Check_ChapSecrets_Redacted()
    {
        var (code, output, _) = await RunAsync("serve", "--check", "--chap", "alice:alice-secret-1", "--mutual-chap", "tgt:target-secret-2");
        Assert.Equal(0, code);
        Assert.DoesNotContain("alice-secret-1", output, StringComparison.Ordinal);
        Assert.DoesNotContain("target-secret-2", output, StringComparison.Ordinal);
        Assert.Contains("\"user\": \"alice\"", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_ExampleConfig_ExitZero()
    {
        var (code, _, error) = await RunAsync("serve", "--check", "--config", ConfigLoaderTests.ExamplePath);
        Assert.Equal("", error);
        Assert.Equal(0, code);
    }

    [Theory]
    [InlineData("127.0.0.1", 3260, "iscsi://127.0.0.1:3260/iqn.2026-11.dev.sluice:default/0")]
    [InlineData("::1", 3260, "iscsi://[::1]:3260/iqn.2026-11.dev.sluice:default/0")]
    [InlineData("0.0.0.0", 3261, "iscsi://127.0.0.1:3261/iqn.2026-11.dev.sluice:default/0")]
    [InlineData("::", 3262, "iscsi://[::1]:3262/iqn.2026-11.dev.sluice:default/0")]
    public void Url_Endpoint_LibiscsiFormat(string address, int port, string expected)
    {
        Assert.Equal(expected, ServeCommand.Url(new IPEndPoint(IPAddress.Parse(address), port), "iqn.2026-11.dev.sluice:default", 0));
    }

    [Fact]
    public void Banner_TwoPortalsTwoTargets_ListsPortalsTargetsUrlsAndReady()
    {
        var config = ServeConfigBuilder.Build(
            new ServeOptions { Listen = ["127.0.0.1:0", "[::1]:0"], Luns = ["memory:1MiB", "memory:2MiB"] }, null, "/d", "/");
        config.Portals[1].GroupTag = 2;
        config.Targets.Add(new TargetConfig
        {
            Name = "iqn.2026-11.dev.sluice:only-v6",
            Luns = [new LunConfig { Number = 3, Backend = "memory:1MiB", ReadOnly = true }],
            PortalGroups = [2],
        });
        ConfigValidator.Validate(config);
        IPEndPoint[] bound = [new(IPAddress.Loopback, 40001), new(IPAddress.IPv6Loopback, 40002)];

        string banner = ServeCommand.Banner(config, bound);

        Assert.Equal(
            """
            portal 127.0.0.1:40001 group 1
            portal [::1]:40002 group 2
            target iqn.2026-11.dev.sluice:default
            lun 0 memory:1MiB block-size 512 read-write
            lun 1 memory:2MiB block-size 512 read-write
            url iscsi://127.0.0.1:40001/iqn.2026-11.dev.sluice:default/0
            url iscsi://127.0.0.1:40001/iqn.2026-11.dev.sluice:default/1
            url iscsi://[::1]:40002/iqn.2026-11.dev.sluice:default/0
            url iscsi://[::1]:40002/iqn.2026-11.dev.sluice:default/1
            target iqn.2026-11.dev.sluice:only-v6
            lun 3 memory:1MiB block-size 512 read-only
            url iscsi://[::1]:40002/iqn.2026-11.dev.sluice:only-v6/3
            ready

            """.ReplaceLineEndings("\n"),
            banner);
    }
}
