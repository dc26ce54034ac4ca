using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Target;
using Sluice.Target.Configuration;
using Sluice.Target.Tests;

namespace Sluice.Initiator.Tests;

/// <summary>
/// Issue 5: a connection cut under a running write workload leads to a reconnect (session
/// reinstatement and replay), and every acknowledged write is intact afterwards.
/// </summary>
[Collection("Serial")]
public sealed class ConnectionLossTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:loss";
    private TargetServer _server = null!;
    private string _dir = null!;

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-loss-tests").FullName;
        _server = new TargetServer(
            new ServerConfig
            {
                DataDir = _dir,
                Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
                Targets = [new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "memory:64MiB" }] }],
            },
            NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task ConnectionCutDuringWrites_Reconnects_AndEveryAcknowledgedWriteIsIntact()
    {
        await using var proxy = new CorruptingProxy(_server.LocalEndpoints[0]);
        var url = IscsiUrl.Parse($"iscsi://127.0.0.1:{proxy.Endpoint.Port}/{Target}/0");
        var options = new IscsiClientOptions { ReconnectDelay = TimeSpan.FromMilliseconds(50), CommandTimeout = TimeSpan.FromSeconds(20) };
        await using var lun = await IscsiLun.OpenAsync(url, options);

        await AcknowledgedWrites.RunAsync(lun, writers: 8, perWriter: 300, blocksPerWrite: 8, firstLba: 0, proxy.Cut, TimeSpan.FromSeconds(60),
            check: () => Assert.True(proxy.Connections >= 2, "the initiator did not reconnect"));
    }

    [Fact]
    public async Task LinkGoesSilentDuringWrites_NopTimeoutDeclaresItDead_ReinstatementReplays() =>
        await StalledLink.RunAsync(_server.LocalEndpoints[0], Target, 0);
}

/// <summary>The silent-link case against tgtd, the reference target.</summary>
public sealed class TgtdConnectionLossTests(TgtdFixture tgt) : IClassFixture<TgtdFixture>
{
    [SkippableFact]
    public async Task LinkGoesSilentDuringWrites_NopTimeoutDeclaresItDead_ReinstatementReplays()
    {
        Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
        await StalledLink.RunAsync(new IPEndPoint(IPAddress.Loopback, tgt.Port), TgtdFixture.PlainTarget, 1);
    }
}

/// <summary>
/// A link that dies without FIN or RST under a write workload: no byte comes back, so only the
/// NOP-Out ping (RFC 7143 §11.18) can tell. The initiator must declare the connection dead after
/// NopTimeout, log in again with the same ISID while the target still holds the old session
/// (session reinstatement, RFC 7143 §6.3.5: the target ends the old session and its tasks), send
/// again the writes that got no status, and every acknowledged write must read back.
/// </summary>
internal static class StalledLink
{
    public static async Task RunAsync(IPEndPoint target, string iqn, int lunNumber)
    {
        await using var proxy = new CorruptingProxy(target);
        var url = IscsiUrl.Parse($"iscsi://127.0.0.1:{proxy.Endpoint.Port}/{iqn}/{lunNumber}");
        var options = new IscsiClientOptions
        {
            NopInterval = TimeSpan.FromMilliseconds(200),
            NopTimeout = TimeSpan.FromMilliseconds(600),
            ReconnectDelay = TimeSpan.FromMilliseconds(50),
            CommandTimeout = TimeSpan.FromSeconds(20),
        };
        await using var lun = await IscsiLun.OpenAsync(url, options);

        await AcknowledgedWrites.RunAsync(lun, writers: 8, perWriter: 150, blocksPerWrite: 16, firstLba: 10_000, proxy.Stall, TimeSpan.FromSeconds(30),
            check: () =>
            {
                Assert.True(proxy.Connections >= 2, "the initiator did not reconnect");
                Assert.True(lun.Session.Reconnects >= 1);
            });
    }
}

/// <summary>
/// Writers of random data that disturb the link a third of the way in, then every write that was
/// acknowledged is read back and must be intact.
/// </summary>
internal static class AcknowledgedWrites
{
    public static async Task RunAsync(IscsiLun lun, int writers, int perWriter, int blocksPerWrite, long firstLba,
        Action disturb, TimeSpan finishWithin, Action? check = null)
    {
        var acknowledged = new byte[writers * perWriter][];
        using var disturbAfter = new SemaphoreSlim(0);
        int done = 0;

        async Task Writer(int w)
        {
            for (int i = 0; i < perWriter; i++)
            {
                int index = (w * perWriter) + i;
                var data = new byte[blocksPerWrite * lun.BlockSize];
                Random.Shared.NextBytes(data);
                await lun.WriteAsync(firstLba + ((long)index * blocksPerWrite), data);
                acknowledged[index] = data;
                if (Interlocked.Increment(ref done) == writers * perWriter / 3)
                {
                    disturbAfter.Release();
                }
            }
        }

        var work = Task.WhenAll(Enumerable.Range(0, writers).Select(Writer));
        Assert.True(await disturbAfter.WaitAsync(TimeSpan.FromSeconds(30)), "the writes did not start");
        disturb();
        await work.WaitAsync(finishWithin);
        check?.Invoke();

        var back = new byte[blocksPerWrite * lun.BlockSize];
        for (int index = 0; index < acknowledged.Length; index++)
        {
            await lun.ReadAsync(firstLba + ((long)index * blocksPerWrite), back);
            Assert.True(acknowledged[index].AsSpan().SequenceEqual(back), $"write {index} is not intact");
        }
    }
}
