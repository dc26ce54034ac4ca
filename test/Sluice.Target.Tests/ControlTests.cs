using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Pdu;
using Sluice.Qos;
using Sluice.Target.Configuration;
using Sluice.Target.Control;

namespace Sluice.Target.Tests;

/// <summary>The control socket of a running server: list, show, set, stats, and bad requests.</summary>
public sealed class ControlTests : IDisposable
{
    private const string Gold = "iqn.2026-11.dev.sluice:gold";
    private const string Bulk = "iqn.2026-11.dev.sluice:bulk";

    // Short, so the socket path fits sockaddr_un.
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sl-ctl-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    private ServerConfig Config() => new()
    {
        DataDir = _dir,
        Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
        Devices = [new DeviceConfig { Name = "pool", Backend = "memory:32MiB" }],
        Targets =
        [
            new TargetConfig { Name = Gold, Luns = [new LunConfig { Number = 0, Backend = "device:pool:0:16MiB" }] },
            new TargetConfig { Name = Bulk, Luns = [new LunConfig { Number = 0, Backend = "device:pool:16MiB" }] },
        ],
        Functions =
        [
            new FunctionConfig { Name = "gold", Targets = [Gold], ReservationIops = 500, Priority = 1, LatencyTargetMs = 50 },
            new FunctionConfig { Name = "bulk", Targets = [Bulk], LimitIops = 300 },
        ],
    };

    private async Task<TargetServer> StartAsync()
    {
        var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        return server;
    }

    [Fact]
    public async Task SocketFile_InDataDir_Mode0600_RemovedOnStop()
    {
        var server = await StartAsync();
        string path = Path.Combine(_dir, "control.sock");
        Assert.Equal(path, server.ControlSocketPath);
        Assert.True(File.Exists(path));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        await server.DisposeAsync();
        Assert.False(File.Exists(path));
        Assert.Null(server.ControlSocketPath);
    }

    [Fact]
    public async Task StaleSocketFile_IsReplaced()
    {
        Directory.CreateDirectory(_dir);
        string path = Path.Combine(_dir, "control.sock");
        // What a crashed server leaves behind: a file nobody answers on.
        await File.WriteAllTextAsync(path, "");

        await using var server = await StartAsync();
        Assert.Equal(path, server.ControlSocketPath);
        await using var client = await ControlClient.ConnectAsync(path);
        Assert.NotNull(await client.RequestAsync(new JsonObject { ["op"] = "list" }));
    }

    [Fact]
    public async Task SecondServer_SameDataDir_LeavesTheFirstsSocketAlone()
    {
        await using var first = await StartAsync();
        await using var second = await StartAsync();
        Assert.NotNull(first.ControlSocketPath);
        Assert.Null(second.ControlSocketPath);
        await second.StopAsync();
        await using var client = await ControlClient.ConnectAsync(first.ControlSocketPath!);
        Assert.NotNull(await client.RequestAsync(new JsonObject { ["op"] = "list" }));
    }

    [Fact]
    public async Task List_FunctionsInConfigOrder_WithLevelsAndTargets()
    {
        await using var server = await StartAsync();
        await using var client = await ControlClient.ConnectAsync(server.ControlSocketPath!);
        var reply = await client.RequestAsync(new JsonObject { ["op"] = "list" });

        var functions = reply["functions"]!.AsArray();
        Assert.Equal(["gold", "bulk"], functions.Select(f => (string)f!["name"]!));
        Assert.Equal(500, (double)functions[0]!["reservation_iops"]!);
        Assert.Equal(1, (int)functions[0]!["priority"]!);
        Assert.Equal(50, (double)functions[0]!["latency_target_ms"]!);
        Assert.Equal(300, (double)functions[1]!["limit_iops"]!);
        Assert.Equal(1, (double)functions[1]!["weight"]!);
        Assert.Equal(Bulk, (string)functions[1]!["targets"]![0]!);
    }

    [Fact]
    public async Task Show_LevelAndPerDeviceCounters()
    {
        await using var server = await StartAsync();
        await using var session = await LoginAsync(server, Gold);
        await ReadBlockAsync(session, 0);

        await using var client = await ControlClient.ConnectAsync(server.ControlSocketPath!);
        var reply = await client.RequestAsync(new JsonObject { ["op"] = "show", ["name"] = "gold" });
        var f = reply["function"]!;
        Assert.Equal("gold", (string)f["name"]!);
        var device = Assert.Single(f["devices"]!.AsArray())!;
        Assert.Equal("pool", (string)device["device"]!);
        Assert.True((long)device["completed_ios"]! >= 1);
        Assert.True((long)device["completed_bytes"]! >= 512);
    }

    [Fact]
    public async Task Set_AppliesToLiveSession_WithoutDroppingIt()
    {
        await using var server = await StartAsync();
        await using var session = await LoginAsync(server, Bulk);
        await ReadBlockAsync(session, 0);

        await using var client = await ControlClient.ConnectAsync(server.ControlSocketPath!);
        var reply = await client.RequestAsync(new JsonObject
        {
            ["op"] = "set",
            ["name"] = "bulk",
            ["values"] = new JsonObject { ["limit_iops"] = 1000, ["weight"] = 3, ["priority"] = 2, ["reservation_mbps"] = "5" },
        });

        Assert.Equal(1000, (double)reply["function"]!["limit_iops"]!);
        var level = server.Functions.GetServiceLevel("bulk");
        Assert.Equal(new ServiceLevel { LimitIops = 1000, Weight = 3, Priority = 2, ReservationMbps = 5 }, level);
        // Every scheduler of the function has it, and the session still works.
        Assert.Equal(level, server.GetQosSnapshot()["pool"].Functions.Single(s => s.Name == "bulk").ServiceLevel);
        await ReadBlockAsync(session, 1);
        Assert.Equal(1, server.Sessions.Count);
        // The other function is untouched.
        Assert.Equal(500, server.Functions.GetServiceLevel("gold").ReservationIops);
    }

    [Fact]
    public async Task Stats_EveryDeviceAndFunction()
    {
        await using var server = await StartAsync();
        await using var client = await ControlClient.ConnectAsync(server.ControlSocketPath!);
        var reply = await client.RequestAsync(new JsonObject { ["op"] = "stats" });
        var device = Assert.Single(reply["devices"]!.AsArray())!;
        Assert.Equal("pool", (string)device["device"]!);
        Assert.Equal("mclock", (string)device["mode"]!);
        Assert.Equal(["gold", "bulk"], device["functions"]!.AsArray().Select(f => (string)f!["name"]!).Order(StringComparer.Ordinal).Reverse());
    }

    public static TheoryData<string, string> BadRequests() => new()
    {
        { "{\"op\":\"show\",\"name\":\"nope\"}", "no function 'nope'" },
        { "{\"op\":\"set\",\"name\":\"nope\",\"values\":{\"weight\":2}}", "no function 'nope'" },
        { "{\"op\":\"set\",\"name\":\"gold\",\"values\":{\"colour\":2}}", "unknown key 'colour'" },
        { "{\"op\":\"set\",\"name\":\"gold\",\"values\":{\"weight\":\"heavy\"}}", "weight: '\"heavy\"' is not a number" },
        { "{\"op\":\"set\",\"name\":\"gold\",\"values\":{\"weight\":0}}", "weight must be a positive number" },
        { "{\"op\":\"set\",\"name\":\"gold\",\"values\":{\"limit_iops\":-1}}", "limit_iops must be a finite number >= 0" },
        { "{\"op\":\"set\",\"name\":\"gold\",\"values\":{\"limit_iops\":100}}", "reservation 500 IOPS is above the limit 100 IOPS" },
        { "{\"op\":\"set\",\"name\":\"gold\",\"values\":{\"priority\":1.5}}", "priority: must be a whole number" },
        { "{\"op\":\"set\",\"name\":\"gold\",\"values\":{}}", "no values to set" },
        { "{\"op\":\"set\",\"name\":\"gold\"}", "\"values\" must be an object" },
        { "{\"op\":\"show\"}", "missing \"name\"" },
        { "{\"op\":\"reboot\"}", "unknown op 'reboot'" },
        { "{}", "missing \"op\"" },
        { "[1,2]", "request must be a JSON object" },
        { "{\"op\":", "malformed JSON" },
        { "not json at all", "malformed JSON" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task BadRequest_OneLineError_ConnectionKept_LevelUnchanged(string request, string expected)
    {
        await using var server = await StartAsync();
        var before = server.Functions.GetServiceLevel("gold");
        await using var client = await ControlClient.ConnectAsync(server.ControlSocketPath!);

        var reply = JsonNode.Parse(await client.SendLineAsync(request))!.AsObject();
        Assert.False((bool)reply["ok"]!);
        string error = (string)reply["error"]!;
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error);
        Assert.Equal(before, server.Functions.GetServiceLevel("gold"));

        // The same connection still answers.
        var list = await client.RequestAsync(new JsonObject { ["op"] = "list" });
        Assert.Equal(2, list["functions"]!.AsArray().Count);
    }

    [Fact]
    public async Task OverlongRequest_ErrorThenClosed_ServerKeepsServing()
    {
        await using var server = await StartAsync();
        await using (var client = await ControlClient.ConnectAsync(server.ControlSocketPath!))
        {
            var reply = JsonNode.Parse(await client.SendLineAsync(new string('x', 100_000)))!;
            Assert.Contains("longer than", (string)reply["error"]!, StringComparison.Ordinal);
        }

        await using var again = await ControlClient.ConnectAsync(server.ControlSocketPath!);
        Assert.NotNull(await again.RequestAsync(new JsonObject { ["op"] = "stats" }));
    }

    [Fact]
    public async Task ControlClient_NothingListening_SaysSo()
    {
        string path = Path.Combine(_dir, "control.sock");
        var e = await Assert.ThrowsAsync<IOException>(() => ControlClient.ConnectAsync(path));
        Assert.Equal($"no sluice serve control socket at {path}", e.Message);
    }

    private static async Task<RawInitiator> LoginAsync(TargetServer server, string target)
    {
        var c = await RawInitiator.ConnectAsync(server.LocalEndpoints[0]);
        Assert.Equal(0, (await c.LoginAsync("iqn.2026-11.dev.sluice:ctl-host", target)).Class);
        // Clear the power-on unit attention so later commands run.
        for (int i = 0; i < 3; i++)
        {
            await c.SendCommandAsync(new byte[6], 0, read: false);
            var (h, _) = await c.ReceiveAsync();
            c.Acknowledge(h);
            if (h[3] == 0)
                break;
        }
        return c;
    }

    private static async Task ReadBlockAsync(RawInitiator c, int lba)
    {
        await c.SendCommandAsync([0x28, 0, 0, 0, 0, (byte)lba, 0, 0, 1, 0], 512, read: true);
        var (h, _) = await c.ReceiveAsync();
        Assert.Equal(Opcode.DataIn, h.Opcode);
        c.Acknowledge(h);
    }
}
