using Sluice.Cli.Commands;
using Sluice.Target.Configuration;
using static Sluice.Cli.Tests.CliRun;

namespace Sluice.Cli.Tests;

/// <summary><c>sluice fn</c> against an in-process server's control socket.</summary>
public sealed class FnCommandTests() : InProcessServerTests("fn")
{
    private string Socket => Path.Combine(Dir, "control.sock");

    protected override ServerConfig Configure() => new ServerConfig
    {
        DataDir = Dir,
        Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
        Devices = [new DeviceConfig { Name = "pool", Backend = "memory:32MiB" }],
        Targets =
        [
            new TargetConfig { Name = "iqn.2026-11.dev.sluice:gold", Luns = [new LunConfig { Backend = "device:pool:0:16MiB" }] },
            new TargetConfig { Name = "iqn.2026-11.dev.sluice:bulk", Luns = [new LunConfig { Backend = "device:pool:16MiB" }] },
        ],
        Functions =
        [
            new FunctionConfig { Name = "gold", Targets = ["iqn.2026-11.dev.sluice:gold"], ReservationIops = 500, Priority = 1, LatencyTargetMs = 50 },
            new FunctionConfig { Name = "bulk", Targets = ["iqn.2026-11.dev.sluice:bulk"], LimitIops = 300 },
        ],
    };

    [Fact]
    public async Task List_DataDir_Table()
    {
        var (code, output, error) = await RunAsync("fn", "list", "--data-dir", Dir);
        Assert.Equal(0, code);
        Assert.Equal("", error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("NAME", lines[0], StringComparison.Ordinal);
        Assert.Matches(@"^gold\s+500\s+-\s+-\s+-\s+1\s+1\s+50\s+iqn\.2026-11\.dev\.sluice:gold$", lines[1]);
        Assert.Matches(@"^bulk\s+-\s+-\s+300\s+-\s+1\s+0\s+-\s+iqn\.2026-11\.dev\.sluice:bulk$", lines[2]);
    }

    [Fact]
    public async Task Set_ThenShow_ControlPath()
    {
        var (code, output, error) = await RunAsync("fn", "set", "bulk", "limit_iops=1000", "weight=2.5", "--control", Socket);
        Assert.Equal(0, code);
        Assert.Equal("", error);
        Assert.Contains("limit_iops: 1000\n", output, StringComparison.Ordinal);
        Assert.Contains("weight: 2.5\n", output, StringComparison.Ordinal);

        (code, output, _) = await RunAsync("fn", "show", "bulk", "--control", Socket);
        Assert.Equal(0, code);
        Assert.Contains("name: bulk\n", output, StringComparison.Ordinal);
        Assert.Contains("limit_iops: 1000\n", output, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^DEVICE\s+IOS\s+BYTES", output);
        Assert.Matches(@"(?m)^pool\s+0\s+0\s", output);
    }

    [Fact]
    public async Task Stats_Table()
    {
        var (code, output, _) = await RunAsync("fn", "stats", "--data-dir", Dir);
        Assert.Equal(0, code);
        Assert.Matches(@"(?m)^DEVICE\s+FUNCTION\s+IOS", output);
        Assert.Matches(@"(?m)^pool\s+gold\s+0\s", output);
        Assert.Matches(@"(?m)^pool\s+bulk\s+0\s", output);
    }

    [Fact]
    public async Task StatsWatch_PrintsRatesUntilCancelled()
    {
        using var text = new StringWriter();
        var output = TextWriter.Synchronized(text); // written by the command, read here meanwhile
        using var error = new StringWriter();
        using var cts = new CancellationTokenSource();
        var run = SluiceCli.RunAsync(["fn", "stats", "--watch", "--interval", "0.2", "--data-dir", Dir], output, error, cts.Token);
        // Cancel once two tables are out (the first rates need two samples), or after 20 s on a
        // loaded machine: the command keeps printing until then.
        string Printed()
        {
            lock (output)
                return text.ToString();
        }
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (System.Text.RegularExpressions.Regex.Matches(Printed(), "(?m)^DEVICE").Count < 2 && DateTime.UtcNow < deadline && !run.IsCompleted)
            await Task.Delay(50);
        await cts.CancelAsync();
        int code = await run;
        Assert.Equal(0, code);
        Assert.Matches(@"(?m)^DEVICE\s+FUNCTION\s+IOPS\s+MB/S", Printed());
        Assert.Matches(@"(?m)^pool\s+gold\s+0\s+0\.0\s", Printed());
    }

    [Theory]
    [InlineData("fn set nope weight=2", "sluice fn set: no function 'nope'")]
    [InlineData("fn show nope", "sluice fn show: no function 'nope'")]
    [InlineData("fn set gold limit_iops=100", "sluice fn set: reservation 500 IOPS is above the limit 100 IOPS")]
    [InlineData("fn set gold weight=0", "sluice fn set: weight must be a positive number (got 0)")]
    public async Task ServerRefuses_OneLine_Exit1(string command, string expected)
    {
        var (code, output, error) = await RunAsync([.. command.Split(' '), "--data-dir", Dir]);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Equal(expected + Environment.NewLine, error);
    }

    [Theory]
    [InlineData("fn set gold colour=2", "sluice fn set: unknown key 'colour'")]
    [InlineData("fn set gold weight=heavy", "sluice fn set: weight: 'heavy' is not a number")]
    [InlineData("fn set gold weight", "sluice fn set: 'weight' is not key=value")]
    [InlineData("fn set gold", "sluice fn set: ")]
    [InlineData("fn show", "sluice fn show: ")]
    [InlineData("fn stats --interval 0", "sluice fn stats: --interval must be")]
    public async Task UsageErrors_Exit2(string command, string expected)
    {
        var (code, _, error) = await RunAsync([.. command.Split(' '), "--data-dir", Dir]);
        Assert.Equal(2, code);
        Assert.StartsWith(expected, error, StringComparison.Ordinal);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task BothControlAndDataDir_Exit2()
    {
        var (code, _, error) = await RunAsync("fn", "list", "--data-dir", Dir, "--control", Socket);
        Assert.Equal(2, code);
        Assert.Equal("sluice fn list: give --control or --data-dir, not both" + Environment.NewLine, error);
    }

    [Fact]
    public async Task NoServer_Exit1_NamesThePath()
    {
        string path = Path.Combine(Dir, "nothing-here.sock");
        var (code, _, error) = await RunAsync("fn", "list", "--control", path);
        Assert.Equal(1, code);
        Assert.Equal($"sluice fn list: no sluice serve control socket at {path}" + Environment.NewLine, error);
    }

    [Fact]
    public void ServeBanner_NamesTheControlSocket_BeforeReady()
    {
        var config = new ServerConfig { DataDir = Dir };
        Assert.EndsWith($"control {Socket}\nready\n", ServeCommand.Banner(config, [], Socket), StringComparison.Ordinal);
        Assert.DoesNotContain("control ", ServeCommand.Banner(config, []), StringComparison.Ordinal);
    }

    [Fact]
    public void SocketPath_DefaultIsServesDataDir()
    {
        Assert.Equal(Path.Combine(ServeConfigBuilder.DefaultDataDir(), "control.sock"), FnCommand.SocketPath(null, null));
        Assert.Equal("/x/control.sock", FnCommand.SocketPath(null, "/x"));
        Assert.Equal("/y/c.sock", FnCommand.SocketPath("/y/c.sock", null));
    }
}
