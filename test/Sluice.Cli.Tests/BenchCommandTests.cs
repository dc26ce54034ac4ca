using System.Text.Json;
using Sluice.Cli.Commands;
using Sluice.Target.Configuration;
using static Sluice.Cli.Tests.CliRun;

namespace Sluice.Cli.Tests;

/// <summary><c>sluice bench</c> with several <c>--job</c>s against an in-process server with two functions on one device.</summary>
public sealed class BenchCommandTests() : InProcessServerTests("bench")
{
    private const string Gold = "iqn.2026-11.dev.sluice:gold";
    private const string Bulk = "iqn.2026-11.dev.sluice:bulk";
    private const int BulkLimitIops = 200;

    private string Url(string iqn) => $"iscsi://127.0.0.1:{Server.LocalEndpoints[0].Port}/{iqn}/0";

    protected override ServerConfig Configure() => new ServerConfig
    {
        DataDir = Dir,
        Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
        Devices = [new DeviceConfig { Name = "pool", Backend = "memory:32MiB" }],
        Targets =
        [
            new TargetConfig { Name = Gold, Luns = [new LunConfig { Backend = "device:pool:0:16MiB" }] },
            new TargetConfig { Name = Bulk, Luns = [new LunConfig { Backend = "device:pool:16MiB" }] },
        ],
        Functions =
        [
            new FunctionConfig { Name = "gold", Targets = [Gold], ReservationIops = 100 },
            new FunctionConfig { Name = "bulk", Targets = [Bulk], LimitIops = BulkLimitIops },
        ],
    };

    [Fact]
    public async Task Jobs_JsonHasPerJobAndPerGroupSeries_LimitVisiblePerSecond()
    {
        string csv = Path.Combine(Dir, "series.csv");
        var (code, output, error) = await RunAsync("bench", "--time", "2s", "--ramp", "200ms", "--json", "--series", csv,
            "--job", $"name=gold,url={Url(Gold)},rw=randread,bs=4k,qd=2",
            "--job", $"name=bulk-big,group=bulk,url={Url(Bulk)},rw=write,bs=64k,qd=4",
            "--job", $"name=bulk-small,group=bulk,url={Url(Bulk)},rw=randwrite,bs=4k,qd=4");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var jobs = doc.RootElement.GetProperty("jobs");
        Assert.Equal(["gold", "bulk-big", "bulk-small"], jobs.EnumerateArray().Select(j => j.GetProperty("name").GetString()!));
        Assert.Equal(65536, jobs[1].GetProperty("bs").GetInt32());
        Assert.Equal("randwrite", jobs[2].GetProperty("rw").GetString());
        Assert.True(jobs[0].GetProperty("read").GetProperty("ios").GetInt64() > 0);
        Assert.Equal(0, jobs[0].GetProperty("write").GetProperty("ios").GetInt64());

        var groups = doc.RootElement.GetProperty("groups");
        Assert.Equal(2, groups.GetArrayLength());
        var bulk = groups[1];
        Assert.Equal("bulk", bulk.GetProperty("name").GetString());
        long bulkIos = jobs[1].GetProperty("write").GetProperty("ios").GetInt64() + jobs[2].GetProperty("write").GetProperty("ios").GetInt64();
        Assert.Equal(bulkIos, bulk.GetProperty("ios").GetInt64());
        var series = bulk.GetProperty("series");
        Assert.Equal(2, series.GetArrayLength());
        foreach (var window in series.EnumerateArray())
        {
            // The limit holds per second (a little slack for a window edge), and the window saw I/O.
            Assert.InRange(window.GetProperty("iops").GetInt64(), 1, (long)(BulkLimitIops * 1.15));
            Assert.True(window.GetProperty("p99_us").GetDouble() >= window.GetProperty("p50_us").GetDouble());
        }

        long windowed = series.EnumerateArray().Sum(w => w.GetProperty("ios").GetInt64());
        Assert.InRange(windowed, bulkIos - (BulkLimitIops / 2), bulkIos);
        Assert.True(groups[0].GetProperty("series")[0].GetProperty("iops").GetInt64() > 0);

        var lines = await File.ReadAllLinesAsync(csv);
        Assert.Equal("group,job,second,ios,iops,mb_per_s,p50_us,p99_us", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("bulk,*,2,", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("gold,gold,1,", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Url_PlainTextReport_StillWorks()
    {
        var (code, output, error) = await RunAsync("bench", Url(Gold), "--time", "1s", "--ramp", "100ms", "--qd", "2", "--bs", "8k", "--rw", "randrw:50");
        Assert.True(code == 0, error);
        Assert.StartsWith($"job {Url(Gold)}: randrw:50 bs=8", output, StringComparison.Ordinal);
        Assert.Contains("read :", output, StringComparison.Ordinal);
        Assert.Contains("write:", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("name=a", "--job 'name=a': needs url=")]
    [InlineData("url=iscsi://127.0.0.1/iqn.2026-11.dev.sluice:x/0,depth=3", "--job: unknown key 'depth' (keys: name, url, rw, bs, qd, size, group, initiator)")]
    [InlineData("url=iscsi://127.0.0.1/iqn.2026-11.dev.sluice:x/0,qd", "--job: 'qd' is not key=value (keys: name, url, rw, bs, qd, size, group, initiator)")]
    [InlineData("url=iscsi://127.0.0.1/iqn.2026-11.dev.sluice:x/0,qd=0", "--job qd must be 1..1024")]
    [InlineData("url=iscsi://127.0.0.1/iqn.2026-11.dev.sluice:x/0,rw=trim", "--job rw 'trim' is not read, write, randread, randwrite or randrw[:N]")]
    public async Task BadJob_UsageError(string spec, string message)
    {
        var (code, _, error) = await RunAsync("bench", "--job", spec);
        Assert.Equal(2, code);
        Assert.Equal($"sluice bench: {message}{Environment.NewLine}", error);
    }

    [Fact]
    public async Task NoUrlNoJob_UsageError()
    {
        var (code, _, error) = await RunAsync("bench");
        Assert.Equal(2, code);
        Assert.Contains("at least one URL or --job", error, StringComparison.Ordinal);
    }
}
