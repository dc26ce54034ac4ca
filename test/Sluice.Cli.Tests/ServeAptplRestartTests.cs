using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Sluice.Initiator;

namespace Sluice.Cli.Tests;

/// <summary>
/// Issue 3: persistent reservation state registered with APTPL=1 survives a restart of the real
/// <c>sluice serve</c> process (SPC-4 §5.14.6.2: it is kept across power loss), both after a
/// clean stop (SIGTERM) and after the process is killed outright (SIGKILL, nothing flushed at
/// exit) — and only registrations made with APTPL=1 do.
/// </summary>
public sealed class ServeAptplRestartTests : IDisposable
{
    private const string Target = "iqn.2026-11.dev.sluice:default";
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);
    private readonly string _dataDir = Directory.CreateTempSubdirectory("sluice-cli-aptpl-").FullName;

    public void Dispose() => Directory.Delete(_dataDir, recursive: true);

    private sealed class Server : IAsyncDisposable
    {
        public required Process Process { get; init; }
        public required int Port { get; init; }

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill();
                await Process.WaitForExitAsync();
            }
            Process.Dispose();
        }
    }

    private async Task<Server> StartAsync()
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "sluice.dll"), "serve", "--listen", "127.0.0.1:0",
            "--lun", "memory:1MiB", "--data-dir", _dataDir, "--log-level", "warn",
        })
        {
            psi.ArgumentList.Add(arg);
        }

        var process = Process.Start(psi)!;
        _ = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(s_wait);
        int port = 0;
        while (await process.StandardOutput.ReadLineAsync(deadline.Token) is { } line)
        {
            if (line.StartsWith("url ", StringComparison.Ordinal))
                port = int.Parse(line.Split('/')[2].Split(':')[1], CultureInfo.InvariantCulture);
            if (line == "ready")
                break;
        }

        if (port == 0)
        {
            process.Kill();
            process.Dispose();
            Assert.Fail("sluice serve did not print a url and ready");
        }
        return new Server { Process = process, Port = port };
    }

    private static async Task StopAsync(Server server, string signal)
    {
        using var deadline = new CancellationTokenSource(s_wait);
        using (var kill = Process.Start("kill", ["-" + signal, server.Process.Id.ToString(CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync(deadline.Token);
        await server.Process.WaitForExitAsync(deadline.Token);
    }

    private static Task<IscsiLun> OpenAsync(Server server, string initiator) =>
        IscsiLun.OpenAsync(
            IscsiUrl.Parse($"iscsi://127.0.0.1:{server.Port}/{Target}/0"),
            new IscsiClientOptions { InitiatorName = initiator });

    /// <summary>Runs a CDB, retrying while it gets UNIT ATTENTION (the command was not executed).</summary>
    private static async Task<ScsiResult> RunAsync(IscsiLun lun, byte[] cdb, byte[]? dataOut = null, byte[]? dataIn = null)
    {
        for (int i = 0; ; i++)
        {
            var result = await lun.ExecuteAsync(cdb, dataOut ?? default(ReadOnlyMemory<byte>), dataIn ?? default(Memory<byte>));
            bool unitAttention = result.Status == ScsiStatus.CheckCondition && result.Sense.Length > 2 && (result.Sense.Span[2] & 0x0f) == SenseKey.UnitAttention;
            if (!unitAttention || i == 8)
                return result;
        }
    }

    /// <summary>PERSISTENT RESERVE OUT, REGISTER (SPC-4 §6.16.3) of <paramref name="key"/>, APTPL as given.</summary>
    private static async Task RegisterAsync(IscsiLun lun, ulong key, bool aptpl)
    {
        var parameters = new byte[24];
        BinaryPrimitives.WriteUInt64BigEndian(parameters.AsSpan(8), key);
        parameters[20] = aptpl ? (byte)0x01 : (byte)0;
        byte[] cdb = [0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0];
        var result = await RunAsync(lun, cdb, parameters);
        Assert.True(result.IsGood, $"REGISTER: status {result.Status:x2}, sense {Convert.ToHexString(result.Sense.Span)}");
    }

    /// <summary>PERSISTENT RESERVE OUT, RESERVE (type 1, WRITE EXCLUSIVE) with <paramref name="key"/>.</summary>
    private static async Task ReserveAsync(IscsiLun lun, ulong key)
    {
        var parameters = new byte[24];
        BinaryPrimitives.WriteUInt64BigEndian(parameters, key);
        byte[] cdb = [0x5f, 0x01, 0x01, 0, 0, 0, 0, 0, 24, 0];
        var result = await RunAsync(lun, cdb, parameters);
        Assert.True(result.IsGood, $"RESERVE: status {result.Status:x2}, sense {Convert.ToHexString(result.Sense.Span)}");
    }

    private static async Task<List<ulong>> ReadKeysAsync(IscsiLun lun)
    {
        byte[] cdb = [0x5e, 0x00, 0, 0, 0, 0, 0, 0x01, 0x00, 0];
        var data = new byte[256];
        var result = await RunAsync(lun, cdb, dataIn: data);
        Assert.True(result.IsGood, $"READ KEYS: status {result.Status:x2}");
        int length = (int)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(4));
        var keys = new List<ulong>();
        for (int offset = 8; offset < 8 + length; offset += 8)
            keys.Add(BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(offset)));
        return keys;
    }

    /// <summary>READ RESERVATION: the holder's key and the type, or null when there is no reservation.</summary>
    private static async Task<(ulong Key, int Type)?> ReadReservationAsync(IscsiLun lun)
    {
        byte[] cdb = [0x5e, 0x01, 0, 0, 0, 0, 0, 0x01, 0x00, 0];
        var data = new byte[256];
        var result = await RunAsync(lun, cdb, dataIn: data);
        Assert.True(result.IsGood, $"READ RESERVATION: status {result.Status:x2}");
        int length = (int)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(4));
        if (length == 0)
            return null;
        return (BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(8)), data[21] & 0x0f);
    }

    [Theory]
    [InlineData("TERM")]
    [InlineData("KILL")]
    public async Task AptplRegistrationAndReservation_SurviveServeRestart(string signal)
    {
        if (OperatingSystem.IsWindows())
            return;
        const ulong kept = 0xa9_7b_10_00_00_00_00_01;
        const ulong lost = 0xa9_7b_10_00_00_00_00_02;

        await using (var server = await StartAsync())
        {
            // One initiator registers without APTPL, the other with APTPL=1 (which applies to
            // the whole LU's state from then on) and reserves.
            await using (var a = await OpenAsync(server, "iqn.2026-11.dev.sluice:aptpl-a"))
                await RegisterAsync(a, lost, aptpl: false);
            await using var b = await OpenAsync(server, "iqn.2026-11.dev.sluice:aptpl-b");
            await RegisterAsync(b, kept, aptpl: true);
            await ReserveAsync(b, kept);
            Assert.Equal([kept, lost], (await ReadKeysAsync(b)).Order());
            await StopAsync(server, signal);
        }

        await using (var restarted = await StartAsync())
        {
            await using var b = await OpenAsync(restarted, "iqn.2026-11.dev.sluice:aptpl-b");
            // APTPL=1 in the last PERSISTENT RESERVE OUT persisted every registration and the
            // reservation (SPC-4 §5.14.6.2: "all" of the persistent reservation state).
            Assert.Equal([kept, lost], (await ReadKeysAsync(b)).Order());
            Assert.Equal((kept, 1), await ReadReservationAsync(b));
            await StopAsync(restarted, "TERM");
        }
    }

    [Fact]
    public async Task RegistrationWithoutAptpl_IsGoneAfterServeRestart()
    {
        if (OperatingSystem.IsWindows())
            return;
        await using (var server = await StartAsync())
        {
            await using var a = await OpenAsync(server, "iqn.2026-11.dev.sluice:aptpl-a");
            await RegisterAsync(a, 0x1234, aptpl: false);
            Assert.Equal([0x1234UL], await ReadKeysAsync(a));
            await StopAsync(server, "TERM");
        }

        await using (var restarted = await StartAsync())
        {
            await using var a = await OpenAsync(restarted, "iqn.2026-11.dev.sluice:aptpl-a");
            Assert.Empty(await ReadKeysAsync(a));
            Assert.Null(await ReadReservationAsync(a));
            await StopAsync(restarted, "TERM");
        }
    }
}
