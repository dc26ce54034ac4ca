using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sluice.Target.Control;

/// <summary>A connection to a running server's control socket (see <see cref="ControlProtocol"/>).</summary>
public sealed class ControlClient : IAsyncDisposable
{
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly StreamWriter _writer;

    private ControlClient(Socket socket)
    {
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, new UTF8Encoding(false), false, 4096, leaveOpen: true);
        _writer = new StreamWriter(_stream, new UTF8Encoding(false), 4096, leaveOpen: true) { NewLine = "\n" };
    }

    /// <summary>Connects to <paramref name="path"/>.</summary>
    /// <exception cref="IOException">Nothing listens there.</exception>
    public static async Task<ControlClient> ConnectAsync(string path, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
            return new ControlClient(socket);
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            socket.Dispose();
            throw new IOException($"no sluice serve control socket at {path}", e);
        }
    }

    /// <summary>Sends one raw request line and returns the reply line.</summary>
    public async Task<string> SendLineAsync(string line, CancellationToken cancellationToken = default)
    {
        await _writer.WriteLineAsync(line.AsMemory(), cancellationToken).ConfigureAwait(false);
        await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return await _reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new IOException("the control socket closed the connection");
    }

    /// <summary>Sends <paramref name="request"/>; returns the reply when it says ok.</summary>
    /// <exception cref="ControlErrorException">The server refused the request.</exception>
    public async Task<JsonObject> RequestAsync(JsonObject request, CancellationToken cancellationToken = default)
    {
        string line = await SendLineAsync(request.ToJsonString(), cancellationToken).ConfigureAwait(false);
        JsonObject reply;
        try
        {
            reply = JsonNode.Parse(line) as JsonObject ?? throw new IOException("the control socket sent a reply that is not an object");
        }
        catch (JsonException e)
        {
            throw new IOException($"the control socket sent malformed JSON: {e.Message}", e);
        }

        if (reply["ok"] is JsonValue ok && ok.TryGetValue(out bool good) && good)
            return reply;
        string message = reply["error"] is JsonValue err && err.TryGetValue(out string? text) ? text : "request failed";
        throw new ControlErrorException(message);
    }

    public async ValueTask DisposeAsync()
    {
        await _writer.DisposeAsync().ConfigureAwait(false);
        _reader.Dispose();
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>The server answered a control request with an error.</summary>
public sealed class ControlErrorException : Exception
{
    public ControlErrorException()
    {
    }

    public ControlErrorException(string message)
        : base(message)
    {
    }

    public ControlErrorException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
