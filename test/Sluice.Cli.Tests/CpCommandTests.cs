using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Cli.Commands;
using Sluice.Target;
using Sluice.Target.Configuration;
using static Sluice.Cli.Tests.CliRun;

namespace Sluice.Cli.Tests;

/// <summary>
/// <c>sluice cp</c> in-process against an in-process server: a sparse `file:` LUN (LBPRZ, UNMAP,
/// GET LBA STATUS) and a memory LUN. The same against `sluice serve` and tgtd with 1 GiB is in
/// Sluice.Interop.Tests (CpTests).
/// </summary>
public sealed class CpCommandTests : IAsyncLifetime
{
    private const long LunBytes = 64L << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("sl-cp-").FullName;
    private readonly string _shm = Directory.Exists("/dev/shm") ? Path.Combine("/dev/shm", "sl-cp-" + Guid.NewGuid().ToString("N")[..8]) : "";
    private TargetServer? _server;

    private string Scratch => _shm.Length > 0 ? _shm : _dir;

    private string LunFile => Path.Combine(Scratch, "lun0.img");

    private string Url(int lun) => $"iscsi://127.0.0.1:{_server!.LocalEndpoints[0].Port}/iqn.2026-11.dev.sluice:cp/{lun}";

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Scratch);
        var config = new ServerConfig
        {
            DataDir = _dir,
            Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
            Targets =
            [
                new TargetConfig
                {
                    Name = "iqn.2026-11.dev.sluice:cp",
                    Luns =
                    [
                        new LunConfig { Number = 0, Backend = $"file:{LunFile}:64MiB" },
                        new LunConfig { Number = 1, Backend = "memory:64MiB" },
                        new LunConfig { Number = 2, Backend = "memory:16MiB", ReadOnly = true },
                    ],
                },
            ],
        };
        _server = new TargetServer(config, NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
        if (_shm.Length > 0 && Directory.Exists(_shm))
            Directory.Delete(_shm, recursive: true);
    }

    [Fact]
    public async Task FileToLunToFile_SparseImage_ByteIdenticalAndSparseBothWays()
    {
        string image = Path.Combine(Scratch, "image.raw");
        string back = Path.Combine(Scratch, "back.raw");
        const long size = (60L << 20) + 1000;
        long data = WriteSparseImage(image, size);

        var (code, output, error) = await RunAsync("cp", image, Url(0));
        Assert.True(code == 0, error);
        Assert.Contains("thin yes, LBPRZ yes, zero runs unmapped (UNMAP)", output, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^copy 100% 60\.0 MiB / 60\.0 MiB  [\d.]+ [KMG]?i?B/s  in [\d.]+s\r?$", error);
        Assert.DoesNotContain('\r', error.ReplaceLineEndings("\n"));
        Assert.InRange(AllocatedBytes(LunFile), data, data + (2L << 20));

        (code, output, error) = await RunAsync("cp", Url(0), back);
        Assert.True(code == 0, error);
        Assert.Contains("holes found by GET LBA STATUS: yes", output, StringComparison.Ordinal);
        var expected = new byte[LunBytes];
        await using (var f = File.OpenRead(image))
            f.ReadExactly(expected, 0, (int)size);
        var copied = await File.ReadAllBytesAsync(back);
        Assert.True(expected.AsSpan().SequenceEqual(copied), "the copy out differs from the image");
        Assert.InRange(AllocatedBytes(back), data, data + (2L << 20));
    }

    [Fact]
    public async Task LunToLun_Verify_SaysIdentical()
    {
        string image = Path.Combine(Scratch, "dense.raw");
        var bytes = new byte[8 << 20];
        new Random(5).NextBytes(bytes);
        await File.WriteAllBytesAsync(image, bytes);
        var (code, _, error) = await RunAsync("cp", "--no-progress", image, Url(0));
        Assert.True(code == 0, error);

        (code, var output, error) = await RunAsync("cp", "--verify", "--bs", "256k", "--qd", "3", "--no-progress", Url(0), Url(1));
        Assert.True(code == 0, error);
        Assert.Equal("", error);
        Assert.Contains("verified: source and destination are identical", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "cp", "--bs", "1000", "a", "b" }, "sluice cp: --bs must be a multiple of 4k, at most 64m")]
    [InlineData(new[] { "cp", "--bs", "128m", "a", "b" }, "sluice cp: --bs must be a multiple of 4k, at most 64m")]
    [InlineData(new[] { "cp", "--qd", "0", "a", "b" }, "sluice cp: --qd must be 1..256")]
    [InlineData(new[] { "cp", "/nonexistent/image.raw", "b" }, "sluice cp: /nonexistent/image.raw: no such file")]
    [InlineData(new[] { "cp", "/", "b" }, "sluice cp: / is a directory")]
    [InlineData(new[] { "cp", "iscsi://127.0.0.1/", "b" }, "sluice cp: 'iscsi://127.0.0.1/' names no target (iscsi://host[:port]/target-iqn/lun)")]
    public async Task BadInvocation_OneLineExitTwo(string[] args, string expected)
    {
        var (code, output, error) = await RunAsync(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal(expected + Environment.NewLine, error);
    }

    [Fact]
    public async Task NoSuchLun_OneLineExitOne()
    {
        string image = Path.Combine(Scratch, "small.raw");
        await File.WriteAllBytesAsync(image, new byte[4096]);
        var (code, _, error) = await RunAsync("cp", image, Url(7));
        Assert.Equal(1, code);
        Assert.Equal($"sluice cp: {Url(7)}: no such LUN (the target has LUN 0, 1, 2){Environment.NewLine}", error);
        (code, _, error) = await RunAsync("inq", Url(7));
        Assert.Equal(1, code);
        Assert.Equal($"sluice inq: {Url(7)}: no such LUN (the target has LUN 0, 1, 2){Environment.NewLine}", error);
        (code, _, error) = await RunAsync("bench", "--time", "1s", Url(7));
        Assert.Equal(1, code);
        Assert.Equal($"sluice bench: {Url(7)}: no such LUN{Environment.NewLine}", error);
    }

    [Fact]
    public async Task ReadOnlyLun_WritesRefused_OneLineNamingTheLun_ExitOne()
    {
        string image = Path.Combine(Scratch, "ro.raw");
        var bytes = new byte[4 << 20];
        new Random(6).NextBytes(bytes);
        await File.WriteAllBytesAsync(image, bytes);
        var (code, _, error) = await RunAsync("cp", "--no-progress", "--bs", "64k", image, Url(2));
        Assert.Equal(1, code);
        Assert.Single(error.TrimEnd().Split('\n'));
        Assert.StartsWith($"sluice cp: {Url(2)}: SCSI command 0x", error, StringComparison.Ordinal);
        Assert.Contains("DATA PROTECT", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Progress_Terminal_RedrawsOneLine_ElseFinalLineOnly()
    {
        using var tty = new StringWriter();
        var live = CpProgress.Create(tty, 1 << 20, "copy", live: true);
        live.Report(1 << 19);
        live.Done();
        string drawn = tty.ToString();
        Assert.StartsWith("\rcopy [############............]  50% 512.0 KiB / 1.0 MiB", drawn, StringComparison.Ordinal);
        Assert.Contains("ETA 00:00:", drawn, StringComparison.Ordinal);
        Assert.Contains("\rcopy [########################] 100% 1.0 MiB / 1.0 MiB", drawn, StringComparison.Ordinal);
        Assert.EndsWith(Environment.NewLine, drawn, StringComparison.Ordinal);

        using var log = new StringWriter();
        var plain = CpProgress.Create(log, 1 << 20, "copy", live: false);
        plain.Report(1 << 19); // within the first 10 s: no line yet
        plain.Done();
        Assert.Matches(@"^copy 100% 1\.0 MiB / 1\.0 MiB  [\d.]+ [KMG]?i?B/s  in [\d.]+s\r?\n$", log.ToString());
    }

    /// <summary>~25% random data in 1 MiB slots, 1 MiB of written zeros now and then, the rest holes; a non-zero tail inside the last block.</summary>
    private static long WriteSparseImage(string path, long size)
    {
        var rng = new Random(20261129);
        var pool = new byte[2 << 20];
        rng.NextBytes(pool);
        pool.AsSpan().Replace((byte)0, (byte)7);
        long data = 0;
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1);
        f.SetLength(size);
        const int slot = 1 << 20;
        for (long start = 0; start + slot <= size; start += slot)
        {
            double pick = rng.NextDouble();
            if (pick < 0.5)
            {
                int length = rng.Next(1, (slot / 4096) + 1) * 4096;
                f.Position = start + (rng.Next(0, ((slot - length) / 4096) + 1) * 4096);
                f.Write(pool, rng.Next(0, pool.Length - length), length);
                data += length;
            }
            else if (pick < 0.6)
            {
                f.Position = start;
                f.Write(new byte[slot]);
            }
        }

        f.Position = size - 10;
        f.Write(Enumerable.Repeat((byte)0xEE, 10).ToArray());
        return data + 10;
    }

    /// <summary>st_blocks × 512 (what du counts), from stat(1).</summary>
    private static long AllocatedBytes(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%b %B", path]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string[] parts = p.StandardOutput.ReadToEnd().Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        p.WaitForExit();
        return long.Parse(parts[0], CultureInfo.InvariantCulture) * long.Parse(parts[1], CultureInfo.InvariantCulture);
    }
}
