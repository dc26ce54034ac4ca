using System.Globalization;
using Sluice.Initiator;
using Sluice.Interop.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Sluice.Interop.Tests;

/// <summary>
/// <c>sluice cp</c> (the real process, `dotnet sluice.dll cp`) into a LUN and back out, against
/// `sluice serve` and tgtd: a 1 GiB sparse image stays sparse on the target's backing file and in
/// the copy that comes back, which is byte-identical; digests and CHAP; a LUN without LBPRZ gets
/// its zeros written; errors are one line with a non-zero exit.
/// </summary>
public abstract class CpTests<TFixture>(TFixture target, ITestOutputHelper output) : IDisposable where TFixture : TargetFixture
{
    private static readonly TimeSpan CpTimeout = TimeSpan.FromSeconds(120);
    private readonly string _dir = Directory.CreateTempSubdirectory("sluice-cp-").FullName;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private readonly string _shm = Path.Combine("/dev/shm", $"sluice-cp-{Environment.ProcessId}-{Guid.NewGuid():N}");

    protected TFixture Target { get; } = target;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        if (Directory.Exists(_shm))
            Directory.Delete(_shm, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Scratch space on tmpfs (holes, SEEK_DATA, and no disk I/O), else the temp directory.</summary>
    private string Scratch(string name)
    {
        if (Directory.Exists("/dev/shm"))
        {
            Directory.CreateDirectory(_shm);
            return Path.Combine(_shm, name);
        }

        return Path.Combine(_dir, name);
    }

    private void Step(string what) => output.WriteLine($"{_clock.Elapsed.TotalSeconds,6:0.00}s {what}");

    private void SkipUnlessUp() => Skip.If(Target.SkipReason is not null, Target.SkipReason);

    private static Task<ToolResult> Sluice(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [SluiceTargetFixture.SluiceDll, .. args], CpTimeout);

    private void AssertSucceeded(ToolResult r) =>
        Assert.True(r.Succeeded, $"{r}\n--- {Target.Kind} server\n{Target.ServerLog}");

    [SkippableFact]
    public async Task Cp_SparseImage1GiB_IntoThinLunAndBack_ByteIdenticalAndSparseOnBothSides()
    {
        SkipUnlessUp();
        string image = Scratch("image.raw");
        string back = Scratch("back.raw");
        long data = SparseImage.Create(image, TargetFixture.ThinLunBytes, seed: Target.Kind.Length, out long zerosWritten);
        Assert.InRange(data, TargetFixture.ThinLunBytes / 5, TargetFixture.ThinLunBytes / 3); // ~25% data
        Step($"image: {data >> 20} MiB of data, {zerosWritten >> 20} MiB of written zeros");

        // Stale data on the LUN where the image has holes must not survive the copy.
        await using (var lun = await IscsiLun.OpenAsync(IscsiUrl.Parse(Target.Thin.Url())))
        {
            var junk = new byte[4 << 20];
            new Random(1).NextBytes(junk);
            foreach (long at in new[] { 0L, 300L << 20, (1L << 30) - junk.Length })
                await lun.WriteAsync(at / lun.BlockSize, junk);
        }

        var into = await Sluice("cp", image, Target.Thin.Url());
        Step("cp into the LUN: " + into.StdOut.Trim());
        AssertSucceeded(into);
        Assert.Contains("zero runs unmapped", into.StdOut, StringComparison.Ordinal);
        AssertProgressLine(into.StdErr, "1.0 GiB");

        // The target allocated about the data, not 1 GiB: holes and the image's written zeros were unmapped.
        long allocated = AllocatedBytes(Target.ThinBackingFile);
        Assert.True(allocated <= data + (16L << 20),
            $"{Target.Kind}'s backing file has {allocated >> 20} MiB allocated for {data >> 20} MiB of data ({zerosWritten >> 20} MiB of written zeros in the image)\n{into}");
        Assert.True(allocated >= data - (1L << 20), $"backing file {allocated} bytes allocated, less than the {data} bytes of data");

        var outOf = await Sluice("cp", Target.Thin.Url(), back);
        Step("cp out of the LUN: " + outOf.StdOut.Trim());
        AssertSucceeded(outOf);
        Assert.Contains("holes found by GET LBA STATUS: yes", outOf.StdOut, StringComparison.Ordinal);
        AssertProgressLine(outOf.StdErr, "1.0 GiB");
        Assert.Equal(TargetFixture.ThinLunBytes, new FileInfo(back).Length);
        AssertSameBytes(image, back);
        Step("compared");
        long backAllocated = AllocatedBytes(back);
        Assert.True(backAllocated <= data + (16L << 20), $"the copy out has {backAllocated >> 20} MiB allocated for {data >> 20} MiB of data\n{outOf}");
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Cp_DenseImage_DigestsAndChap_RoundTripsAndVerifies(bool mutual)
    {
        SkipUnlessUp();
        var endpoint = mutual ? Target.MutualChap : Target.Chap;
        string image = Scratch("dense.raw");
        string back = Scratch("dense-back.raw");
        var bytes = new byte[8 << 20]; // the whole CHAP LUN
        new Random(mutual ? 3 : 4).NextBytes(bytes);
        await File.WriteAllBytesAsync(image, bytes);
        string[] auth = mutual
            ? ["--chap", $"{TargetFixture.ChapUser}:{TargetFixture.ChapSecret}", "--mutual-chap", $"{TargetFixture.MutualUser}:{TargetFixture.MutualSecret}"]
            : ["--chap", $"{TargetFixture.ChapUser}:{TargetFixture.ChapSecret}"];

        var into = await Sluice(["cp", "--digest", "--verify", "--bs", "256k", .. auth, image, endpoint.Url()]);
        AssertSucceeded(into);
        Assert.Contains("HeaderDigest CRC32C, DataDigest CRC32C", into.StdOut, StringComparison.Ordinal);
        Assert.Contains("verified: source and destination are identical", into.StdOut, StringComparison.Ordinal);

        var outOf = await Sluice(["cp", "--digest", .. auth, endpoint.Url(), back]);
        AssertSucceeded(outOf);
        Assert.Contains("HeaderDigest CRC32C, DataDigest CRC32C", outOf.StdOut, StringComparison.Ordinal);
        AssertSameBytes(image, back);
    }

    [SkippableFact]
    public async Task Cp_SparseImageWithOddTail_OverLunFullOfData_ZerosLandAndTailBlockKept()
    {
        SkipUnlessUp();
        var url = IscsiUrl.Parse(Target.Main.Url());
        await using var lun = await IscsiLun.OpenAsync(url);
        var junk = new byte[TargetFixture.MainLunBytes / 2];
        new Random(9).NextBytes(junk);
        await lun.WriteAsync(0, junk);
        await lun.WriteAsync(junk.Length / lun.BlockSize, junk);
        var capacity = await lun.ReadCapacityAsync();

        string image = Scratch("odd.raw");
        const long size = (48L << 20) + 1000; // ends 1000 bytes into a block: read-modify-write
        SparseImage.Create(image, size, seed: 77, out _);
        var r = await Sluice("cp", "--verify", image, Target.Main.Url());
        AssertSucceeded(r);
        Assert.Contains("verified: source and destination are identical", r.StdOut, StringComparison.Ordinal);
        if (!capacity.ReadsZerosAfterUnmap)
            Assert.Contains("zero runs written only where the LUN held data", r.StdOut, StringComparison.Ordinal);

        var onLun = new byte[size + (lun.BlockSize - (size % lun.BlockSize))];
        await lun.ReadAsync(0, onLun);
        var expected = await File.ReadAllBytesAsync(image);
        Assert.True(expected.AsSpan().SequenceEqual(onLun.AsSpan(0, (int)size)), "the LUN does not hold the image");
        Assert.True(junk.AsSpan((int)size, onLun.Length - (int)size).SequenceEqual(onLun.AsSpan((int)size)),
            "the rest of the last block was not kept");
    }

    [SkippableFact]
    public async Task Errors_OneLineAndNonZeroExit()
    {
        SkipUnlessUp();
        string image = Scratch("e.raw");
        await File.WriteAllBytesAsync(image, new byte[4096]);
        var noLun = Target.Main with { Lun = 9 };
        int closedPort = Ports.FreeTcpPort();

        // Independent runs, started together: each is a process start on a busy machine.
        var runs = new List<Task>
        {
            AssertOneLineError(Sluice("cp", image, noLun.Url()), 1, $"sluice cp: {noLun.Url()}: no such LUN (the target has LUN "),
            AssertOneLineError(Sluice("cp", noLun.Url(), Scratch("x.raw")), 1, "no such LUN"),
            AssertOneLineError(Sluice("inq", noLun.Url()), 1, $"sluice inq: {noLun.Url()}: no such LUN"),
            AssertOneLineError(Sluice("bench", "--time", "1s", noLun.Url()), 1, $"sluice bench: {noLun.Url()}: no such LUN"),
            AssertOneLineError(Sluice("cp", "--chap", $"{TargetFixture.ChapUser}:wrong-secret-9", image, Target.Chap.Url()), 1,
                "sluice cp: login failed: authentication failure (status 0x0201)"),
            AssertOneLineError(Sluice("cp", image, Target.Chap.Url()), 1, "sluice cp: login failed: authentication failure"),
            AssertOneLineError(Sluice("cp", image, (Target.Main with { Iqn = "iqn.2026-11.dev.sluice:nope" }).Url()), 1,
                "sluice cp: login failed: target not found (status 0x0203)"),
            AssertOneLineError(Sluice("cp", Scratch("missing.raw"), Target.Main.Url()), 2, "no such file"),
        };
        var unreachable = Target.Main with { Port = closedPort };
        runs.Add(AssertOneLineError(Sluice("ls", unreachable.PortalUrl()), 1, $"sluice ls: cannot connect to 127.0.0.1:{closedPort}"));
        runs.Add(AssertOneLineError(Sluice("inq", unreachable.Url()), 1, $"sluice inq: cannot connect to 127.0.0.1:{closedPort}"));
        runs.Add(AssertOneLineError(Sluice("cp", image, unreachable.Url()), 1, $"sluice cp: cannot connect to 127.0.0.1:{closedPort}"));
        runs.Add(AssertOneLineError(Sluice("bench", "--time", "1s", unreachable.Url()), 1, $"sluice bench: cannot connect to 127.0.0.1:{closedPort}"));
        await Task.WhenAll(runs);
    }

    private static async Task AssertOneLineError(Task<ToolResult> run, int exitCode, string expected)
    {
        var r = await run;
        Assert.False(r.TimedOut, r.ToString());
        Assert.True(r.ExitCode == exitCode, $"exit {r.ExitCode}, expected {exitCode}\n{r}");
        string[] lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr\n{r}");
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
    }

    /// <summary>Not a terminal: no carriage-return redraws, a final line with the total, the rate and the time.</summary>
    private static void AssertProgressLine(string stderr, string total)
    {
        Assert.DoesNotContain('\r', stderr);
        Assert.Matches($@"(?m)^copy 100% {System.Text.RegularExpressions.Regex.Escape(total)} / {System.Text.RegularExpressions.Regex.Escape(total)}  [\d.]+ [KMG]?i?B/s  in [\d.]+s$", stderr);
    }

    private static void AssertSameBytes(string a, string b)
    {
        using var fa = new FileStream(a, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        using var fb = new FileStream(b, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        Assert.Equal(fa.Length, fb.Length);
        var ba = new byte[8 << 20];
        var bb = new byte[8 << 20];
        for (long offset = 0; offset < fa.Length;)
        {
            int n = fa.ReadAtLeast(ba, ba.Length, throwOnEndOfStream: false);
            fb.ReadExactly(bb, 0, n);
            int same = ba.AsSpan(0, n).CommonPrefixLength(bb.AsSpan(0, n));
            Assert.True(same == n, $"{a} and {b} differ at byte {offset + same}");
            offset += n;
        }
    }

    /// <summary>st_blocks × 512, as du counts.</summary>
    private static long AllocatedBytes(string path)
    {
        var r = ProcessRunner.RunAsync("stat", ["-c", "%b %B", path], TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        Assert.True(r.Succeeded, r.ToString());
        var parts = r.StdOut.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return long.Parse(parts[0], CultureInfo.InvariantCulture) * long.Parse(parts[1], CultureInfo.InvariantCulture);
    }
}

/// <summary>A sparse image: random data in scattered extents (~25%), the rest holes, plus runs of written zeros.</summary>
internal static class SparseImage
{
    /// <summary>Creates the file and returns the bytes of non-zero data in it; <paramref name="zerosWritten"/> are allocated zeros.</summary>
    public static long Create(string path, long size, int seed, out long zerosWritten)
    {
        var rng = new Random(seed);
        const long slot = 4L << 20;
        long data = 0;
        zerosWritten = 0;
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1);
        f.SetLength(size);
        var buffer = new byte[slot];
        // Extents copy from a random pool at random offsets: distinct contents without generating 256 MiB.
        var pool = new byte[2 * slot];
        rng.NextBytes(pool);
        pool.AsSpan().Replace((byte)0, (byte)1); // every data byte non-zero: exact accounting
        for (long start = 0; start < size; start += slot)
        {
            long room = Math.Min(slot, size - start);
            double pick = rng.NextDouble();
            if (pick < 0.5 && room >= 4096)
            {
                // An extent of 4 KiB .. the slot, 4 KiB aligned; odd lengths where the slot allows.
                int length = (int)(rng.NextInt64(1, (room / 4096) + 1) * 4096);
                long at = start + (rng.NextInt64(0, ((room - length) / 4096) + 1) * 4096);
                if (rng.Next(4) == 0 && length > 8192)
                    length -= rng.Next(1, 4096);
                f.Position = at;
                f.Write(pool, rng.Next(0, pool.Length - length + 1), length);
                data += length;
            }
            else if (pick < 0.55 && room >= 1 << 20)
            {
                // Zeros that are really written: cp must find them by reading, not by SEEK_HOLE.
                buffer.AsSpan(0, 1 << 20).Clear();
                f.Position = start;
                f.Write(buffer, 0, 1 << 20);
                zerosWritten += 1 << 20;
            }
        }

        if (size % 4096 != 0 && size > 4096)
        {
            // A non-zero tail that ends inside a block.
            f.Position = size - 100;
            f.Write(Enumerable.Repeat((byte)0xA5, 100).ToArray());
            data += 100;
        }

        return data;
    }
}

[Collection(TgtCollection.Name)]
public sealed class TgtCpTests(TgtTargetFixture target, ITestOutputHelper output) : CpTests<TgtTargetFixture>(target, output);

[Collection(SluiceCollection.Name)]
public sealed class SluiceCpTests(SluiceTargetFixture target, ITestOutputHelper output) : CpTests<SluiceTargetFixture>(target, output);
