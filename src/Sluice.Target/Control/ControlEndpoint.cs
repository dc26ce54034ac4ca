using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Sluice.Target.Control;

/// <summary>
/// The operator's control socket, <c>&lt;dataDir&gt;/control.sock</c>: a Unix domain socket of mode
/// 0600 speaking <see cref="ControlProtocol"/>, one request per line. The mode is set between bind
/// and listen, so nobody else can connect even for a moment.
/// </summary>
internal sealed partial class ControlEndpoint : IAsyncDisposable
{
    private const int MaxLineBytes = 64 * 1024;

    private readonly TargetServer _server;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private readonly HashSet<Task> _clients = [];
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;

    public ControlEndpoint(TargetServer server, ILogger logger)
    {
        _server = server;
        _logger = logger;
    }

    /// <summary>The socket path while listening, else null.</summary>
    public string? Path { get; private set; }

    /// <summary>
    /// Listens on <paramref name="path"/>. A stale socket file is replaced; when another server
    /// answers there (two servers sharing a data directory), or Unix sockets are unavailable, the
    /// endpoint stays off and false is returned — the iSCSI service does not depend on it.
    /// </summary>
    public bool Start(string path)
    {
        if (!Socket.OSSupportsUnixDomainSockets)
        {
            ControlLog.Unavailable(_logger, path, "Unix domain sockets are not supported here");
            return false;
        }

        if (Encoding.UTF8.GetByteCount(path) > 100)
        {
            ControlLog.Unavailable(_logger, path, "the path is too long for a Unix domain socket");
            return false;
        }

        if (File.Exists(path))
        {
            if (IsAnswering(path))
            {
                ControlLog.Unavailable(_logger, path, "another sluice serve is listening there");
                return false;
            }

            try
            {
                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                ControlLog.Unavailable(_logger, path, e.Message);
                return false;
            }
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            socket.Listen(16);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            socket.Dispose();
            ControlLog.Unavailable(_logger, path, e.Message);
            return false;
        }

        _listener = socket;
        Path = path;
        _acceptLoop = AcceptLoopAsync(socket);
        ControlLog.Listening(_logger, path);
        return true;
    }

    private static bool IsAnswering(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested)
                    return;
                continue;
            }

            var run = Task.Run(() => ServeAsync(client));
            lock (_lock)
                _clients.Add(run);
            _ = run.ContinueWith(
                t =>
                {
                    lock (_lock)
                        _clients.Remove(t);
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        var ct = _stopping.Token;
        try
        {
            await using var stream = new NetworkStream(client, ownsSocket: true);
            using var reader = new StreamReader(stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false, bufferSize: 4096, leaveOpen: true);
            await using var writer = new StreamWriter(stream, new UTF8Encoding(false), bufferSize: 4096, leaveOpen: true) { NewLine = "\n" };
            while (!ct.IsCancellationRequested)
            {
                string? line = await ReadLineAsync(reader, ct).ConfigureAwait(false);
                if (line is null)
                    return;
                if (line.Length > MaxLineBytes)
                {
                    await writer.WriteLineAsync(ControlProtocol.Error($"request longer than {MaxLineBytes} bytes").AsMemory(), ct).ConfigureAwait(false);
                    await writer.FlushAsync(ct).ConfigureAwait(false);
                    return;
                }

                if (line.Trim().Length == 0)
                    continue;
                string reply = await ControlProtocol.HandleAsync(_server, line, ct).ConfigureAwait(false);
                await writer.WriteLineAsync(reply.AsMemory(), ct).ConfigureAwait(false);
                await writer.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        catch (Exception e)
        {
            ControlLog.Failed(_logger, e);
        }
    }

    // Like ReadLineAsync, but stops collecting past the limit so a client cannot grow memory unboundedly.
    private static async Task<string?> ReadLineAsync(StreamReader reader, CancellationToken ct)
    {
        var line = new StringBuilder();
        var one = new char[1];
        while (true)
        {
            int n = await reader.ReadAsync(one.AsMemory(), ct).ConfigureAwait(false);
            if (n == 0)
                return line.Length > 0 ? line.ToString() : null;
            if (one[0] == '\n')
                return line.ToString();
            if (line.Length <= MaxLineBytes)
                line.Append(one[0]);
            else
                return line.ToString();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        Task[] clients;
        lock (_lock)
            clients = [.. _clients];
        await Task.WhenAny(Task.WhenAll(clients), Task.Delay(2000, CancellationToken.None)).ConfigureAwait(false);
        if (Path is { } path)
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }

            Path = null;
        }

        _stopping.Dispose();
    }
}

internal static partial class ControlLog
{
    [LoggerMessage(1900, LogLevel.Information, "Control socket at {Path}")]
    public static partial void Listening(ILogger logger, string path);

    [LoggerMessage(1901, LogLevel.Warning, "No control socket at {Path}: {Reason}")]
    public static partial void Unavailable(ILogger logger, string path, string reason);

    [LoggerMessage(1902, LogLevel.Warning, "Control connection failed")]
    public static partial void Failed(ILogger logger, Exception exception);

    [LoggerMessage(1903, LogLevel.Information, "Function {Function} added: target {Target} with {Luns} LUNs")]
    public static partial void FunctionAdded(ILogger logger, string function, string target, int luns);

    [LoggerMessage(1904, LogLevel.Information, "Function {Function} removed with its {Targets} targets")]
    public static partial void FunctionRemoved(ILogger logger, string function, int targets);

    [LoggerMessage(1905, LogLevel.Information, "Metrics at {Url}")]
    public static partial void MetricsListening(ILogger logger, string url);
}
