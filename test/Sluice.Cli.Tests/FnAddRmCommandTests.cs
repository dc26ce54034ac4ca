using Sluice.Target.Configuration;
using static Sluice.Cli.Tests.CliRun;

namespace Sluice.Cli.Tests;

/// <summary><c>sluice fn add</c> and <c>sluice fn rm</c> against an in-process server.</summary>
public sealed class FnAddRmCommandTests() : InProcessServerTests("fa")
{
    protected override ServerConfig Configure() => new ServerConfig
    {
        DataDir = Dir,
        Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
        Devices = [new DeviceConfig { Name = "pool", Backend = "memory:64MiB" }],
        Targets = [new TargetConfig { Name = "iqn.2026-11.dev.sluice:gold", Luns = [new LunConfig { Backend = "device:pool:16MiB" }] }],
        Functions = [new FunctionConfig { Name = "gold", Targets = ["iqn.2026-11.dev.sluice:gold"] }],
    };

    [Fact]
    public async Task Add_ThenList_ThenRm()
    {
        var (code, output, error) = await RunAsync(
            "fn", "add", "silver", "weight=3", "limit_iops=900", "--target", "iqn.2026-11.dev.sluice:silver",
            "--lun", "device:pool:8MiB", "--lun", "4=device:pool:40MiB:1MiB", "--initiator", "iqn.2026-11.dev.sluice:silver-host",
            "--chap", "silver:secret-of-12", "--portal-group", "1", "--data-dir", Dir);
        Assert.Equal("", error);
        Assert.Equal(0, code);
        Assert.Contains("name: silver\n", output, StringComparison.Ordinal);
        Assert.Contains("weight: 3\n", output, StringComparison.Ordinal);
        Assert.Contains("limit_iops: 900\n", output, StringComparison.Ordinal);

        var target = Config.Targets.Single(t => t.Name == "iqn.2026-11.dev.sluice:silver");
        Assert.Equal(["device:pool:16777216:8388608", "device:pool:41943040:1048576"], target.Luns.Select(l => l.Backend));
        Assert.Equal([0UL, 4UL], target.Luns.Select(l => l.Number));
        Assert.Equal("silver", target.Chap!.User);
        Assert.Equal(["iqn.2026-11.dev.sluice:silver-host"], target.AllowedInitiators);

        (code, output, _) = await RunAsync("fn", "list", "--data-dir", Dir);
        Assert.Equal(0, code);
        Assert.Matches(@"(?m)^silver\s+-\s+-\s+900\s+-\s+3\s+0\s+-\s+iqn\.2026-11\.dev\.sluice:silver$", output);

        (code, output, _) = await RunAsync("fn", "stats", "--data-dir", Dir);
        Assert.Equal(0, code);
        Assert.Matches(@"(?m)^DEVICE\s+FUNCTION\s+IOS\s+BYTES\s+READ\s+WRITTEN\s+QUEUE\s+OUT\s+RES_DISP\s+WT_DISP\s+THROTTLED_MS\s+P50_MS\s+P99_MS\s+P999_MS\s+MAX_MS\s+MISSES\s+SLA_WIN\s+HOLD$", output);
        Assert.Matches(@"(?m)^pool\s+silver\s+0\s+0\s+0\s+0\s", output);

        (code, output, error) = await RunAsync("fn", "rm", "silver", "--data-dir", Dir);
        Assert.Equal("", error);
        Assert.Equal(0, code);
        Assert.Equal("removed function silver (targets: iqn.2026-11.dev.sluice:silver)\n", output);
        Assert.Equal(["gold"], Config.Functions.Select(f => f.Name));
    }

    [Theory]
    [InlineData("--lun", "x=device:pool:1MiB", "expected [N=]device:NAME[:OFFSET]:SIZE", 2)]
    [InlineData("--chap", "nocolon", "--chap: expected USER:SECRET", 2)]
    [InlineData("--lun", "device:pool:1GiB", "does not fit device 'pool'", 1)]
    [InlineData("--lun", "device:pool:0:1MiB", "overlaps target 'iqn.2026-11.dev.sluice:gold'.luns[0]", 1)]
    public async Task Add_BadInput_OneLineError(string option, string value, string expected, int exit)
    {
        var (code, output, error) = await RunAsync(
            "fn", "add", "x", "--target", "iqn.2026-11.dev.sluice:x", "--lun", "device:pool:1MiB", option, value, "--data-dir", Dir);
        Assert.Equal(exit, code);
        Assert.Equal("", output);
        Assert.StartsWith("sluice fn add: ", error, StringComparison.Ordinal);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Equal(["gold"], Config.Functions.Select(f => f.Name));
    }

    [Fact]
    public async Task Rm_Unknown_Fails()
    {
        var (code, _, error) = await RunAsync("fn", "rm", "nope", "--data-dir", Dir);
        Assert.Equal(1, code);
        Assert.Equal("sluice fn rm: no function 'nope'\n", error);
    }
}
