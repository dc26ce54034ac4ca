using System.Text.RegularExpressions;
using Sluice.Target.Configuration;

namespace Sluice.Cli.Tests;

public class ConfigLoaderTests
{
    private const string Base = "/etc/sluice";

    internal static string ExamplePath => Path.Combine(AppContext.BaseDirectory, "Assets", "sluice.example.json");

    [Fact]
    public void Load_ExampleConfig_LoadsAndValidates()
    {
        var config = ConfigLoader.Load(ExamplePath);

        Assert.Equal(3, config.Portals.Count);
        Assert.Equal("::1", config.Portals[1].Host);
        Assert.Equal(4, config.Targets.Count);
        Assert.Equal("iqn.2026-11.dev.sluice:default", config.Targets[0].Name);
        Assert.Equal("pool", Assert.Single(config.Devices).Name);
        Assert.Equal(["gold", "bulk"], config.Functions.Select(f => f.Name));
        Assert.Equal("mclock", config.Qos.Mode);
        Assert.Equal(4096, config.Targets[0].Luns[1].BlockSize);
        Assert.Equal("write-through", config.Targets[0].Luns[1].CacheMode);
        Assert.True(config.Targets[1].Luns[0].ReadOnly);
        Assert.Equal([(ushort)2], config.Targets[1].PortalGroups);
        Assert.NotNull(config.Targets[1].MutualChap);
        Assert.NotNull(config.DiscoveryChap);
        Assert.True(Path.IsPathRooted(config.DataDir));
    }

    [Fact]
    public void Load_ExampleConfig_StatesEveryLimitDefault()
    {
        // The example's limits block documents the defaults: it must match LimitsConfig.
        var config = ConfigLoader.Load(ExamplePath);
        Assert.Equal(ConfigLoader.ToJson(new ServerConfig { Limits = new LimitsConfig() }).Split("\"limits\"")[1],
            ConfigLoader.ToJson(new ServerConfig { Limits = config.Limits }).Split("\"limits\"")[1]);
    }

    [Fact]
    public void Parse_CommentsTrailingCommasAnyCase_Accepted()
    {
        const string json = """
            // comment
            {
              /* block comment */
              "Portals": [ { "HOST": "::1", "port": 0, }, ],
              "targets": [ { "name": "iqn.2026-11.dev.sluice:x", "luns": [ { "backend": "memory:1M" } ] } ],
            }
            """;
        var config = ConfigLoader.Parse(json, Base);

        Assert.Equal("::1", config.Portals[0].Host);
        Assert.Equal(0, config.Portals[0].Port);
        Assert.Equal(0UL, config.Targets[0].Luns[0].Number);
        ConfigValidator.Validate(config);
    }

    [Fact]
    public void Parse_NoDataDir_DefaultsToDataNextToConfigFile()
    {
        var config = ConfigLoader.Parse("{}", Base);
        Assert.Equal(Path.GetFullPath("data", Base), config.DataDir);
    }

    [Theory]
    [InlineData("sluice-data", "/etc/sluice/sluice-data")]
    [InlineData("../var", "/etc/var")]
    [InlineData("/srv/sluice", "/srv/sluice")]
    public void Parse_DataDir_ResolvedAgainstConfigDirectory(string dataDir, string expected)
    {
        var config = ConfigLoader.Parse($$"""{ "dataDir": "{{dataDir}}" }""", Base);
        Assert.Equal(Path.GetFullPath(expected), config.DataDir);
    }

    [Fact]
    public void Parse_DefaultsWhenKeysOmitted_MatchDocumentedDefaults()
    {
        var config = ConfigLoader.Parse("""{ "targets": [ { "name": "iqn.2026-11.dev.sluice:x", "luns": [ {} ] } ] }""", Base);
        var lun = config.Targets[0].Luns[0];
        Assert.Equal(512, lun.BlockSize);
        Assert.Equal("write-back", lun.CacheMode);
        Assert.False(lun.ReadOnly);
        Assert.False(lun.Removable);
        Assert.Null(lun.Serial);
        Assert.Empty(config.Targets[0].AllowedInitiators);
        Assert.Empty(config.Targets[0].PortalGroups);
        Assert.Null(config.Targets[0].Chap);
        Assert.Empty(config.Portals);
        Assert.Equal(64, config.Limits.MaxSessions);
    }

    [Theory]
    [InlineData("""{ "portalz": [] }""", "line 1: portalz: unknown property 'portalz'")]
    [InlineData("""
        {
          "targets": [
            { "name": "iqn.2026-11.dev.sluice:x", "luns": [ { "number": 0, "blocksize2": 512 } ] }
          ]
        }
        """, "line 3: targets[0].luns[0].blocksize2: unknown property 'blocksize2'")]
    [InlineData("""{ "limits": { "maxBurst": 1 } }""", "line 1: limits.maxBurst: unknown property 'maxBurst'")]
    [InlineData("""{ "targets": [ { "luns": [ { "blockSize": "4096" } ] } ] }""", "line 1: targets[0].luns[0].blockSize: expected a whole number")]
    [InlineData("""{ "targets": [ { "luns": [ { "number": -1 } ] } ] }""", "line 1: targets[0].luns[0].number: expected a whole number from 0 up")]
    [InlineData("""{ "portals": [ { "groupTag": 70000 } ] }""", "line 1: portals[0].groupTag: expected a whole number from 0 to 65535")]
    [InlineData("""{ "limits": { "immediateData": "yes" } }""", "line 1: limits.immediateData: expected true or false")]
    [InlineData("""{ "portals": {} }""", "line 1: portals: expected an array")]
    [InlineData("""{ "limits": 5 }""", "line 1: limits: expected an object")]
    [InlineData("""{ "dataDir": 5 }""", "line 1: dataDir: expected a string")]
    [InlineData("{ \"portals\": [ \n  { \"host\" \"::1\" } ] }", "line 2: portals[0]: invalid JSON:")]
    [InlineData("{", "line 1: invalid JSON:")]
    [InlineData("null", "$: the config must be a JSON object, not null")]
    public void Parse_BadJson_OneLineWithLineAndKeyPath(string json, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(json, Base));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Read_MissingFile_NamesFile()
    {
        string path = Path.Combine(Path.GetTempPath(), $"sluice-missing-{Guid.NewGuid():N}.json");
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Read(path));
        Assert.StartsWith($"{path}: cannot read config file:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_BadFile_PrefixesPath()
    {
        string path = Path.Combine(Path.GetTempPath(), $"sluice-bad-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "{\n  \"nope\": 1\n}\n");
        try
        {
            var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(path));
            Assert.Equal($"{path}: line 2: nope: unknown property 'nope'", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ToJson_ThenParse_RoundTrips()
    {
        var config = ConfigValidatorTests.Valid();
        var again = ConfigLoader.Parse(ConfigLoader.ToJson(config), Base);
        Assert.Equal(ConfigLoader.ToJson(config), ConfigLoader.ToJson(again));
    }

    [Fact]
    public void Docs_EveryConfigKey_IsDocumented()
    {
        string docs = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Assets", "configuration.md"));
        var documented = Regex.Matches(docs, "`([a-zA-Z0-9.\\[\\]]+)`").Select(m => m.Groups[1].Value).ToHashSet();
        var missing = Keys(typeof(ServerConfig), "").Where(k => !documented.Contains(k)).ToList();
        Assert.True(missing.Count == 0, "undocumented keys: " + string.Join(", ", missing));
    }

    // Every key path as the docs write it: portals[].host, targets[].luns[].blockSize, limits.maxSessions...
    private static IEnumerable<string> Keys(Type type, string prefix)
    {
        foreach (var property in type.GetProperties())
        {
            string name = prefix + char.ToLowerInvariant(property.Name[0]) + property.Name[1..];
            yield return name;
            var t = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>))
            {
                t = t.GetGenericArguments()[0];
                name += "[]";
            }
            if (t.Namespace == typeof(ServerConfig).Namespace)
            {
                foreach (string key in Keys(t, name + "."))
                    yield return key;
            }
        }
    }
}
