using System.Buffers.Binary;
using System.Globalization;

namespace Sluice.Cli.Commands;

/// <summary>
/// What <c>sluice bench --verify</c> writes and what it expects to read back. Every logical block
/// carries a stamp: a magic word, the generation of the write that put it there, its LBA, the
/// job's run id, and a body that is a function of all three, so a block that is stale (an older
/// generation), misplaced (another LBA), foreign (another run or job) or torn (header of one
/// write, body of another) is told apart from the block the ledger expects.
/// </summary>
/// <remarks>
/// The ledger is kept per I/O slot (one <c>--bs</c> unit; every write covers whole slots): the
/// generation of the last acknowledged write and of the last write issued. A worker owns a slot
/// while its I/O is in flight, so no two I/Os of one job touch a slot at once and the
/// generations of a slot are issued in order. A write that failed without a status (error,
/// timeout) may or may not have reached the medium: any generation from the last acknowledged
/// one up to the last issued one is accepted. An acknowledged write must read back exactly; a
/// write acknowledged later than a failed one supersedes it (a late landing of the older write
/// is then a failure). The arrays are allocated once; the I/O path allocates nothing.
/// </remarks>
internal sealed class BenchVerifier
{
    /// <summary>'SLBV' little-endian: marks a block stamped by bench.</summary>
    public const uint Magic = 0x5642_4C53;

    /// <summary>More slots than this would take too much memory for the ledger (12 bytes each).</summary>
    public const long MaxSlots = 1L << 28;

    private const int HeaderBytes = 24;
    private const int KeptFailures = 10;

    private readonly int[] _acked;
    private readonly int[] _issued;
    private readonly int[] _busy;
    private readonly List<string> _failures = [];
    private long _failureCount;

    public BenchVerifier(long slots, int blockSize, int blocksPerSlot, ulong runId)
    {
        if (slots > MaxSlots)
        {
            throw new UsageException(string.Create(CultureInfo.InvariantCulture,
                $"--verify keeps a ledger per I/O; {slots} I/O slots is too many (at most {MaxSlots}): use --size or a larger --bs"));
        }

        Slots = slots;
        BlockSize = blockSize;
        BlocksPerSlot = blocksPerSlot;
        RunId = runId;
        _acked = new int[slots];
        _issued = new int[slots];
        _busy = new int[slots];
    }

    public long Slots { get; }

    public int BlockSize { get; }

    public int BlocksPerSlot { get; }

    public ulong RunId { get; }

    /// <summary>Blocks found wrong so far (reads during the run and the verify pass).</summary>
    public long FailureCount => Interlocked.Read(ref _failureCount);

    /// <summary>Blocks read back by the verify pass.</summary>
    public long VerifiedBlocks;

    /// <summary>The first few failures, described.</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            lock (_failures)
            {
                return [.. _failures];
            }
        }
    }

    /// <summary>Takes a slot for one I/O; false when another worker has it.</summary>
    public bool TryAcquire(long slot) => Interlocked.CompareExchange(ref _busy[slot], 1, 0) == 0;

    public void Release(long slot) => Volatile.Write(ref _busy[slot], 0);

    /// <summary>The generation of the next write to a slot the caller owns.</summary>
    public int BeginWrite(long slot) => ++_issued[slot];

    /// <summary>The write of <paramref name="generation"/> got GOOD status: from now on nothing older may read back.</summary>
    public void Acknowledge(long slot, int generation) => _acked[slot] = generation;

    /// <summary>Fills <paramref name="buffer"/> (whole blocks from <paramref name="lba"/>) with the stamps of <paramref name="generation"/>.</summary>
    public void Stamp(Span<byte> buffer, long lba, int generation)
    {
        for (int o = 0; o < buffer.Length; o += BlockSize, lba++)
        {
            var block = buffer.Slice(o, BlockSize);
            BinaryPrimitives.WriteUInt32LittleEndian(block, Magic);
            BinaryPrimitives.WriteInt32LittleEndian(block[4..], generation);
            BinaryPrimitives.WriteInt64LittleEndian(block[8..], lba);
            BinaryPrimitives.WriteUInt64LittleEndian(block[16..], RunId);
            ulong seed = Seed(lba, generation);
            for (int w = HeaderBytes; w < block.Length; w += 8)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(block[w..], Word(seed, w));
            }
        }
    }

    /// <summary>
    /// Checks whole slots read from <paramref name="lba"/> (slot-aligned) against the ledger;
    /// the caller owns the slots or no writer runs any more. Returns the failing blocks.
    /// </summary>
    public int Check(ReadOnlySpan<byte> buffer, long lba, string job)
    {
        int failed = 0;
        for (int o = 0; o < buffer.Length; o += BlockSize, lba++)
        {
            long slot = lba / BlocksPerSlot;
            int acked = Volatile.Read(ref _acked[slot]);
            int issued = Volatile.Read(ref _issued[slot]);
            if (!IsExpected(buffer.Slice(o, BlockSize), lba, acked, issued, out var problem))
            {
                failed++;
                Record(job, lba, acked, issued, problem);
            }
        }

        return failed;
    }

    private enum Problem
    {
        NotStamped,
        OtherLba,
        OtherRun,
        Stale,
        Unknown,
        Torn,
    }

    private bool IsExpected(ReadOnlySpan<byte> block, long lba, int acked, int issued, out (Problem Kind, long Value) problem)
    {
        problem = default;
        if (BinaryPrimitives.ReadUInt32LittleEndian(block) != Magic)
        {
            problem = (Problem.NotStamped, 0);
            return false;
        }

        int generation = BinaryPrimitives.ReadInt32LittleEndian(block[4..]);
        long stampedLba = BinaryPrimitives.ReadInt64LittleEndian(block[8..]);
        if (stampedLba != lba)
        {
            problem = (Problem.OtherLba, stampedLba);
            return false;
        }

        if (BinaryPrimitives.ReadUInt64LittleEndian(block[16..]) != RunId)
        {
            problem = (Problem.OtherRun, generation);
            return false;
        }

        if (generation < acked || generation > issued)
        {
            problem = (generation < acked ? Problem.Stale : Problem.Unknown, generation);
            return false;
        }

        ulong seed = Seed(lba, generation);
        for (int w = HeaderBytes; w < block.Length; w += 8)
        {
            if (BinaryPrimitives.ReadUInt64LittleEndian(block[w..]) != Word(seed, w))
            {
                problem = (Problem.Torn, generation);
                return false;
            }
        }

        return true;
    }

    private void Record(string job, long lba, int acked, int issued, (Problem Kind, long Value) problem)
    {
        if (Interlocked.Increment(ref _failureCount) > KeptFailures)
        {
            return;
        }

        string expected = acked == issued
            ? string.Create(CultureInfo.InvariantCulture, $"generation {acked}")
            : string.Create(CultureInfo.InvariantCulture, $"generation {acked}..{issued} (writes after {acked} failed without status)");
        string found = problem.Kind switch
        {
            Problem.NotStamped => "a block bench never wrote",
            Problem.OtherLba => string.Create(CultureInfo.InvariantCulture, $"the block written for LBA {problem.Value} (misplaced write)"),
            Problem.OtherRun => "a block of another run or job",
            Problem.Stale => string.Create(CultureInfo.InvariantCulture, $"generation {problem.Value}: an acknowledged write is lost"),
            Problem.Unknown => string.Create(CultureInfo.InvariantCulture, $"generation {problem.Value}, never issued"),
            _ => string.Create(CultureInfo.InvariantCulture, $"a torn block: header of generation {problem.Value}, other data after it"),
        };
        string text = string.Create(CultureInfo.InvariantCulture, $"{job}: LBA {lba}: expected {expected}, found {found}");
        lock (_failures)
        {
            _failures.Add(text);
        }
    }

    private ulong Seed(long lba, int generation)
    {
        ulong x = RunId ^ ((ulong)lba * 0x9E37_79B9_7F4A_7C15UL) ^ ((ulong)(uint)generation << 32 | (uint)generation);
        return Mix(x);
    }

    private static ulong Word(ulong seed, int offset) => Mix(seed + ((ulong)offset * 0xD6E8_FEB8_6659_FD93UL));

    /// <summary>splitmix64's finaliser: every input bit moves every output bit.</summary>
    private static ulong Mix(ulong x)
    {
        x ^= x >> 30;
        x *= 0xBF58_476D_1CE4_E5B9UL;
        x ^= x >> 27;
        x *= 0x94D0_49BB_1331_11EBUL;
        return x ^ (x >> 31);
    }
}
