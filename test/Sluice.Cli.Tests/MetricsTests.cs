using System.Globalization;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Target;
using Sluice.Target.Configuration;
using Sluice.Target.Control;
using Ini = Sluice.Initiator;

namespace Sluice.Cli.Tests;

/// <summary>
/// The Prometheus /metrics endpoint (metrics.listen), scraped while a tenant does I/O. Kept out of
/// Sluice.Target.Tests: after a metrics endpoint has started in a test process, the target's
/// zero-allocation test there measures kilobytes per I/O (not yet explained; an open issue).
/// </summary>
public sealed class MetricsTests : IDisposable
{
    private const string Gold = "iqn.2026-11.dev.sluice:gold";
    private const string Host = "iqn.2026-11.dev.sluice:gold-host";
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sl-met-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    private ServerConfig Config(string? listen = "127.0.0.1:0") => new()
    {
        DataDir = _dir,
        Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
        Devices = [new DeviceConfig { Name = "pool", Backend = "model:32MiB:iops=20000,latency=100us" }],
        Targets = [new TargetConfig { Name = Gold, AllowedInitiators = [Host], Luns = [new LunConfig { Backend = "device:pool:16MiB" }] }],
        Functions = [new FunctionConfig { Name = "gold", Targets = [Gold], LimitIops = 800, LatencyTargetMs = 50 }],
        Metrics = new MetricsConfig { Listen = listen },
    };

    private static async Task<string> ScrapeAsync(TargetServer server)
    {
        var endpoint = server.MetricsEndpoint!;
        using var response = await s_http.GetAsync(new Uri($"http://{endpoint.Address}:{endpoint.Port}/metrics"));
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.MediaType, StringComparison.Ordinal);
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>The value of the sample <paramref name="name"/> whose labels include <paramref name="labels"/>; null when absent.</summary>
    private static double? Sample(string text, string name, params string[] labels)
    {
        foreach (Match m in Regex.Matches(text, "^" + Regex.Escape(name) + @"(\{[^}]*\})? (\S+)$", RegexOptions.Multiline))
        {
            if (labels.All(l => m.Groups[1].Value.Contains(l, StringComparison.Ordinal)))
                return double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        }

        return null;
    }

    [Fact]
    public async Task Scrape_DuringIo_FunctionCountersMove_RuntimeMetricsThere_RemovedFunctionGone()
    {
        await using var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        Assert.NotNull(server.MetricsEndpoint);
        Assert.NotEqual(0, server.MetricsEndpoint!.Port);

        await using var session = await Ini.IscsiSession.ConnectAsync("127.0.0.1", server.LocalEndpoints[0].Port, Gold, new Ini.IscsiClientOptions { InitiatorName = Host });
        await using var lun = await Ini.IscsiLun.OpenAsync(session, 0);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var workers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var buffer = new byte[4096];
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                if (i % 4 == 0)
                    await lun.WriteAsync((w * 100) + (i % 100), buffer);
                else
                    await lun.ReadAsync((w * 100) + (i % 100), buffer);
            }
        })).ToArray();

        string first, second;
        try
        {
            await Task.Delay(400);
            first = await ScrapeAsync(server);
            await Task.Delay(600);
            second = await ScrapeAsync(server);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(10));
        }

        string[] gold = ["function=\"gold\"", "device=\"pool\""];
        double ios1 = Sample(first, "sluice_function_ios_total", gold) ?? -1, ios2 = Sample(second, "sluice_function_ios_total", gold) ?? -1;
        Assert.True(ios1 > 0 && ios2 > ios1, $"ios {ios1} then {ios2}");
        // The limit (800 IOPS) holds in what the scrape reports too.
        Assert.InRange(ios2 - ios1, 1, 800 * 0.6 * 1.5 + 50);
        double read1 = Sample(first, "sluice_function_bytes_total", [.. gold, "direction=\"read\""]) ?? -1;
        double read2 = Sample(second, "sluice_function_bytes_total", [.. gold, "direction=\"read\""]) ?? -1;
        double written2 = Sample(second, "sluice_function_bytes_total", [.. gold, "direction=\"write\""]) ?? -1;
        Assert.True(read2 > read1 && read1 > 0, $"read bytes {read1} then {read2}");
        Assert.True(written2 > 0 && written2 % 4096 == 0, $"written bytes {written2}");

        // The histogram counts the completed commands: the device I/Os, plus the commands of the
        // LUN's opening that never reach the device (INQUIRY, VPD pages, READ CAPACITY), less the
        // up to 4 whose device I/O is done but whose command is not yet when the scrape reads.
        double count = Sample(second, "sluice_function_latency_seconds_count", gold) ?? -1;
        double sum = Sample(second, "sluice_function_latency_seconds_sum", gold) ?? -1;
        Assert.InRange(count, ios2 - 4, ios2 + 32);
        Assert.InRange(sum / count, 50e-6, 1.0);
        Assert.Equal(count, Sample(second, "sluice_function_latency_seconds_bucket", [.. gold, "le=\"+Inf\""]));
        // Queued behind an 800 IOPS limit at QD 4: most of the time is spent throttled.
        Assert.True(Sample(second, "sluice_function_throttled_seconds_total", gold) > 0);
        double weight = Sample(second, "sluice_function_dispatches_total", [.. gold, "phase=\"weight\""]) ?? -1;
        double reservation = Sample(second, "sluice_function_dispatches_total", [.. gold, "phase=\"reservation\""]) ?? -1;
        Assert.Equal(ios2, weight + reservation, 4.0);
        Assert.NotNull(Sample(second, "sluice_function_queue_depth", gold));
        Assert.NotNull(Sample(second, "sluice_function_latency_target_misses_total", gold));
        Assert.Equal(800, Sample(second, "sluice_function_service_level", [.. gold, "key=\"limit_iops\""]));
        Assert.Equal(32, Sample(second, "sluice_device_max_outstanding", "device=\"pool\""));

        // The runtime's own: GC collections and allocated bytes.
        Assert.NotNull(Sample(second, "dotnet_collection_count_total", "generation=\"0\""));
        Assert.True(Sample(second, "dotnet_gc_allocated_bytes_total") > Sample(first, "dotnet_gc_allocated_bytes_total"));
        Assert.NotNull(Sample(second, "dotnet_gc_pause_seconds_total"));
        Assert.NotNull(Sample(second, "process_cpu_seconds_total"));

        // fn rm: the function's series go at the next scrape.
        await using (var control = await ControlClient.ConnectAsync(server.ControlSocketPath!))
            await control.RequestAsync(new JsonObject { ["op"] = "rm", ["name"] = "gold" });
        string after = await ScrapeAsync(server);
        Assert.Null(Sample(after, "sluice_function_ios_total", gold));
        Assert.DoesNotContain("function=\"gold\"", after, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Off_ByDefault_AndStoppedWithTheServer()
    {
        await using (var off = new TargetServer(Config(listen: null), NullLoggerFactory.Instance))
        {
            await off.StartAsync();
            Assert.Null(off.MetricsEndpoint);
        }

        var server = new TargetServer(Config(), NullLoggerFactory.Instance);
        await server.StartAsync();
        var endpoint = server.MetricsEndpoint!;
        Assert.Contains("sluice_device_queued", await ScrapeAsync(server), StringComparison.Ordinal);
        await server.DisposeAsync();
        Assert.Null(server.MetricsEndpoint);
        using var probe = new TcpClient();
        await Assert.ThrowsAnyAsync<SocketException>(() => probe.ConnectAsync(endpoint.Address, endpoint.Port));
    }

    [Fact]
    public async Task PortInUse_StartFails_NamingTheKey()
    {
        using var holder = new TcpListener(System.Net.IPAddress.Loopback, 0);
        holder.Start();
        int port = ((System.Net.IPEndPoint)holder.LocalEndpoint).Port;
        await using var server = new TargetServer(Config($"127.0.0.1:{port}"), NullLoggerFactory.Instance);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => server.StartAsync());
        Assert.StartsWith($"metrics.listen: cannot listen on 127.0.0.1:{port}", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("10.1.2.3:9464", "is not a loopback address")]
    [InlineData("0.0.0.0:9464", "is not a loopback address")]
    [InlineData("127.0.0.1:99999", "invalid port")]
    [InlineData("nonsense", "invalid host")]
    public void Validator_RejectsBadListen(string listen, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigValidator.Validate(Config(listen)));
        Assert.Equal("metrics.listen", e.KeyPath);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1", 9464)]
    [InlineData("localhost:9100", 9100)]
    [InlineData("[::1]", 9464)]
    [InlineData("[::1]:0", 0)]
    public void Listen_Parses_DefaultPort9464(string listen, int port)
    {
        Assert.True(MetricsListen.TryParse(listen, out var address, out int parsed, out _));
        Assert.True(System.Net.IPAddress.IsLoopback(address));
        Assert.Equal(port, parsed);
    }
}
