using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Iscsi.Login;
using Sluice.Target.Configuration;
using Sluice.Target.Control;
using Ini = Sluice.Initiator;

namespace Sluice.Target.Tests;

/// <summary>
/// fn add / fn rm through the control socket, tenant isolation, and fn set under running I/O,
/// seen by the Sluice.Initiator library as a tenant would.
/// </summary>
public sealed class FunctionLifecycleTests : IDisposable
{
    private const string Gold = "iqn.2026-11.dev.sluice:gold";
    private const string Silver = "iqn.2026-11.dev.sluice:silver";
    private const string GoldHost = "iqn.2026-11.dev.sluice:gold-host";
    private const string SilverHost = "iqn.2026-11.dev.sluice:silver-host";

    // Short, so the control socket path fits sockaddr_un.
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sl-fn-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    private ServerConfig Config(string pool = "memory:32MiB") => new()
    {
        DataDir = _dir,
        Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
        Devices = [new DeviceConfig { Name = "pool", Backend = pool }],
        Targets =
        [
            new TargetConfig
            {
                Name = Gold,
                AllowedInitiators = [GoldHost],
                Luns = [new LunConfig { Number = 0, Backend = "device:pool:8MiB" }, new LunConfig { Number = 1, Backend = "device:pool:4MiB" }],
            },
        ],
        Functions = [new FunctionConfig { Name = "gold", Targets = [Gold], ReservationIops = 100 }],
    };

    private static JsonObject AddSilver(string lun = "device:pool:8MiB") => new()
    {
        ["op"] = "add",
        ["name"] = "silver",
        ["target"] = Silver,
        ["luns"] = new JsonArray(lun, new JsonObject { ["number"] = 5, ["backend"] = "device:pool:1MiB" }),
        ["initiators"] = new JsonArray(SilverHost),
        ["values"] = new JsonObject { ["weight"] = 2, ["limit_iops"] = 5000 },
    };

    private static Ini.IscsiClientOptions As(string initiator) => new() { InitiatorName = initiator, LoginTimeout = TimeSpan.FromSeconds(5) };

    private static async Task<List<string>> DiscoverAsync(TargetServer server, string initiator) =>
        [.. (await Ini.IscsiDiscovery.SendTargetsAsync("127.0.0.1", server.LocalEndpoints[0].Port, As(initiator))).Select(t => t.TargetName)];

    private static Task<Ini.IscsiSession> LoginAsync(TargetServer server, string initiator, string target) =>
        Ini.IscsiSession.ConnectAsync("127.0.0.1", server.LocalEndpoints[0].Port, target, As(initiator));

    [Fact]
    public async Task Add_NewTenantDiscoversLogsInAndDoesScheduledIo()
    {
        await using var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        await using var control = await ControlClient.ConnectAsync(server.ControlSocketPath!);

        var reply = await control.RequestAsync(AddSilver());
        Assert.Equal(2, (double)reply["function"]!["weight"]!);
        Assert.Equal(Silver, (string)reply["function"]!["targets"]![0]!);
        // Without an offset the slice takes the first free range: after gold's 12 MiB.
        var lun0 = server.Config.Targets.Single(t => t.Name == Silver).Luns[0];
        Assert.Equal("device:pool:12582912:8388608", lun0.Backend);

        Assert.Equal([Silver], await DiscoverAsync(server, SilverHost));
        Assert.Equal([Gold], await DiscoverAsync(server, GoldHost));

        await using var session = await LoginAsync(server, SilverHost, Silver);
        Assert.Equal([0, 5], await Ini.IscsiLun.ReportLunsAsync(session));
        await using var lun = await Ini.IscsiLun.OpenAsync(session, 0);
        var data = new byte[4096];
        Random.Shared.NextBytes(data);
        await lun.WriteAsync(8, data);
        var back = new byte[4096];
        await lun.ReadAsync(8, back);
        Assert.Equal(data, back);

        var silver = server.GetQosSnapshot()["pool"].Functions.Single(f => f.Name == "silver");
        Assert.True(silver.CompletedIos >= 2, $"{silver.CompletedIos} I/Os scheduled");
        Assert.Equal(2, silver.ServiceLevel.Weight);
        Assert.Equal(5000, silver.ServiceLevel.LimitIops);
    }

    public static TheoryData<string, string> BadAdds() => new()
    {
        { "{\"op\":\"add\",\"name\":\"gold\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:pool:1MiB\"]}", "duplicate function 'gold'" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"" + Gold + "\",\"luns\":[\"device:pool:1MiB\"]}", "duplicate target" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:pool:0:1MiB\"]}", "overlaps target 'iqn.2026-11.dev.sluice:gold'.luns[0]" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:pool:64MiB\"]}", "does not fit device 'pool'" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:nope:1MiB\"]}", "unknown device 'nope'" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"memory:1MiB\"]}", "must be a slice of a configured device" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"not an iqn\",\"luns\":[\"device:pool:1MiB\"]}", "target 'not an iqn'.name" },
        { "{\"op\":\"add\",\"name\":\"bad name\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:pool:1MiB\"]}", "invalid name 'bad name'" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:pool:1MiB\"],\"initiators\":[\"bogus\"]}", "allowedInitiators[0]" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:pool:1MiB\"],\"portal_groups\":[7]}", "no portal has groupTag 7" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:pool:1MiB\"],\"chap\":{\"user\":\"u\"}}", "chap: missing \"secret\"" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[\"device:pool:1MiB\"],\"values\":{\"weight\":0}}", "weight must be a positive number" },
        { "{\"op\":\"add\",\"name\":\"x\",\"target\":\"iqn.2026-11.dev.sluice:x\",\"luns\":[]}", "\"luns\" must be a non-empty array" },
        { "{\"op\":\"add\",\"name\":\"x\",\"luns\":[\"device:pool:1MiB\"]}", "missing \"target\"" },
        { "{\"op\":\"rm\",\"name\":\"nope\"}", "no function 'nope'" },
    };

    [Theory]
    [MemberData(nameof(BadAdds))]
    public async Task BadAddOrRm_ClearError_NothingChanges(string request, string expected)
    {
        await using var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        await using var control = await ControlClient.ConnectAsync(server.ControlSocketPath!);

        var reply = JsonNode.Parse(await control.SendLineAsync(request))!.AsObject();
        Assert.False((bool)reply["ok"]!);
        Assert.Contains(expected, (string)reply["error"]!, StringComparison.Ordinal);
        Assert.Equal(["gold"], server.Functions.FunctionNames);
        Assert.Single(server.Config.Targets);
        Assert.Single(server.Config.Functions);
        Assert.Equal([Gold], await DiscoverAsync(server, GoldHost));
    }

    [Fact]
    public async Task Rm_EndsItsSessions_LeavesDiscovery_FreesSlices_OthersUnaffected()
    {
        await using var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        await using var control = await ControlClient.ConnectAsync(server.ControlSocketPath!);
        await control.RequestAsync(AddSilver());

        await using var gold = await LoginAsync(server, GoldHost, Gold);
        await using var goldLun = await Ini.IscsiLun.OpenAsync(gold, 0);
        var silver = await LoginAsync(server, SilverHost, Silver);
        await using var silverLun = await Ini.IscsiLun.OpenAsync(silver, 0);
        await silverLun.ReadAsync(0, new byte[512]);
        Assert.Equal(2, server.Sessions.Count);

        var reply = await control.RequestAsync(new JsonObject { ["op"] = "rm", ["name"] = "silver" });
        Assert.Equal("silver", (string)reply["removed"]!["name"]!);

        // Its session is gone (asked to log out; its reconnects are refused), gold's is not.
        Assert.True(await WaitForAsync(() => server.Sessions.Snapshot().All(s => s.TargetName != Silver)));
        Assert.Equal(Gold, Assert.Single(server.Sessions.Snapshot()).TargetName);
        await goldLun.ReadAsync(0, new byte[512]);
        Assert.True(gold.IsConnected);
        Assert.Equal(0, gold.Reconnects);
        await silver.DisposeAsync();

        Assert.Empty(await DiscoverAsync(server, SilverHost));
        var login = await Assert.ThrowsAsync<Ini.LoginException>(() => LoginAsync(server, SilverHost, Silver));
        Assert.Equal((LoginStatus.ClassInitiatorError, (byte)(LoginStatus.NotFound & 0xff)), (login.StatusClass, login.StatusDetail));
        Assert.DoesNotContain(server.GetQosSnapshot()["pool"].Functions, f => f.Name == "silver");
        Assert.Equal(["gold"], server.Functions.FunctionNames);

        var again = JsonNode.Parse(await control.SendLineAsync("{\"op\":\"rm\",\"name\":\"silver\"}"))!;
        Assert.Equal("no function 'silver'", (string)again["error"]!);

        // Its slices are free: the same ranges can be added again.
        await control.RequestAsync(AddSilver("device:pool:12MiB:8MiB"));
        Assert.Equal([Silver], await DiscoverAsync(server, SilverHost));
    }

    [Fact]
    public async Task Tenants_CannotDiscoverLogInToOrSeeEachOthersLuns()
    {
        await using var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        await using var control = await ControlClient.ConnectAsync(server.ControlSocketPath!);
        await control.RequestAsync(AddSilver());

        // SendTargets: each tenant sees only its own target; a stranger sees nothing.
        Assert.Equal([Gold], await DiscoverAsync(server, GoldHost));
        Assert.Equal([Silver], await DiscoverAsync(server, SilverHost));
        Assert.Empty(await DiscoverAsync(server, "iqn.2026-11.dev.sluice:stranger"));

        // Login to the other tenant's target: authorization failure (RFC 7143 §11.13.5, 0x0202).
        var e = await Assert.ThrowsAsync<Ini.LoginException>(() => LoginAsync(server, GoldHost, Silver));
        Assert.Equal((LoginStatus.ClassInitiatorError, (byte)(LoginStatus.AuthorizationFailure & 0xff)), (e.StatusClass, e.StatusDetail));
        e = await Assert.ThrowsAsync<Ini.LoginException>(() => LoginAsync(server, SilverHost, Gold));
        Assert.Equal((LoginStatus.ClassInitiatorError, (byte)(LoginStatus.AuthorizationFailure & 0xff)), (e.StatusClass, e.StatusDetail));

        // REPORT LUNS shows only the tenant's own LUNs; another tenant's LUN number is not there.
        await using var gold = await LoginAsync(server, GoldHost, Gold);
        Assert.Equal([0, 1], await Ini.IscsiLun.ReportLunsAsync(gold));
        var read = new byte[10];
        read[0] = 0x28;
        read[8] = 1;
        var r = await gold.ExecuteAsync(5, read, default, new byte[512]);
        Assert.Equal(Ini.ScsiStatus.CheckCondition, r.Status);

        // Gold's data is not in silver's slices (and the other way round).
        await using var goldLun = await Ini.IscsiLun.OpenAsync(gold, 0);
        var mark = Enumerable.Repeat((byte)0x5a, 512).ToArray();
        await goldLun.WriteAsync(0, mark);
        await using var silver = await LoginAsync(server, SilverHost, Silver);
        await using var silverLun = await Ini.IscsiLun.OpenAsync(silver, 0);
        var seen = new byte[512];
        await silverLun.ReadAsync(0, seen);
        Assert.All(seen, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Set_LimitDuringRunningIo_RateFollowsWithin2s_NoSessionDrops()
    {
        // A device of known speed, well above the limits, so the limit decides the rate.
        await using var server = new TargetServer(Config("model:32MiB:iops=20000,latency=200us"), NullLoggerFactory.Instance);
        await server.StartAsync();
        await using var control = await ControlClient.ConnectAsync(server.ControlSocketPath!);
        await control.RequestAsync(new JsonObject { ["op"] = "set", ["name"] = "gold", ["values"] = new JsonObject { ["reservation_iops"] = 0, ["limit_iops"] = 100 } });

        await using var session = await LoginAsync(server, GoldHost, Gold);
        await using var lun = await Ini.IscsiLun.OpenAsync(session, 0);
        long done = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var workers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            var buffer = new byte[4096];
            var random = new Random(w);
            while (!stop.IsCancellationRequested)
            {
                await lun.ReadAsync(random.Next(0, 2000) * 8, buffer);
                Interlocked.Increment(ref done);
            }
        })).ToArray();

        async Task<double> RateAsync(TimeSpan over)
        {
            long before = Interlocked.Read(ref done);
            var clock = Stopwatch.StartNew();
            await Task.Delay(over);
            return (Interlocked.Read(ref done) - before) / clock.Elapsed.TotalSeconds;
        }

        try
        {
            await Task.Delay(500);
            double slow = await RateAsync(TimeSpan.FromSeconds(1));
            Assert.InRange(slow, 50, 100 * 1.15);

            // Low rates, so a busy 2-core CI machine can still drive them.
            await control.RequestAsync(new JsonObject { ["op"] = "set", ["name"] = "gold", ["values"] = new JsonObject { ["limit_iops"] = 400 } });
            await Task.Delay(500);
            double fast = await RateAsync(TimeSpan.FromSeconds(1.5));
            // Within 2 s of the change: the new limit holds, and the rate rose well past the old limit.
            Assert.InRange(fast, 100 * 1.15 * 1.5, 400 * 1.15);

            await control.RequestAsync(new JsonObject { ["op"] = "set", ["name"] = "gold", ["values"] = new JsonObject { ["limit_iops"] = 100 } });
            await Task.Delay(500);
            double back = await RateAsync(TimeSpan.FromSeconds(1));
            Assert.InRange(back, 50, 100 * 1.15);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.True(session.IsConnected);
        Assert.Equal(0, session.Reconnects);
        Assert.Equal(1, server.Sessions.Count);
    }

    private static async Task<bool> WaitForAsync(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            if (condition())
                return true;
            await Task.Delay(20);
        }

        return condition();
    }
}
