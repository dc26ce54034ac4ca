using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sluice.Initiator.Tests;

/// <summary>
/// A private tgtd on a free loopback port with its own control port: target 1 plain (a 128 MiB
/// /dev/shm disk at LUN 1; tgt's LUN 0 is a controller), target 2 behind one-way CHAP, target 3
/// behind mutual CHAP. <see cref="SkipReason"/> is set when tgtd is not installed.
/// </summary>
public sealed class TgtdFixture : IAsyncLifetime
{
    public const string PlainTarget = "iqn.2026-11.dev.sluice:init-plain";
    public const string ChapTarget = "iqn.2026-11.dev.sluice:init-chap";
    public const string MutualTarget = "iqn.2026-11.dev.sluice:init-mutual";
    /// <summary>A target that accepts HeaderDigest and DataDigest = CRC32C (tgt offers None only by default).</summary>
    public const string DigestTarget = "iqn.2026-11.dev.sluice:init-digest";
    public const string ChapUser = "sluiceuser";
    public const string ChapSecret = "sluicesecret1";
    public const string TargetUser = "tgtuser";
    public const string TargetSecret = "tgtsecret123";
    public const long DiskBytes = 128L << 20;

    private Process? _tgtd;
    private readonly List<string> _files = [];

    public string? SkipReason { get; private set; }

    public int Port { get; private set; }

    public int ControlPort { get; private set; }

    public string Host => "127.0.0.1";

    public IscsiUrl Url(string target = PlainTarget, int lun = 1) => new() { Host = Host, Port = Port, Target = target, Lun = lun };

    public static string? FindTool(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/sbin"]))
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }

    public async Task InitializeAsync()
    {
        var tgtd = FindTool("tgtd");
        if (tgtd is null || FindTool("tgtadm") is null)
        {
            SkipReason = "tgtd/tgtadm not installed";
            return;
        }

        Port = FreePort();
        do
        {
            ControlPort = Random.Shared.Next(1000, 31000);
        }
        while (File.Exists($"/var/run/tgtd/socket.{ControlPort}"));

        var psi = new ProcessStartInfo(tgtd)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-f", "-C", Inv(ControlPort), "--iscsi", $"portal=127.0.0.1:{Port}" })
        {
            psi.ArgumentList.Add(a);
        }

        _tgtd = Process.Start(psi)!;
        _tgtd.OutputDataReceived += (_, _) => { };
        _tgtd.ErrorDataReceived += (_, _) => { };
        _tgtd.BeginOutputReadLine();
        _tgtd.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                break;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !_tgtd.HasExited)
            {
                await Task.Delay(50);
            }
        }

        await AddTargetAsync(1, PlainTarget, DiskBytes);
        await AddTargetAsync(2, ChapTarget, 8L << 20);
        await AddTargetAsync(3, MutualTarget, 8L << 20);
        await AddTargetAsync(4, DigestTarget, 8L << 20);
        await TgtadmAsync("--op", "update", "--mode", "target", "--tid", "4", "--name", "HeaderDigest", "--value", "CRC32C,None");
        await TgtadmAsync("--op", "update", "--mode", "target", "--tid", "4", "--name", "DataDigest", "--value", "CRC32C,None");
        await TgtadmAsync("--op", "new", "--mode", "account", "--user", ChapUser, "--password", ChapSecret);
        await TgtadmAsync("--op", "new", "--mode", "account", "--user", TargetUser, "--password", TargetSecret);
        await TgtadmAsync("--op", "bind", "--mode", "account", "--tid", "2", "--user", ChapUser);
        await TgtadmAsync("--op", "bind", "--mode", "account", "--tid", "3", "--user", ChapUser);
        await TgtadmAsync("--op", "bind", "--mode", "account", "--tid", "3", "--user", TargetUser, "--outgoing");
    }

    private async Task AddTargetAsync(int tid, string iqn, long bytes)
    {
        var file = $"/dev/shm/sluice-init-{Environment.ProcessId}-{ControlPort}-{tid}.img";
        await using (var fs = File.Create(file))
        {
            fs.SetLength(bytes);
        }

        _files.Add(file);
        await TgtadmAsync("--op", "new", "--mode", "target", "--tid", Inv(tid), "-T", iqn);
        await TgtadmAsync("--op", "new", "--mode", "logicalunit", "--tid", Inv(tid), "--lun", "1", "-b", file);
        await TgtadmAsync("--op", "bind", "--mode", "target", "--tid", Inv(tid), "-I", "ALL");
    }

    public async Task TgtadmAsync(params string[] args)
    {
        var psi = new ProcessStartInfo(FindTool("tgtadm")!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-C");
        psi.ArgumentList.Add(Inv(ControlPort));
        psi.ArgumentList.Add("--lld");
        psi.ArgumentList.Add("iscsi");
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"tgtadm {string.Join(' ', args)} failed: {err}");
        }
    }

    public Task DisposeAsync()
    {
        if (_tgtd is { HasExited: false })
        {
            _tgtd.Kill();
            _tgtd.WaitForExit(5000);
        }

        _tgtd?.Dispose();
        foreach (var f in _files)
        {
            File.Delete(f);
        }

        return Task.CompletedTask;
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static string Inv(int v) => v.ToString(CultureInfo.InvariantCulture);
}
