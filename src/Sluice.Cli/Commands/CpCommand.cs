using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Win32.SafeHandles;
using Sluice.Initiator;

namespace Sluice.Cli.Commands;

/// <summary>
/// <c>sluice cp SRC DST</c>: file to LUN, LUN to file, or LUN to LUN, with QD chunks in flight.
/// <para>
/// Sparse handling. The source is mapped before it is read: a local file's holes come from
/// <c>SEEK_DATA/SEEK_HOLE</c>, a LUN's from GET LBA STATUS (deallocated blocks, trusted only when the
/// unit reads them as zeros: LBPRZ). Holes are not read. What is read is checked for zeros 4 KiB
/// (or one block, if larger) at a time. Zero runs are then not written: to a file they stay holes;
/// to a LUN that reports LBPRZ they become UNMAP (or WRITE SAME(16) with UNMAP), per VPD B2h; to any
/// other LUN the run is read and written as zeros only where the LUN doesn't already hold zeros.
/// </para>
/// </summary>
internal static class CpCommand
{
    /// <summary>Zero detection granule: a file system block, and a whole number of logical blocks.</summary>
    private const int Granule = 4096;

    /// <summary>Shortest zero run sent as its own WRITE SAME or read-and-compare; shorter ones are written with their data.</summary>
    private const int MinCommandZeroRun = 64 * 1024;

    private static readonly Argument<string> s_source = new("source") { Description = "A file or iscsi://host[:port]/target-iqn/lun" };
    private static readonly Argument<string> s_destination = new("destination") { Description = "A file or iscsi://host[:port]/target-iqn/lun" };
    private static readonly Option<string> s_bs = new("--bs") { Description = "Chunk size, a multiple of 4k. [default: 1m]", HelpName = "SIZE" };
    private static readonly Option<int> s_qd = new("--qd") { Description = "Chunks in flight.", DefaultValueFactory = _ => 8, HelpName = "N" };
    private static readonly Option<bool> s_verify = new("--verify") { Description = "Read both sides back and compare after copying." };
    private static readonly Option<bool> s_noProgress = new("--no-progress") { Description = "No progress on stderr (by default a live bar on a terminal, a line every 10 s and a final line otherwise)." };
    private static readonly Option<bool> s_digest = new("--digest") { Description = "Offer HeaderDigest and DataDigest = CRC32C." };
    private static readonly Option<string> s_chap = ClientCommon.ChapOption();
    private static readonly Option<string> s_mutual = ClientCommon.MutualChapOption();
    private static readonly Option<string> s_initiator = ClientCommon.InitiatorNameOption();

    public static Command Create()
    {
        var command = new Command("cp", "Copy a file to a LUN, a LUN to a file, or a LUN to a LUN; holes and zero runs become UNMAP/WRITE SAME or holes.")
        {
            s_source, s_destination, s_bs, s_qd, s_verify, s_noProgress, s_digest, s_chap, s_mutual, s_initiator,
        };
        command.SetAction((parse, ct) => ClientRunner.RunAsync("cp", parse.InvocationConfiguration.Error,
            () => RunAsync(parse, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct)));
        return command;
    }

    /// <summary>One side of the copy.</summary>
    private interface IEnd : IAsyncDisposable
    {
        long Length { get; }

        /// <summary>Alignment reads and writes need (1 for a file, the block size for a LUN).</summary>
        int Alignment { get; }

        /// <summary>Shortest zero run worth handing to <see cref="WriteZerosAsync"/> rather than writing.</summary>
        int MinZeroRun { get; }

        /// <summary>How zero runs are written, for the summary.</summary>
        string ZeroMethod { get; }

        /// <summary>[offset, offset+length) as pieces known to read zeros without being read (holes) or not.</summary>
        ValueTask<List<(long Offset, long Length, bool Hole)>> MapAsync(long offset, long length, CancellationToken ct);

        ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct);

        ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct);

        /// <summary>Makes each range read zeros; <paramref name="scratch"/> is chunk-sized working memory.</summary>
        ValueTask WriteZerosAsync(List<(long Offset, int Length)> ranges, Memory<byte> scratch, CancellationToken ct);

        ValueTask FinishAsync(CancellationToken ct);
    }

    private static async Task<int> RunAsync(ParseResult parse, TextWriter output, TextWriter error, CancellationToken ct)
    {
        long bs = ClientCommon.ParseSize(parse.GetValue(s_bs) ?? "1m", "--bs");
        if (bs % Granule != 0 || bs > 64L << 20)
        {
            throw new UsageException("--bs must be a multiple of 4k, at most 64m");
        }

        int chunk = (int)bs;
        int qd = parse.GetValue(s_qd);
        if (qd is < 1 or > 256)
        {
            throw new UsageException("--qd must be 1..256");
        }

        var options = ClientCommon.Options(parse, s_chap, s_mutual, s_initiator, qd * 2);
        if (parse.GetValue(s_digest))
        {
            options = options with { HeaderDigest = DigestPreference.Crc32C, DataDigest = DigestPreference.Crc32C };
        }

        string src = parse.GetValue(s_source)!;
        string dst = parse.GetValue(s_destination)!;
        await using var source = await OpenAsync(src, options, isSource: true, 0, ct);
        await using var destination = await OpenAsync(dst, options, isSource: false, source.Length, ct);
        long total = source.Length;
        if (destination is LunEnd d && total > d.Length)
        {
            throw new UsageException($"{Display(src)} is {total} bytes, larger than {Display(dst)} ({d.Length} bytes)");
        }

        if (chunk % Math.Max(source.Alignment, destination.Alignment) != 0)
        {
            throw new UsageException($"--bs must be a multiple of the {Math.Max(source.Alignment, destination.Alignment)}-byte block size");
        }

        foreach (var end in new[] { source, destination })
        {
            if (end is LunEnd lun)
            {
                await output.WriteLineAsync(lun.Describe(end == source ? "from" : "to"));
            }
        }

        // The granule is 4 KiB, or one block of a LUN with larger blocks (chunks are a multiple of both).
        int granule = Math.Max(Granule, Math.Max(source.Alignment, destination.Alignment));
        int minZeroRun = Math.Max(granule, destination.MinZeroRun);
        bool noProgress = parse.GetValue(s_noProgress);
        var progress = noProgress ? null : CpProgress.Create(error, total, "copy");
        long next = 0;
        long done = 0;
        long zeroBytes = 0;
        long holeBytes = 0;

        async Task Worker(CancellationToken ct)
        {
            var buffer = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
            var scratch = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
            var zeroRanges = new List<(long, int)>();
            bool atSource = true;
            try
            {
                while (true)
                {
                    long offset = Interlocked.Add(ref next, chunk) - chunk;
                    if (offset >= total)
                    {
                        return;
                    }

                    int n = (int)Math.Min(chunk, total - offset);
                    atSource = true;
                    foreach (var (o, l, hole) in await source.MapAsync(offset, n, ct))
                    {
                        var piece = buffer.AsMemory((int)(o - offset), (int)l);
                        if (hole)
                        {
                            piece.Span.Clear();
                            Interlocked.Add(ref holeBytes, l);
                        }
                        else
                        {
                            await source.ReadAsync(o, piece, ct);
                        }
                    }

                    atSource = false;

                    // Runs of all-zero granules at least minZeroRun long are zero runs; everything else,
                    // short zero runs included, is written as data, one command per stretch.
                    zeroRanges.Clear();
                    int dataStart = -1;
                    int pos = 0;
                    while (pos < n)
                    {
                        bool zero = IsZero(buffer, pos, Math.Min(granule, n - pos));
                        int runEnd = pos + granule;
                        while (runEnd < n && IsZero(buffer, runEnd, Math.Min(granule, n - runEnd)) == zero)
                        {
                            runEnd += granule;
                        }

                        runEnd = Math.Min(runEnd, n);
                        if (zero && runEnd - pos >= minZeroRun)
                        {
                            if (dataStart >= 0)
                            {
                                await destination.WriteAsync(offset + dataStart, buffer.AsMemory(dataStart, pos - dataStart), ct);
                                dataStart = -1;
                            }

                            zeroRanges.Add((offset + pos, runEnd - pos));
                            Interlocked.Add(ref zeroBytes, runEnd - pos);
                        }
                        else if (dataStart < 0)
                        {
                            dataStart = pos;
                        }

                        pos = runEnd;
                    }

                    if (dataStart >= 0)
                    {
                        await destination.WriteAsync(offset + dataStart, buffer.AsMemory(dataStart, n - dataStart), ct);
                    }

                    if (zeroRanges.Count > 0)
                    {
                        await destination.WriteZerosAsync(zeroRanges, scratch, ct);
                    }

                    progress?.Report(Interlocked.Add(ref done, n));
                }
            }
            catch (ScsiCommandException e)
            {
                // Name the side: "iscsi://…/1: SCSI command 0x8a failed: DATA PROTECT, …".
                throw new IOException($"{Display(atSource ? src : dst)}: {e.Message}", e);
            }
        }

        var sw = Stopwatch.StartNew();
        await RunWorkersAsync(qd, Worker, ct);
        await destination.FinishAsync(ct);
        progress?.Done();
        double seconds = sw.Elapsed.TotalSeconds;
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"copied {ClientCommon.FormatBytes(total)} in {seconds:0.00}s ({ClientCommon.FormatBytes(total / Math.Max(seconds, 1e-9))}/s): {ClientCommon.FormatBytes(total - zeroBytes)} written, {ClientCommon.FormatBytes(zeroBytes)} of zeros {destination.ZeroMethod} ({ClientCommon.FormatBytes(holeBytes)} of them holes, not read)"));

        if (parse.GetValue(s_verify))
        {
            long mismatch = await VerifyAsync(source, destination, total, chunk, qd, noProgress ? null : CpProgress.Create(error, total, "verify"), ct);
            if (mismatch >= 0)
            {
                await error.WriteLineAsync($"sluice cp: verify failed: {Display(src)} and {Display(dst)} differ at byte {mismatch}");
                return ExitCodes.Failure;
            }

            await output.WriteLineAsync("verified: source and destination are identical");
        }

        return ExitCodes.Success;
    }

    /// <summary>Runs <paramref name="count"/> workers; the first failure stops the rest and is what is thrown.</summary>
    private static async Task RunWorkersAsync(int count, Func<CancellationToken, Task> worker, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Exception? first = null;

        async Task One()
        {
            try
            {
                await worker(stop.Token);
            }
            catch (Exception e)
            {
                // Workers cancelled because another failed end with OperationCanceledException: the first error wins.
                Interlocked.CompareExchange(ref first, e, null);
                await stop.CancelAsync();
            }
        }

        await Task.WhenAll(Enumerable.Range(0, count).Select(_ => Task.Run(One, CancellationToken.None)));
        if (first is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
        }
    }

    private static bool IsZero(byte[] buffer, int offset, int length) => !buffer.AsSpan(offset, length).ContainsAnyExcept((byte)0);

    /// <summary>Reads both sides and compares; the first differing byte, or -1.</summary>
    private static async Task<long> VerifyAsync(IEnd source, IEnd destination, long total, int chunk, int qd, CpProgress? progress, CancellationToken ct)
    {
        long next = 0;
        long done = 0;
        long mismatch = -1;

        async Task Verifier(CancellationToken ct)
        {
            var a = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
            var b = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
            while (Volatile.Read(ref mismatch) < 0)
            {
                long offset = Interlocked.Add(ref next, chunk) - chunk;
                if (offset >= total)
                {
                    return;
                }

                int n = (int)Math.Min(chunk, total - offset);
                await source.ReadAsync(offset, a.AsMemory(0, n), ct);
                await destination.ReadAsync(offset, b.AsMemory(0, n), ct);
                int same = a.AsSpan(0, n).CommonPrefixLength(b.AsSpan(0, n));
                if (same < n)
                {
                    Interlocked.CompareExchange(ref mismatch, offset + same, -1);
                    return;
                }

                progress?.Report(Interlocked.Add(ref done, n));
            }
        }

        await RunWorkersAsync(qd, Verifier, ct);
        progress?.Done();
        return mismatch;
    }

    /// <summary>A spec for messages: URLs without their secret.</summary>
    private static string Display(string spec) =>
        spec.StartsWith("iscsi://", StringComparison.OrdinalIgnoreCase) && IscsiUrl.TryParse(spec, out var url, out _) ? url.ToString() : spec;

    private static async Task<IEnd> OpenAsync(string spec, IscsiClientOptions options, bool isSource, long sourceLength, CancellationToken ct)
    {
        if (spec.StartsWith("iscsi://", StringComparison.OrdinalIgnoreCase))
        {
            var url = ClientCommon.ParseUrl(spec, needTarget: true);
            var open = await ClientLun.OpenAsync(url, options with { ChapUser = options.ChapUser ?? url.User, ChapSecret = options.ChapSecret ?? url.Secret }, ct);
            try
            {
                var end = new LunEnd(open, url.ToString());
                await end.LearnProvisioningAsync(ct);
                return end;
            }
            catch
            {
                await open.DisposeAsync();
                throw;
            }
        }

        if (isSource)
        {
            if (!File.Exists(spec))
            {
                throw new UsageException(Directory.Exists(spec) ? $"{spec} is a directory" : $"{spec}: no such file");
            }

            var h = File.OpenHandle(spec, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous);
            return new FileEnd(h, RandomAccess.GetLength(h), write: false, created: false);
        }

        if (Directory.Exists(spec))
        {
            throw new UsageException($"{spec} is a directory");
        }

        var w = File.OpenHandle(spec, FileMode.Create, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous);
        // A regular file is empty now, so its zero runs can stay holes; a device node keeps its old contents.
        return new FileEnd(w, sourceLength, write: true, created: RandomAccess.GetLength(w) == 0);
    }

    private sealed class FileEnd(SafeFileHandle handle, long length, bool write, bool created) : IEnd
    {
        public long Length => length;

        public int Alignment => 1;

        public int MinZeroRun => created ? Granule : MinCommandZeroRun;

        public string ZeroMethod => created ? "left as holes" : "written";

        public ValueTask<List<(long Offset, long Length, bool Hole)>> MapAsync(long offset, long length, CancellationToken ct) =>
            ValueTask.FromResult(SparseFile.Map(handle, offset, length));

        public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct)
        {
            int got = 0;
            while (got < buffer.Length)
            {
                int n = await RandomAccess.ReadAsync(handle, buffer[got..], offset + got, ct);
                if (n == 0)
                {
                    buffer.Span[got..].Clear(); // past the end (a file that shrank) reads as zeros
                    return;
                }

                got += n;
            }
        }

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct) => RandomAccess.WriteAsync(handle, data, offset, ct);

        public async ValueTask WriteZerosAsync(List<(long Offset, int Length)> ranges, Memory<byte> scratch, CancellationToken ct)
        {
            if (created)
            {
                return; // the file was created empty: a range not written is a hole that reads zeros
            }

            foreach (var (offset, n) in ranges)
            {
                scratch.Span[..n].Clear();
                await RandomAccess.WriteAsync(handle, scratch[..n], offset, ct);
            }
        }

        public ValueTask FinishAsync(CancellationToken ct)
        {
            if (write)
            {
                if (created)
                {
                    RandomAccess.SetLength(handle, length); // a trailing hole
                }

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

    private sealed class LunEnd(OpenLun open, string name) : IEnd
    {
        private readonly IscsiLun _lun = open.Lun;
        private ZeroMode _zeroMode = ZeroMode.ReadCompare;
        private bool _readsZeros;
        private bool _thin;
        private volatile bool _lbaStatus;
        private long _maxUnmapBlocks;
        private int _maxUnmapDescriptors = 4095;
        private long _maxWriteSameBlocks;

        private enum ZeroMode
        {
            /// <summary>UNMAP; the unit reads deallocated blocks as zeros.</summary>
            Unmap,

            /// <summary>WRITE SAME(16) with UNMAP=1 and a zero block.</summary>
            WriteSameUnmap,

            /// <summary>No LBPRZ (or no UNMAP): read the run, write zeros where it isn't zero.</summary>
            ReadCompare,
        }

        public long Length => _lun.SizeBytes;

        public int Alignment => _lun.BlockSize;

        public int MinZeroRun => _zeroMode == ZeroMode.Unmap ? _lun.BlockSize : MinCommandZeroRun;

        public string ZeroMethod => _zeroMode switch
        {
            ZeroMode.Unmap => "unmapped (UNMAP)",
            ZeroMode.WriteSameUnmap => "unmapped (WRITE SAME(16) UNMAP)",
            _ => "written only where the LUN held data",
        };

        /// <summary>
        /// READ CAPACITY(16) LBPME/LBPRZ and VPD B2h (SBC-3 §6.5.4) decide how zero runs are written;
        /// VPD B0h limits UNMAP and WRITE SAME. Deallocation counts as zeroing only with LBPRZ.
        /// </summary>
        public async Task LearnProvisioningAsync(CancellationToken ct)
        {
            var cap = await _lun.ReadCapacityAsync(ct);
            _readsZeros = cap.ReadsZerosAfterUnmap;
            _thin = cap.ThinProvisioned;
            bool unmap = false;
            bool writeSameUnmap = false;
            try
            {
                var pages = await _lun.SupportedVpdPagesAsync(ct);
                if (pages.Contains((byte)0xB2))
                {
                    var lbp = LogicalBlockProvisioning.Parse(await _lun.InquiryAsync(0xB2, ct));
                    unmap = lbp.Unmap;
                    writeSameUnmap = lbp.WriteSame16Unmap;
                    _readsZeros |= lbp.ReadZeros;
                }

                if (pages.Contains((byte)0xB0))
                {
                    var limits = BlockLimits.Parse(await _lun.InquiryAsync(0xB0, ct));
                    _maxUnmapBlocks = limits.MaxUnmapBlocks;
                    if (limits.MaxUnmapDescriptors > 0)
                    {
                        _maxUnmapDescriptors = (int)Math.Min(limits.MaxUnmapDescriptors, 4095);
                    }

                    _maxWriteSameBlocks = limits.MaxWriteSameBlocks;
                }
            }
            catch (ScsiCommandException)
            {
                // VPD pages are optional: without them, zero runs are read and compared.
            }

            if (_readsZeros)
            {
                _zeroMode = unmap ? ZeroMode.Unmap : writeSameUnmap ? ZeroMode.WriteSameUnmap : ZeroMode.ReadCompare;
                _lbaStatus = _thin;
            }
        }

        public string Describe(string direction)
        {
            var p = open.Session.Parameters;
            string digests = p.HeaderDigestCrc32C || p.DataDigestCrc32C
                ? $"HeaderDigest {(p.HeaderDigestCrc32C ? "CRC32C" : "None")}, DataDigest {(p.DataDigestCrc32C ? "CRC32C" : "None")}"
                : "no digests";
            string sparse = direction == "from"
                ? $"holes found by GET LBA STATUS: {(_lbaStatus ? "yes" : "no")}"
                : $"zero runs {ZeroMethod}";
            return string.Create(CultureInfo.InvariantCulture,
                $"{direction} {name}: {ClientCommon.FormatBytes(Length)}, {_lun.BlockSize}-byte blocks, {digests}, thin {(_thin ? "yes" : "no")}, LBPRZ {(_readsZeros ? "yes" : "no")}, {sparse}");
        }

        /// <summary>GET LBA STATUS (SBC-3 §5.7): deallocated blocks of an LBPRZ unit are holes.</summary>
        public async ValueTask<List<(long Offset, long Length, bool Hole)>> MapAsync(long offset, long length, CancellationToken ct)
        {
            var pieces = new List<(long, long, bool)>();
            int bs = _lun.BlockSize;
            long end = offset + length;
            long pos = offset;
            while (_lbaStatus && pos < end && pos % bs == 0)
            {
                IReadOnlyList<LbaStatus> list;
                try
                {
                    list = await _lun.GetLbaStatusAsync(pos / bs, 64, ct);
                }
                catch (ScsiCommandException)
                {
                    _lbaStatus = false; // not supported after all: read everything
                    break;
                }

                long before = pos;
                foreach (var d in list)
                {
                    long from = d.Lba * bs;
                    long to = Math.Min((d.Lba + d.Blocks) * bs, end);
                    if (from != pos || to <= pos)
                    {
                        break;
                    }

                    bool hole = d.Deallocated;
                    if (pieces.Count > 0 && pieces[^1].Item3 == hole)
                    {
                        pieces[^1] = (pieces[^1].Item1, to - pieces[^1].Item1, hole);
                    }
                    else
                    {
                        pieces.Add((pos, to - pos, hole));
                    }

                    pos = to;
                    if (pos >= end)
                    {
                        break;
                    }
                }

                if (pos == before)
                {
                    break; // a reply that doesn't start where asked: don't trust the rest
                }
            }

            if (pos < end)
            {
                pieces.Add((pos, end - pos, false));
            }

            return pieces;
        }

        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct)
        {
            int bs = _lun.BlockSize;
            return offset % bs == 0 && buffer.Length % bs == 0 ? _lun.ReadAsync(offset / bs, buffer, ct) : ReadUnalignedAsync(offset, buffer, ct);
        }

        private async ValueTask ReadUnalignedAsync(long offset, Memory<byte> buffer, CancellationToken ct)
        {
            await using var s = _lun.AsStream();
            s.Position = offset;
            await s.ReadExactlyAsync(buffer, ct);
        }

        public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            int bs = _lun.BlockSize;
            if (offset % bs == 0 && data.Length % bs == 0)
            {
                await _lun.WriteAsync(offset / bs, data, cancellationToken: ct);
                return;
            }

            // The source's last partial block: the stream's read-modify-write keeps the rest of the block.
            await using var s = _lun.AsStream();
            s.Position = offset;
            await s.WriteAsync(data, ct);
        }

        public async ValueTask WriteZerosAsync(List<(long Offset, int Length)> ranges, Memory<byte> scratch, CancellationToken ct)
        {
            int bs = _lun.BlockSize;
            var careful = new List<(long Offset, int Length)>();
            var blocks = new List<BlockRange>();
            foreach (var (offset, n) in ranges)
            {
                if (_zeroMode == ZeroMode.ReadCompare || offset % bs != 0 || n % bs != 0)
                {
                    careful.Add((offset, n));
                }
                else
                {
                    blocks.Add(new BlockRange(offset / bs, n / bs));
                }
            }

            if (blocks.Count > 0)
            {
                try
                {
                    if (_zeroMode == ZeroMode.Unmap)
                    {
                        await UnmapAsync(blocks, ct);
                    }
                    else
                    {
                        await WriteSameUnmapAsync(blocks, scratch, ct);
                    }
                }
                catch (ScsiCommandException)
                {
                    // Advertised but refused: from now on read and compare, which is always right.
                    _zeroMode = ZeroMode.ReadCompare;
                    careful.AddRange(blocks.Select(b => (b.Lba * bs, (int)(b.Blocks * bs))));
                }
            }

            foreach (var (offset, n) in careful)
            {
                // Write zeros only over what doesn't read zeros already (a fresh LUN, a sparse backing file).
                var current = scratch[..n];
                await ReadAsync(offset, current, ct);
                if (current.Span.ContainsAnyExcept((byte)0))
                {
                    current.Span.Clear();
                    await WriteAsync(offset, current, ct);
                }
            }
        }

        /// <summary>UNMAP in commands within the unit's MAXIMUM UNMAP LBA COUNT and BLOCK DESCRIPTOR COUNT (VPD B0h).</summary>
        private async Task UnmapAsync(List<BlockRange> ranges, CancellationToken ct)
        {
            var batch = new List<BlockRange>();
            long batchBlocks = 0;
            foreach (var r in ranges)
            {
                for (long lba = r.Lba, left = r.Blocks; left > 0;)
                {
                    long room = _maxUnmapBlocks > 0 ? _maxUnmapBlocks - batchBlocks : left;
                    if (room <= 0 || batch.Count == _maxUnmapDescriptors)
                    {
                        await _lun.UnmapAsync(batch, ct);
                        batch.Clear();
                        batchBlocks = 0;
                        continue;
                    }

                    long n = Math.Min(left, room);
                    batch.Add(new BlockRange(lba, n));
                    batchBlocks += n;
                    lba += n;
                    left -= n;
                }
            }

            if (batch.Count > 0)
            {
                await _lun.UnmapAsync(batch, ct);
            }
        }

        private async Task WriteSameUnmapAsync(List<BlockRange> ranges, Memory<byte> scratch, CancellationToken ct)
        {
            var zero = scratch[.._lun.BlockSize];
            zero.Span.Clear();
            foreach (var r in ranges)
            {
                for (long lba = r.Lba, left = r.Blocks; left > 0;)
                {
                    long n = _maxWriteSameBlocks > 0 ? Math.Min(left, _maxWriteSameBlocks) : left;
                    await _lun.WriteSameAsync(lba, n, zero, unmap: true, ct);
                    lba += n;
                    left -= n;
                }
            }
        }

        public async ValueTask FinishAsync(CancellationToken ct) => await _lun.SynchronizeCacheAsync(cancellationToken: ct);

        public ValueTask DisposeAsync() => open.DisposeAsync();
    }
}

/// <summary>
/// Progress on stderr: on a terminal a one-line bar (bytes, percent, rate, ETA) redrawn at most
/// 5 times a second; otherwise (a log, a pipe, a test) a plain line every 10 s and a final line.
/// </summary>
internal sealed class CpProgress
{
    private readonly TextWriter _error;
    private readonly long _total;
    private readonly string _label;
    private readonly bool _live;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private long _lastDraw;
    private long _done;

    private CpProgress(TextWriter error, long total, string label, bool live)
    {
        _error = error;
        _total = total;
        _label = label;
        _live = live;
        _lastDraw = live ? -1000 : 0; // a bar shows at once; a log's first line comes after 10 s
    }

    /// <summary>Live only when <paramref name="error"/> is the process's stderr and that is a terminal.</summary>
    public static CpProgress Create(TextWriter error, long total, string label) =>
        Create(error, total, label, ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected);

    internal static CpProgress Create(TextWriter error, long total, string label, bool live) => new(error, total, label, live);

    public void Report(long done)
    {
        long now = _clock.ElapsedMilliseconds;
        long interval = _live ? 200 : 10_000;
        if (now - Volatile.Read(ref _lastDraw) < interval)
        {
            return;
        }

        lock (_lock)
        {
            if (now - _lastDraw < interval || done < _done)
            {
                return;
            }

            _lastDraw = now;
            _done = done;
            Draw(done, final: false);
        }
    }

    public void Done()
    {
        lock (_lock)
        {
            Draw(_total, final: true);
            if (_live)
            {
                _error.WriteLine();
            }
        }
    }

    private void Draw(long done, bool final)
    {
        double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        double rate = done / seconds;
        int pct = _total == 0 ? 100 : (int)(done * 100 / _total);
        string amount = string.Create(CultureInfo.InvariantCulture, $"{ClientCommon.FormatBytes(done)} / {ClientCommon.FormatBytes(_total)}  {ClientCommon.FormatBytes(rate)}/s");
        string tail = final
            ? string.Create(CultureInfo.InvariantCulture, $"in {seconds:0.0}s")
            : "ETA " + TimeSpan.FromSeconds(Math.Ceiling(rate > 0 ? (_total - done) / rate : 0)).ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture);
        if (_live)
        {
            const int width = 24;
            int filled = pct * width / 100;
            _error.Write(string.Create(CultureInfo.InvariantCulture,
                $"\r{_label} [{new string('#', filled)}{new string('.', width - filled)}] {pct,3}% {amount}  {tail}   "));
        }
        else
        {
            _error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{_label} {pct}% {amount}  {tail}"));
        }
    }
}
