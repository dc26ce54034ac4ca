using System.Net;
using Sluice.Target.Configuration;
using Sluice.Target.Metrics;

namespace Sluice.Target;

/// <summary>The Prometheus endpoint of a running server (<c>metrics.listen</c>).</summary>
public sealed partial class TargetServer
{
    private SluiceMetrics? _metrics;

    /// <summary>Where <c>/metrics</c> is served while running (a port of 0 in the config resolved), or null when off.</summary>
    public IPEndPoint? MetricsEndpoint => _metrics?.Endpoint;

    private void StartMetrics()
    {
        if (_config.Metrics.Listen is not { } listen)
            return;
        if (!MetricsListen.TryParse(listen, out var address, out int port, out string? error))
            throw new InvalidOperationException($"metrics.listen: {error}");
        _metrics = SluiceMetrics.Start(Functions, address, port);
        Control.ControlLog.MetricsListening(_logger, $"http://{FormatEndpoint(address, _metrics.Endpoint!.Port)}/metrics");
    }

    private async Task StopMetricsAsync()
    {
        if (_metrics is { } metrics)
        {
            _metrics = null;
            await metrics.DisposeAsync().ConfigureAwait(false);
        }
    }
}
