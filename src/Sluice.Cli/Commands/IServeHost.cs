using System.Net;
using Microsoft.Extensions.Logging;
using Sluice.Target;
using Sluice.Target.Configuration;

namespace Sluice.Cli.Commands;

/// <summary>
/// What <c>sluice serve</c> needs from the server: the <see cref="TargetServer"/> surface, behind
/// an interface so the start/print/stop sequence is testable without sockets.
/// </summary>
internal interface IServeHost : IAsyncDisposable
{
    IReadOnlyList<IPEndPoint> LocalEndpoints { get; }

    Task StartAsync(CancellationToken cancellationToken);

    Task StopAsync(CancellationToken cancellationToken);
}

internal delegate IServeHost ServeHostFactory(ServerConfig config, ILoggerFactory loggerFactory);

/// <summary>What <c>sluice serve</c> runs against; tests swap the host, the log sink and the deadline.</summary>
/// <param name="HostFactory">Creates the server.</param>
/// <param name="LogSink">Where logs go; null for the console (stderr).</param>
/// <param name="StopTimeout">How long a clean shutdown may take before the process exits anyway.</param>
internal sealed record ServeEnvironment(ServeHostFactory HostFactory, ILoggerProvider? LogSink, TimeSpan StopTimeout)
{
    public static ServeEnvironment Default { get; } = new(TargetServerHost.Factory, null, TimeSpan.FromSeconds(10));
}

internal sealed class TargetServerHost(ServerConfig config, ILoggerFactory loggerFactory) : IServeHost
{
    private readonly TargetServer _server = new(config, loggerFactory);

    public static readonly ServeHostFactory Factory = (config, loggerFactory) => new TargetServerHost(config, loggerFactory);

    public IReadOnlyList<IPEndPoint> LocalEndpoints => _server.LocalEndpoints;

    public Task StartAsync(CancellationToken cancellationToken) => _server.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => _server.StopAsync(cancellationToken);

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
