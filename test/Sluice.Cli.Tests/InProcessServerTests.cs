using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Target;
using Sluice.Target.Configuration;

namespace Sluice.Cli.Tests;

/// <summary>
/// A test class with its own in-process <see cref="TargetServer"/> on loopback, started from
/// <see cref="Configure"/> before each test and stopped after it, with a private data directory
/// (the CLI commands find the control socket there).
/// </summary>
public abstract class InProcessServerTests(string prefix) : IAsyncLifetime
{
    /// <summary>The server's data directory.</summary>
    protected string Dir { get; } = Path.Combine(Path.GetTempPath(), $"sl-{prefix}-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>The running server.</summary>
    protected TargetServer Server { get; private set; } = null!;

    /// <summary>The configuration it was started with.</summary>
    protected ServerConfig Config { get; private set; } = null!;

    /// <summary>The server's configuration; <see cref="ServerConfig.DataDir"/> should be <see cref="Dir"/>.</summary>
    protected abstract ServerConfig Configure();

    public async Task InitializeAsync()
    {
        Config = Configure();
        Server = new TargetServer(Config, NullLoggerFactory.Instance);
        await Server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (Server is not null)
            await Server.DisposeAsync();
        if (Directory.Exists(Dir))
            Directory.Delete(Dir, recursive: true);
    }
}
