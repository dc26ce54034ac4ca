using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Sluice.Initiator;

namespace Sluice.Cli.Commands;

/// <summary>
/// <c>sluice cp SRC DST</c>: file to LUN, LUN to file, or LUN to LUN, with QD chunks in flight.
/// Zero chunks are not written: to a LUN they become UNMAP (or WRITE SAME with UNMAP) when the
/// target advertises it and reads unmapped blocks as zeros (VPD B2h/LBPRZ); otherwise the chunk
/// is read first and skipped only if the LUN already holds zeros there. To a file they become holes.
/// </summary>
internal static class CpCommand
{
    private static readonly Argument<string> s_source = new("source") { Description = "A file or iscsi://host[:port]/target-iqn/lun" };
    private static readonly Argument<string> s_destination = new("destination") { Description = "A file or iscsi://host[:port]/target-iqn/lun" };
    private static readonly Option<string> s_bs = new("--bs") { Description = "Chunk size. [default: 1m]", HelpName = "SIZE" };
    private static readonly Option<int> s_qd = new("--qd") { Description = "Chunks in flight. [default: 8]", DefaultValueFactory = _ => 8 };
    private static readonly Option<bool> s_verify = new("--verify") { Description = "Read both sides back and compare after copying." };
    private static readonly Option<bool> s_noProgress = new("--no-progress") { Description = "Do not draw the progress line on stderr." };
    private static readonly Option<string> s_chap = ClientCommon.ChapOption();
    private static readonly Option<string> s_mutual = ClientCommon.MutualChapOption();
    private static readonly Option<string> s_initiator = ClientCommon.InitiatorNameOption();

    public static Command Create()
    {
        var command = new Command("cp", "Copy a file to a LUN, a LUN to a file, or a LUN to a LUN; zero runs become UNMAP/WRITE SAME or holes.")
        {
            s_source, s_destination, s_bs, s_qd, s_verify, s_noProgress, s_chap, s_mutual, s_initiator,
        };
        command.SetAction((parse, ct) => ClientRunner.RunAsync("cp", parse.InvocationConfiguration.Error,
            () => RunAsync(parse, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct)));
        return command;
    }

    private interface IEnd : IAsyncDisposable
    {
        long Length { get; }
        string Name { get; }
        ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct);
        ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct);
        ValueTask WriteZerosAsync(long offset, int length, Memory<byte> scratch, CancellationToken ct);
        ValueTask FinishAsync(CancellationToken ct);
    }

    private static async Task<int> RunAsync(ParseResult parse, TextWriter output, TextWriter error, CancellationToken ct)
    {
        int chunk = (int)Math.Min(ClientCommon.ParseSize(parse.GetValue(s_bs) ?? "1m", "--bs"), 64L << 20);
        int qd = parse.GetValue(s_qd);
        if (qd is < 1 or > 256)
        {
            throw new UsageException("--qd must be 1..256");
        }

        var options = ClientCommon.Options(parse, s_chap, s_mutual, s_initiator, qd * 2);
        string src = parse.GetValue(s_source)!;
        string dst = parse.GetValue(s_destination)!;
        await using var source = await OpenAsync(src, options, isSource: true, 0, ct);
        await using var destination = await OpenAsync(dst, options, isSource: false, source.Length, ct);
        long total = source.Length;
        if (destination is LunEnd d && total > d.Length)
        {
            throw new UsageException($"{src} is {total} bytes, larger than {dst} ({d.Length} bytes)");
        }

        if (chunk % 4096 != 0 && (source is LunEnd || destination is LunEnd))
        {
            throw new UsageException("--bs must be a multiple of 4k");
        }

        var progress = parse.GetValue(s_noProgress) ? null : new CpProgress(error, total, "copy");
        long next = 0;
        long done = 0;
        long zeroBytes = 0;

        async Task Worker()
        {
            var buffer = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
            var scratch = new byte[chunk];
            while (true)
            {
                long offset = Interlocked.Add(ref next, chunk) - chunk;
                if (offset >= total)
                {
                    return;
                }

                int n = (int)Math.Min(chunk, total - offset);
                var mem = buffer.AsMemory(0, n);
                await source.ReadAsync(offset, mem, ct);
                if (!mem.Span.ContainsAnyExcept((byte)0))
                {
                    await destination.WriteZerosAsync(offset, n, scratch, ct);
                    Interlocked.Add(ref zeroBytes, n);
                }
                else
                {
                    await destination.WriteAsync(offset, mem, ct);
                }

                progress?.Report(Interlocked.Add(ref done, n));
            }
        }

        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, qd).Select(_ => Task.Run(Worker, ct)));
        await destination.FinishAsync(ct);
        progress?.Done();
        double seconds = sw.Elapsed.TotalSeconds;
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"copied {ClientCommon.FormatBytes(total)} in {seconds:0.00}s ({ClientCommon.FormatBytes(total / Math.Max(seconds, 1e-9))}/s), {ClientCommon.FormatBytes(zeroBytes)} of zeros not written"));

        if (parse.GetValue(s_verify))
        {
            var verify = parse.GetValue(s_noProgress) ? null : new CpProgress(error, total, "verify");
            long vnext = 0;
            long vdone = 0;
            long mismatch = -1;

            async Task Verifier()
            {
                var a = new byte[chunk];
                var b = new byte[chunk];
                while (Volatile.Read(ref mismatch) < 0)
                {
                    long offset = Interlocked.Add(ref vnext, chunk) - chunk;
                    if (offset >= total)
                    {
                        return;
                    }

                    int n = (int)Math.Min(chunk, total - offset);
                    await source.ReadAsync(offset, a.AsMemory(0, n), ct);
                    await destination.ReadAsync(offset, b.AsMemory(0, n), ct);
                    int diff = a.AsSpan(0, n).CommonPrefixLength(b.AsSpan(0, n));
                    if (diff < n)
                    {
                        Interlocked.CompareExchange(ref mismatch, offset + diff, -1);
                        return;
                    }

                    verify?.Report(Interlocked.Add(ref vdone, n));
                }
            }

            await Task.WhenAll(Enumerable.Range(0, qd).Select(_ => Task.Run(Verifier, ct)));
            verify?.Done();
            if (mismatch >= 0)
            {
                await error.WriteLineAsync($"sluice cp: verify failed: {src} and {dst} differ at byte {mismatch}");
                return ExitCodes.Failure;
            }

            await output.WriteLineAsync("verified: source and destination are identical");
        }

        return ExitCodes.Success;
    }

    private static async Task<IEnd> OpenAsync(string spec, IscsiClientOptions options, bool isSource, long sourceLength, CancellationToken ct)
    {
        if (spec.StartsWith("iscsi://", StringComparison.OrdinalIgnoreCase))
        {
            var url = ClientCommon.ParseUrl(spec, needTarget: true);
            var lun = await IscsiLun.OpenAsync(url, options with { ChapUser = options.ChapUser ?? url.User, ChapSecret = options.ChapSecret ?? url.Secret }, ct);
            var end = new LunEnd(lun, spec);
            await end.LearnProvisioningAsync(ct);
            return end;
        }

        if (isSource)
        {
            if (!File.Exists(spec))
            {
                throw new UsageException($"{spec}: no such file");
            }

            var h = File.OpenHandle(spec, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous);
            return new FileEnd(h, spec, RandomAccess.GetLength(h), write: false);
        }

        var w = File.OpenHandle(spec, FileMode.Create, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous);
        return new FileEnd(w, spec, sourceLength, write: true);
    }

    private sealed class FileEnd(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string name, long length, bool write) : IEnd
    {
        public long Length => length;

        public string Name => name;

        public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct)
        {
            int got = 0;
            while (got < buffer.Length)
            {
                int n = await RandomAccess.ReadAsync(handle, buffer[got..], offset + got, ct);
                if (n == 0)
                {
                    buffer.Span[got..].Clear(); // a hole past the end reads as zeros
                    return;
                }

                got += n;
            }
        }

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct) => RandomAccess.WriteAsync(handle, data, offset, ct);

        /// <summary>The file was created empty: leaving a hole is writing zeros.</summary>
        public ValueTask WriteZerosAsync(long offset, int length, Memory<byte> scratch, CancellationToken ct) => ValueTask.CompletedTask;

        public ValueTask FinishAsync(CancellationToken ct)
        {
            if (write)
            {
                RandomAccess.SetLength(handle, length);
                RandomAccess.FlushToDisk(handle);
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            handle.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private sealed class LunEnd(IscsiLun lun, string name) : IEnd
    {
        private bool _unmap;
        private bool _writeSameUnmap;
        private bool _readsZeros;

        public long Length => lun.SizeBytes;

        public string Name => name;

        public async Task LearnProvisioningAsync(CancellationToken ct)
        {
            var cap = await lun.ReadCapacityAsync(ct);
            _readsZeros = cap.ReadsZerosAfterUnmap;
            try
            {
                if ((await lun.SupportedVpdPagesAsync(ct)).Contains((byte)0xB2))
                {
                    var lbp = LogicalBlockProvisioning.Parse(await lun.InquiryAsync(0xB2, ct));
                    _unmap = lbp.Unmap;
                    _writeSameUnmap = lbp.WriteSame16Unmap;
                    _readsZeros |= lbp.ReadZeros;
                }
            }
            catch (ScsiCommandException)
            {
            }
        }

        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct)
        {
            int bs = lun.BlockSize;
            if (buffer.Length % bs == 0)
            {
                return lun.ReadAsync(offset / bs, buffer, ct);
            }

            return ReadTailAsync(offset, buffer, ct);
        }

        private async ValueTask ReadTailAsync(long offset, Memory<byte> buffer, CancellationToken ct)
        {
            await using var s = lun.AsStream();
            s.Position = offset;
            await s.ReadExactlyAsync(buffer, ct);
        }

        public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            int bs = lun.BlockSize;
            if (data.Length % bs == 0)
            {
                await lun.WriteAsync(offset / bs, data, cancellationToken: ct);
                return;
            }

            // The source's last partial block: read-modify-write keeps the rest of the LUN's block.
            await using var s = lun.AsStream();
            s.Position = offset;
            await s.WriteAsync(data, ct);
        }

        public async ValueTask WriteZerosAsync(long offset, int length, Memory<byte> scratch, CancellationToken ct)
        {
            int bs = lun.BlockSize;
            if (length % bs == 0 && _readsZeros && (_unmap || _writeSameUnmap))
            {
                try
                {
                    if (_unmap)
                    {
                        await lun.UnmapAsync([new BlockRange(offset / bs, length / bs)], ct);
                    }
                    else
                    {
                        await lun.WriteSameAsync(offset / bs, length / bs, new byte[bs], unmap: true, ct);
                    }

                    return;
                }
                catch (ScsiCommandException)
                {
                    // Advertised but refused: fall through to the careful path.
                }
            }

            // Skip only what the LUN already reads as zeros.
            var current = scratch[..length];
            await ReadAsync(offset, current, ct);
            if (current.Span.ContainsAnyExcept((byte)0))
            {
                current.Span.Clear();
                await WriteAsync(offset, current, ct);
            }
        }

        public async ValueTask FinishAsync(CancellationToken ct) => await lun.SynchronizeCacheAsync(cancellationToken: ct);

        public ValueTask DisposeAsync() => lun.DisposeAsync();
    }
}

/// <summary>A one-line progress bar on stderr: bytes, percent, rate, ETA; redrawn at most 5 times a second.</summary>
internal sealed class CpProgress(TextWriter error, long total, string label)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _lastDraw = -1;
    private readonly Lock _lock = new();

    public void Report(long done)
    {
        long now = _clock.ElapsedMilliseconds;
        if (now - Volatile.Read(ref _lastDraw) < 200 && done < total)
        {
            return;
        }

        lock (_lock)
        {
            _lastDraw = now;
            double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
            double rate = done / seconds;
            double eta = rate > 0 ? (total - done) / rate : 0;
            int pct = total == 0 ? 100 : (int)(done * 100 / total);
            int width = 24;
            int filled = pct * width / 100;
            error.Write(string.Create(CultureInfo.InvariantCulture,
                $"\r{label} [{new string('#', filled)}{new string('.', width - filled)}] {pct,3}% {ClientCommon.FormatBytes(done)} / {ClientCommon.FormatBytes(total)}  {ClientCommon.FormatBytes(rate)}/s  ETA {TimeSpan.FromSeconds(Math.Ceiling(eta)):hh\\:mm\\:ss}   "));
        }
    }

    public void Done()
    {
        Report(total);
        error.WriteLine();
    }
}
