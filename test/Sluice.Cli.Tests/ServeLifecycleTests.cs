using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Cli.Commands;
using Sluice.Target.Configuration;

namespace Sluice.Cli.Tests;

public sealed class ServeLifecycleTests : IDisposable
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(10);
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), $"sluice-cli-{Guid.NewGuid():N}", "data");

    public void Dispose()
    {
        var parent = Path.GetDirectoryName(_dataDir)!;
        if (Directory.Exists(parent))
            Directory.Delete(parent, recursive: true);
    }

    private ServeOptions Options(params string[] listen) =>
        new() { DataDir = _dataDir, Listen = listen.Length == 0 ? ["127.0.0.1:0"] : listen, Luns = ["memory:1MiB"] };

    private static ServeEnvironment Environment(FakeHost host, TimeSpan? stopTimeout = null) =>
        new((config, _) => host.Bind(config), NullLoggerProvider.Instance, stopTimeout ?? s_wait);

    [Fact]
    public async Task Serve_Started_PrintsBannerThenStopsCleanlyOnCancel()
    {
        var host = new FakeHost { Endpoints = [new IPEndPoint(IPAddress.Loopback, 40123)] };
        using var output = new WatchedWriter();
        using var cts = new CancellationTokenSource();

        var run = ServeCommand.RunAsync(Options(), output, cts.Token, Environment(host));
        await output.Ready.WaitAsync(s_wait);
        Assert.False(host.StopCalled);
        Assert.True(Directory.Exists(_dataDir));
        cts.Cancel();
        int code = await run.WaitAsync(s_wait);

        Assert.Equal(0, code);
        Assert.True(host.StopCalled);
        Assert.True(host.Disposed);
        Assert.Equal(_dataDir, host.Config!.DataDir);
        string text = output.ToString();
        Assert.Contains("portal 127.0.0.1:40123 group 1\n", text, StringComparison.Ordinal);
        Assert.Contains("url iscsi://127.0.0.1:40123/iqn.2026-11.dev.sluice:default/0\n", text, StringComparison.Ordinal);
        Assert.EndsWith("ready\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_StopExceedsDeadline_ExitOneWithoutDispose()
    {
        var host = new FakeHost { Endpoints = [new IPEndPoint(IPAddress.Loopback, 40124)], StopHangs = true };
        using var output = new WatchedWriter();
        using var cts = new CancellationTokenSource();

        var run = ServeCommand.RunAsync(Options(), output, cts.Token, Environment(host, TimeSpan.FromMilliseconds(50)));
        await output.Ready.WaitAsync(s_wait);
        cts.Cancel();
        int code = await run.WaitAsync(s_wait);

        Assert.Equal(1, code);
        Assert.True(host.StopCalled);
        Assert.False(host.Disposed);
    }

    [Fact]
    public async Task Serve_StartThrows_ReleasesAndRethrowsWithoutBanner()
    {
        var host = new FakeHost { StartFailure = new InvalidOperationException("port 3260 is in use") };
        using var output = new WatchedWriter();

        var e = await Assert.ThrowsAsync<InvalidOperationException>(
            () => ServeCommand.RunAsync(Options(), output, CancellationToken.None, Environment(host)));

        Assert.Equal("port 3260 is in use", e.Message);
        Assert.True(host.StopCalled);
        Assert.Equal("", output.ToString());
    }

    [Fact]
    public async Task Serve_CancelledDuringStart_StopsAndExitsZero()
    {
        var host = new FakeHost { StartWaitsForCancel = true };
        using var output = new WatchedWriter();
        using var cts = new CancellationTokenSource();

        var run = ServeCommand.RunAsync(Options(), output, cts.Token, Environment(host));
        await host.Starting.Task.WaitAsync(s_wait);
        cts.Cancel();
        int code = await run.WaitAsync(s_wait);

        Assert.Equal(0, code);
        Assert.True(host.StopCalled);
        Assert.Equal("", output.ToString());
    }

    [Fact]
    public async Task Serve_Check_DoesNotStartOrCreateDataDir()
    {
        var host = new FakeHost();
        using var output = new WatchedWriter();

        int code = await ServeCommand.RunAsync(Options() with { Check = true }, output, CancellationToken.None, Environment(host));

        Assert.Equal(0, code);
        Assert.Null(host.Config);
        Assert.False(Directory.Exists(_dataDir));
    }

    private sealed class FakeHost : IServeHost
    {
        public IReadOnlyList<IPEndPoint> Endpoints { get; init; } = [];
        public Exception? StartFailure { get; init; }
        public bool StartWaitsForCancel { get; init; }
        public bool StopHangs { get; init; }
        public TaskCompletionSource Starting { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public ServerConfig? Config { get; private set; }
        public bool StopCalled { get; private set; }
        public bool Disposed { get; private set; }

        public IReadOnlyList<IPEndPoint> LocalEndpoints { get; private set; } = [];

        public FakeHost Bind(ServerConfig config)
        {
            Config = config;
            return this;
        }

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            Starting.TrySetResult();
            if (StartFailure is not null)
                throw StartFailure;
            if (StartWaitsForCancel)
                await Task.Delay(Timeout.Infinite, cancellationToken);
            LocalEndpoints = Endpoints;
        }

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            StopCalled = true;
            if (StopHangs)
                await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>A StringWriter that completes <see cref="Ready"/> once the banner's last line is written.</summary>
    private sealed class WatchedWriter : StringWriter
    {
        private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Lock _lock = new();

        public Task Ready => _ready.Task;

        public override Task WriteAsync(string? value)
        {
            lock (_lock)
                base.Write(value);
            if (value is not null && value.EndsWith("ready\n", StringComparison.Ordinal))
                _ready.TrySetResult();
            return Task.CompletedTask;
        }

        public override string ToString()
        {
            lock (_lock)
                return base.ToString();
        }
    }
}
