using System.Net;
using Microsoft.Extensions.Logging;
using Sluice.Target.Configuration;

namespace Sluice.Target;

/// <summary>The iSCSI target: portals, sessions and the logical units behind them.</summary>
public sealed partial class TargetServer : IAsyncDisposable
{
    private readonly ServerConfig _config;
    private readonly ILoggerFactory _loggerFactory;

    public TargetServer(ServerConfig config, ILoggerFactory loggerFactory)
    {
        _config = config;
        _loggerFactory = loggerFactory;
    }

    /// <summary>The bound listen endpoints (port 0 in the config resolves to the real port).</summary>
    public IReadOnlyList<IPEndPoint> LocalEndpoints { get; private set; } = [];

    /// <summary>Opens the back ends and starts listening; throws on any configuration problem.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Stops accepting, finishes or aborts in-flight commands, flushes and closes sessions.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);
}
