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

        const int writers = 8;
        const int perWriter = 300;
        const int blocksPerWrite = 8;
        int blockSize = lun.BlockSize;
        var acknowledged = new byte[writers * perWriter][];
        using var cutAfter = new SemaphoreSlim(0);
        int done = 0;

        async Task Writer(int w)
        {
            for (int i = 0; i < perWriter; i++)
            {
                int index = (w * perWriter) + i;
                var data = new byte[blocksPerWrite * blockSize];
                Random.Shared.NextBytes(data);
                await lun.WriteAsync((long)index * blocksPerWrite, data);
                acknowledged[index] = data;
                if (Interlocked.Increment(ref done) == writers * perWriter / 3)
                {
                    cutAfter.Release();
                }
            }
        }

        var work = Task.WhenAll(Enumerable.Range(0, writers).Select(Writer));
        await cutAfter.WaitAsync(TimeSpan.FromSeconds(30));
        proxy.Cut();
        await work.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(proxy.Connections >= 2, "the initiator did not reconnect");
        var back = new byte[blocksPerWrite * blockSize];
        for (int index = 0; index < acknowledged.Length; index++)
        {
            await lun.ReadAsync((long)index * blocksPerWrite, back);
            Assert.True(acknowledged[index].AsSpan().SequenceEqual(back), $"write {index} is not intact");
        }
    }
}
