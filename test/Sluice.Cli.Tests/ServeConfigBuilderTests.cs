using Sluice.Cli.Commands;
using Sluice.Target.Configuration;

namespace Sluice.Cli.Tests;

public class ServeConfigBuilderTests
{
    private const string DefaultDataDir = "/home/u/.local/share/sluice";
    private const string Cwd = "/work/here";

    private static ServerConfig Build(ServeOptions options, ServerConfig? file = null)
    {
        var config = ServeConfigBuilder.Build(options, file, DefaultDataDir, Cwd);
        ConfigValidator.Validate(config);
        return config;
    }

    private static ServerConfig FileConfig() => ConfigLoader.Parse("""
        {
          "dataDir": "/srv/sluice",
          "portals": [ { "host": "0.0.0.0", "port": 3260 } ],
          "targets": [
            { "name": "iqn.2026-11.dev.sluice:one", "luns": [ { "number": 0, "backend": "file:one.img:1GiB" }, { "number": 4, "backend": "memory:1MiB" } ] }
          ]
        }
        """, "/etc");

    [Fact]
    public void Build_NoFlags_DefaultPortalTargetAndLun()
    {
        var config = Build(new ServeOptions());

        Assert.Equal(DefaultDataDir, config.DataDir);
        var portal = Assert.Single(config.Portals);
        Assert.Equal(("127.0.0.1", 3260, (ushort)1), (portal.Host, portal.Port, portal.GroupTag));
        var target = Assert.Single(config.Targets);
        Assert.Equal("iqn.2026-11.dev.sluice:default", target.Name);
        var lun = Assert.Single(target.Luns);
        Assert.Equal(0UL, lun.Number);
        Assert.Equal("file:lun0.img:1GiB", lun.Backend);
        Assert.Equal(512, lun.BlockSize);
        Assert.False(lun.ReadOnly);
        Assert.Null(target.Chap);
        Assert.Empty(target.AllowedInitiators);
    }

    [Fact]
    public void Build_ListenFlags_IPv4AndIPv6InOrder()
    {
        var config = Build(new ServeOptions { Listen = ["127.0.0.1:3260", "[::1]:0", "0.0.0.0", "[::]"] });

        Assert.Equal(
            [("127.0.0.1", 3260), ("::1", 0), ("0.0.0.0", 3260), ("::", 3260)],
            config.Portals.Select(p => (p.Host, p.Port)));
    }

    [Fact]
    public void Build_LunFlags_NumberedInOrderWithoutDefaultLun()
    {
        var config = Build(new ServeOptions { Luns = ["memory:64MiB", "file:disk.img:10G", "block:/dev/loop0"] });

        var luns = Assert.Single(config.Targets).Luns;
        Assert.Equal([0UL, 1UL, 2UL], luns.Select(l => l.Number));
        Assert.Equal(["memory:64MiB", "file:disk.img:10G", "block:/dev/loop0"], luns.Select(l => l.Backend));
    }

    [Fact]
    public void Build_AllTargetFlags_Applied()
    {
        var config = Build(new ServeOptions
        {
            Target = "iqn.2026-11.dev.sluice:t",
            Luns = ["memory:8MiB"],
            Chap = "alice:alice:secret",
            MutualChap = "target:target-secret",
            Allow = ["iqn.2026-11.dev.sluice:client", "iqn.2026-11.dev.sluice:client2"],
            ReadOnly = true,
            BlockSize = "4096",
            DataDir = "rel/dir",
        });

        Assert.Equal(Path.GetFullPath("rel/dir", Cwd), config.DataDir);
        var target = Assert.Single(config.Targets);
        Assert.Equal("iqn.2026-11.dev.sluice:t", target.Name);
        Assert.Equal(("alice", "alice:secret"), (target.Chap!.User, target.Chap.Secret));
        Assert.Equal(("target", "target-secret"), (target.MutualChap!.User, target.MutualChap.Secret));
        Assert.Equal(["iqn.2026-11.dev.sluice:client", "iqn.2026-11.dev.sluice:client2"], target.AllowedInitiators);
        var lun = Assert.Single(target.Luns);
        Assert.True(lun.ReadOnly);
        Assert.Equal(4096, lun.BlockSize);
    }

    [Fact]
    public void Build_ConfigOnly_KeptAsIs()
    {
        var config = Build(new ServeOptions { ConfigPath = "x.json" }, FileConfig());

        Assert.Equal("/srv/sluice", config.DataDir);
        Assert.Equal("0.0.0.0", Assert.Single(config.Portals).Host);
        Assert.Equal(2, Assert.Single(config.Targets).Luns.Count);
    }

    [Fact]
    public void Build_ConfigAndListen_ListenReplacesPortals()
    {
        var config = Build(new ServeOptions { Listen = ["[::1]:3261"] }, FileConfig());
        var portal = Assert.Single(config.Portals);
        Assert.Equal(("::1", 3261), (portal.Host, portal.Port));
    }

    [Fact]
    public void Build_ConfigAndDataDir_DataDirReplaced()
    {
        var config = Build(new ServeOptions { DataDir = "/tmp/d" }, FileConfig());
        Assert.Equal(Path.GetFullPath("/tmp/d"), config.DataDir);
    }

    [Fact]
    public void Build_ConfigWithOneTargetAndLunFlags_ExtendsItAfterHighestLun()
    {
        var config = Build(new ServeOptions { Luns = ["memory:2MiB"], ReadOnly = true }, FileConfig());

        var target = Assert.Single(config.Targets);
        Assert.Equal([0UL, 4UL, 5UL], target.Luns.Select(l => l.Number));
        Assert.All(target.Luns, l => Assert.True(l.ReadOnly));
    }

    [Fact]
    public void Build_ConfigAndNewTargetName_AddsTargetWithDefaultLun()
    {
        var config = Build(new ServeOptions { Target = "iqn.2026-11.dev.sluice:two" }, FileConfig());

        Assert.Equal(2, config.Targets.Count);
        var added = config.Targets[1];
        Assert.Equal("iqn.2026-11.dev.sluice:two", added.Name);
        Assert.Equal("file:lun0.img:1GiB", Assert.Single(added.Luns).Backend);
        Assert.Equal(2, config.Targets[0].Luns.Count);
    }

    [Fact]
    public void Build_ConfigAndExistingTargetName_ChapReplaced()
    {
        var config = Build(new ServeOptions { Target = "iqn.2026-11.dev.sluice:one", Chap = "bob:bob-secret" }, FileConfig());

        var target = Assert.Single(config.Targets);
        Assert.Equal("bob", target.Chap!.User);
        Assert.Equal(2, target.Luns.Count);
    }

    [Fact]
    public void Build_ConfigWithTwoTargetsAndNoTargetFlag_AsksForTarget()
    {
        var file = FileConfig();
        file.Targets.Add(new TargetConfig { Name = "iqn.2026-11.dev.sluice:two", Luns = [new LunConfig { Backend = "memory:1M" }] });

        var e = Assert.Throws<ConfigException>(() => Build(new ServeOptions { Luns = ["memory:1M"] }, file));
        Assert.Equal("--target: needed to say which of the config's 2 targets the target flags apply to", e.Message);
    }

    [Fact]
    public void Build_ConfigWithoutTargetFlags_AddsNoTarget()
    {
        var config = Build(new ServeOptions { Listen = ["127.0.0.1:0"] }, FileConfig());
        Assert.Single(config.Targets);
    }

    [Theory]
    [InlineData("listen", "--listen: '::1:3260': write IPv6 addresses in brackets, e.g. [::1]:3260")]
    [InlineData("listen-port", "--listen: invalid port '70000' (expected 0-65535; 0 picks a free port)")]
    [InlineData("listen-host", "--listen: invalid host 'nas.local' (expected an IPv4 or IPv6 address)")]
    [InlineData("target", "--target: 'default' is not a valid iSCSI name (RFC 7143 §4.2.7.2: iqn./eui./naa.)")]
    [InlineData("lun", "--lun: unknown back end 'disk' (expected memory:, file:, block: or model:)")]
    [InlineData("lun-size", "--lun: invalid size '1Q'")]
    [InlineData("chap", "--chap: expected USER:SECRET with both parts non-empty")]
    [InlineData("chap-empty-secret", "--chap: expected USER:SECRET with both parts non-empty")]
    [InlineData("mutual", "--mutual-chap: expected USER:SECRET with both parts non-empty")]
    [InlineData("allow", "--allow: 'client1' is not a valid iSCSI name")]
    [InlineData("block-size", "--block-size: must be 512 or 4096 (got '1024')")]
    [InlineData("data-dir", "--data-dir: must not be empty")]
    public void Build_BadFlag_ErrorNamesFlag(string which, string expected)
    {
        var options = which switch
        {
            "listen" => new ServeOptions { Listen = ["::1:3260"] },
            "listen-port" => new ServeOptions { Listen = ["127.0.0.1:70000"] },
            "listen-host" => new ServeOptions { Listen = ["nas.local:3260"] },
            "target" => new ServeOptions { Target = "default" },
            "lun" => new ServeOptions { Luns = ["disk:/x"] },
            "lun-size" => new ServeOptions { Luns = ["memory:1Q"] },
            "chap" => new ServeOptions { Chap = "alice" },
            "chap-empty-secret" => new ServeOptions { Chap = "alice:" },
            "mutual" => new ServeOptions { Chap = "a:s1", MutualChap = ":s2" },
            "allow" => new ServeOptions { Allow = ["client1"] },
            "block-size" => new ServeOptions { BlockSize = "1024" },
            "data-dir" => new ServeOptions { DataDir = "" },
            _ => throw new ArgumentOutOfRangeException(nameof(which)),
        };

        var e = Assert.Throws<ConfigException>(() => Build(options));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_MutualChapWithoutChap_ValidatorRejects()
    {
        var e = Assert.Throws<ConfigException>(() => Build(new ServeOptions { MutualChap = "t:target-secret" }));
        Assert.StartsWith("targets[0].mutualChap: requires targets[0].chap", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_MutualChapSameSecret_ValidatorRejects()
    {
        var e = Assert.Throws<ConfigException>(() => Build(new ServeOptions { Chap = "a:same-secret", MutualChap = "t:same-secret" }));
        Assert.StartsWith("targets[0].mutualChap.secret: must differ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DefaultDataDir_EndsInSluice()
    {
        string dir = ServeConfigBuilder.DefaultDataDir();
        Assert.True(Path.IsPathRooted(dir));
        Assert.True(dir.EndsWith("sluice", StringComparison.Ordinal) || dir.EndsWith("sluice-data", StringComparison.Ordinal), dir);
    }
}
