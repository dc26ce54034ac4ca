using Sluice.Target.Configuration;

namespace Sluice.Cli.Tests;

public class ConfigValidatorTests
{
    /// <summary>A small valid config; each case below breaks one thing.</summary>
    internal static ServerConfig Valid() => new()
    {
        DataDir = "/var/lib/sluice",
        Portals = [new PortalConfig { Host = "127.0.0.1", Port = 3260 }, new PortalConfig { Host = "::1", Port = 3260, GroupTag = 2 }],
        Targets =
        [
            new TargetConfig
            {
                Name = "iqn.2026-11.dev.sluice:a",
                Luns =
                [
                    new LunConfig { Number = 0, Backend = "file:a0.img:1GiB" },
                    new LunConfig { Number = 1, Backend = "memory:64MiB", BlockSize = 4096 },
                ],
            },
            new TargetConfig
            {
                Name = "iqn.2026-11.dev.sluice:b",
                Luns = [new LunConfig { Number = 0, Backend = "file:b0.img:1GiB" }],
                Chap = new ChapConfig { User = "alice", Secret = "alice-secret-1" },
            },
        ],
    };

    private static readonly Dictionary<string, Action<ServerConfig>> s_breakages = new()
    {
        ["dataDir empty"] = c => c.DataDir = "",
        ["no portals"] = c => c.Portals = [],
        ["null portals"] = c => c.Portals = null!,
        ["bad host"] = c => c.Portals[0].Host = "x::y::z",
        ["hostname"] = c => c.Portals[0].Host = "example.com",
        ["bad port"] = c => c.Portals[0].Port = 70000,
        ["duplicate portal"] = c => c.Portals.Add(new PortalConfig { Host = "127.0.0.1", Port = 3260 }),
        ["no targets"] = c => c.Targets = [],
        ["bad name"] = c => c.Targets[0].Name = "target0",
        ["empty name"] = c => c.Targets[0].Name = "",
        ["duplicate target"] = c => c.Targets[1].Name = "iqn.2026-11.dev.sluice:a",
        ["alias control char"] = c => c.Targets[0].Alias = "a\nb",
        ["no luns"] = c => c.Targets[0].Luns = [],
        ["lun number too big"] = c => c.Targets[0].Luns[1].Number = 16384,
        ["duplicate lun"] = c => c.Targets[0].Luns[1].Number = 0,
        ["block size"] = c => c.Targets[0].Luns[1].BlockSize = 1024,
        ["cache mode"] = c => c.Targets[0].Luns[0].CacheMode = "writeback",
        ["serial too long"] = c => c.Targets[0].Luns[0].Serial = new string('s', 65),
        ["empty backend"] = c => c.Targets[0].Luns[0].Backend = "",
        ["unknown backend"] = c => c.Targets[0].Luns[0].Backend = "nbd:host",
        ["bad size"] = c => c.Targets[0].Luns[0].Backend = "memory:12XB",
        ["size not whole blocks"] = c => c.Targets[0].Luns[1].Backend = "memory:1000",
        ["relative block device"] = c => c.Targets[0].Luns[0].Backend = "block:sdb",
        ["shared file"] = c => c.Targets[1].Luns[0].Backend = "file:/var/lib/sluice/a0.img",
        ["bad initiator"] = c => c.Targets[0].AllowedInitiators = ["iqn.2026-11.dev.sluice:ok", "bob"],
        ["duplicate initiator"] = c => c.Targets[0].AllowedInitiators = ["iqn.2026-11.dev.sluice:x", "iqn.2026-11.dev.sluice:x"],
        ["chap user empty"] = c => c.Targets[1].Chap!.User = "",
        ["chap secret empty"] = c => c.Targets[1].Chap!.Secret = "",
        ["mutual without chap"] = c => c.Targets[0].MutualChap = new ChapConfig { User = "t", Secret = "target-secret" },
        ["mutual same secret"] = c => c.Targets[1].MutualChap = new ChapConfig { User = "t", Secret = "alice-secret-1" },
        ["mutual secret empty"] = c => c.Targets[1].MutualChap = new ChapConfig { User = "t", Secret = "" },
        ["discovery chap user empty"] = c => c.DiscoveryChap = new ChapConfig { User = "", Secret = "s" },
        ["unknown portal group"] = c => c.Targets[0].PortalGroups = [1, 5],
        ["max burst too big"] = c => c.Limits.MaxBurstLength = 16_777_216,
        ["max burst too small"] = c => c.Limits.MaxBurstLength = 511,
        ["first burst above max"] = c => c.Limits.FirstBurstLength = 2 * c.Limits.MaxBurstLength,
        ["mrdsl"] = c => c.Limits.MaxRecvDataSegmentLength = 100,
        ["erl"] = c => c.Limits.MaxErrorRecoveryLevel = 2,
        ["sessions"] = c => c.Limits.MaxSessions = 0,
        ["connections"] = c => c.Limits.MaxConnectionsPerSession = 0,
        ["window"] = c => c.Limits.CommandWindow = 0,
        ["r2t"] = c => c.Limits.MaxOutstandingR2T = 0,
        ["time2wait"] = c => c.Limits.DefaultTime2Wait = 3601,
        ["time2retain"] = c => c.Limits.DefaultTime2Retain = -1,
        ["transfer"] = c => c.Limits.MaxTransferLength = 100,
        ["login timeout"] = c => c.Limits.LoginTimeoutSeconds = 0,
        ["nop interval"] = c => c.Limits.NopInIntervalSeconds = -1,
        ["nop timeout"] = c => c.Limits.NopInTimeoutSeconds = 0,
        ["null limits"] = c => c.Limits = null!,
    };

    [Fact]
    public void Validate_ValidConfig_DoesNotThrow()
    {
        ConfigValidator.Validate(Valid());
    }

    [Theory]
    [InlineData("dataDir empty", "dataDir: must not be empty")]
    [InlineData("no portals", "portals: at least one portal is required")]
    [InlineData("null portals", "portals: at least one portal is required")]
    [InlineData("bad host", "portals[0].host: invalid host 'x::y::z' (expected an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::1)")]
    [InlineData("hostname", "portals[0].host: invalid host 'example.com'")]
    [InlineData("bad port", "portals[0].port: must be between 0 and 65535 (got 70000); 0 picks a free port")]
    [InlineData("duplicate portal", "portals[2]: duplicate portal 127.0.0.1:3260 (same as portals[0])")]
    [InlineData("no targets", "targets: at least one target is required")]
    [InlineData("bad name", "targets[0].name: 'target0' is not a valid iSCSI name (RFC 7143 §4.2.7.2: iqn./eui./naa.)")]
    [InlineData("empty name", "targets[0].name: must not be empty")]
    [InlineData("duplicate target", "targets[1].name: duplicate target 'iqn.2026-11.dev.sluice:a' (same as targets[0])")]
    [InlineData("alias control char", "targets[0].alias: must not contain control characters")]
    [InlineData("no luns", "targets[0].luns: at least one LUN is required")]
    [InlineData("lun number too big", "targets[0].luns[1].number: must be between 0 and 16383 (got 16384)")]
    [InlineData("duplicate lun", "targets[0].luns[1].number: duplicate LUN 0 (same as targets[0].luns[0])")]
    [InlineData("block size", "targets[0].luns[1].blockSize: must be 512 or 4096 (got 1024)")]
    [InlineData("cache mode", "targets[0].luns[0].cacheMode: must be write-back or write-through (got 'writeback')")]
    [InlineData("serial too long", "targets[0].luns[0].serial: must be at most 64 characters (got 65)")]
    [InlineData("empty backend", "targets[0].luns[0].backend: empty back-end spec")]
    [InlineData("unknown backend", "targets[0].luns[0].backend: unknown back end 'nbd'")]
    [InlineData("bad size", "targets[0].luns[0].backend: invalid size '12XB'")]
    [InlineData("size not whole blocks", "targets[0].luns[1].backend: size 1000 bytes is not a whole number of 4096-byte blocks")]
    [InlineData("relative block device", "targets[0].luns[0].backend: block device path 'sdb' must be absolute")]
    [InlineData("shared file", "targets[1].luns[0].backend: '/var/lib/sluice/a0.img' is already used by targets[0].luns[0]")]
    [InlineData("bad initiator", "targets[0].allowedInitiators[1]: 'bob' is not a valid iSCSI name")]
    [InlineData("duplicate initiator", "targets[0].allowedInitiators[1]: 'iqn.2026-11.dev.sluice:x' is listed twice")]
    [InlineData("chap user empty", "targets[1].chap.user: must not be empty")]
    [InlineData("chap secret empty", "targets[1].chap.secret: must not be empty")]
    [InlineData("mutual without chap", "targets[0].mutualChap: requires targets[0].chap")]
    [InlineData("mutual same secret", "targets[1].mutualChap.secret: must differ from targets[1].chap.secret (RFC 7143 §12.1.3)")]
    [InlineData("mutual secret empty", "targets[1].mutualChap.secret: must not be empty")]
    [InlineData("discovery chap user empty", "discoveryChap.user: must not be empty")]
    [InlineData("unknown portal group", "targets[0].portalGroups[1]: no portal has groupTag 5")]
    [InlineData("max burst too big", "limits.maxBurstLength: must be between 512 and 16777215 (got 16777216)")]
    [InlineData("max burst too small", "limits.maxBurstLength: must be between 512 and 16777215 (got 511)")]
    [InlineData("first burst above max", "limits.firstBurstLength: must not exceed limits.maxBurstLength (2097152 > 1048576, RFC 7143 §13.14)")]
    [InlineData("mrdsl", "limits.maxRecvDataSegmentLength: must be between 512 and 16777215 (got 100)")]
    [InlineData("erl", "limits.maxErrorRecoveryLevel: must be between 0 and 1 (got 2)")]
    [InlineData("sessions", "limits.maxSessions: must be between 1 and 65535 (got 0)")]
    [InlineData("connections", "limits.maxConnectionsPerSession: must be between 1 and 65535 (got 0)")]
    [InlineData("window", "limits.commandWindow: must be between 1 and 65535 (got 0)")]
    [InlineData("r2t", "limits.maxOutstandingR2T: must be between 1 and 65535 (got 0)")]
    [InlineData("time2wait", "limits.defaultTime2Wait: must be between 0 and 3600 (got 3601)")]
    [InlineData("time2retain", "limits.defaultTime2Retain: must be between 0 and 3600 (got -1)")]
    [InlineData("transfer", "limits.maxTransferLength: must be between 512 and 1073741824 (got 100)")]
    [InlineData("login timeout", "limits.loginTimeoutSeconds: must be between 1 and 3600 (got 0)")]
    [InlineData("nop interval", "limits.nopInIntervalSeconds: must be between 0 and 3600 (got -1)")]
    [InlineData("nop timeout", "limits.nopInTimeoutSeconds: must be between 1 and 3600 (got 0)")]
    [InlineData("null limits", "limits: must be an object, not null")]
    public void Validate_BrokenConfig_ThrowsOneLineNamingKey(string breakage, string expected)
    {
        var config = Valid();
        s_breakages[breakage](config);

        var e = Assert.Throws<ConfigException>(() => ConfigValidator.Validate(config));

        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(e.Message, $"{e.KeyPath}: {e.Problem}");
    }

    [Fact]
    public void Breakages_EveryOneHasATestCase_NoneForgotten()
    {
        var cases = typeof(ConfigValidatorTests).GetMethod(nameof(Validate_BrokenConfig_ThrowsOneLineNamingKey))!
            .GetCustomAttributes(typeof(InlineDataAttribute), false)
            .Cast<InlineDataAttribute>()
            .Select(a => (string)a.GetData(null!).First()[0])
            .ToHashSet();
        Assert.Equal(s_breakages.Keys.Order(), cases.Order());
    }

    [Fact]
    public void Validate_PortZeroTwice_AllowsBothEphemeralPortals()
    {
        var config = Valid();
        config.Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }, new PortalConfig { Host = "127.0.0.1", Port = 0 }];
        config.Targets[1].MutualChap = new ChapConfig { User = "t", Secret = "another-secret" };

        ConfigValidator.Validate(config);
    }

    [Fact]
    public void Validate_LunNumber16383_IsAccepted()
    {
        var config = Valid();
        config.Targets[0].Luns[1].Number = ConfigValidator.MaxLunNumber;
        ConfigValidator.Validate(config);
    }
}
