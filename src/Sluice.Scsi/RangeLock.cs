namespace Sluice.Scsi;

/// <summary>
/// Per-LU LBA range lock that makes COMPARE AND WRITE, ORWRITE and WRITE ATOMIC atomic
/// against every other command on the same blocks (SBC-3 5.2: no other command may change the
/// blocks between the compare and the write; SBC-4 4.29 atomic writes).
/// <para>
/// The LBA space is cut into regions of 256 blocks hashed onto 64 stripes. Ordinary reads and
/// writes are <em>shared</em> holders: they bump one counter per stripe they touch and, while
/// no exclusive holder exists anywhere on the LU, that is all (no lock, no allocation).
/// Exclusive holders take their stripes all-or-nothing under a lock and then wait for the
/// shared holders already inside to drain; shared entrants that find one of their stripes held
/// exclusively back out and wait. Only contended while an exclusive command is active.
/// </para>
/// </summary>
internal sealed class RangeLock
{
    private const int StripeCount = 64;
    private const int StripeMask = StripeCount - 1;
    private const int RegionShift = 8;

    private readonly int[] shared = new int[StripeCount];
    private readonly int[] exclusive = new int[StripeCount];
    private readonly Lock gate = new();
    private TaskCompletionSource changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int exclusiveActive;

    private static (int First, int Count) StripesOf(ulong lba, ulong blocks)
    {
        if (blocks == 0)
        {
            blocks = 1;
        }
        ulong first = lba >> RegionShift;
        ulong last = (lba + (blocks - 1)) >> RegionShift;
        ulong regions = last - first + 1;
        return ((int)(first & StripeMask), regions >= StripeCount || last < first ? StripeCount : (int)regions);
    }

    /// <summary>Enters as a shared holder without waiting; false when an exclusive holder overlaps.</summary>
    public bool TryEnterShared(ulong lba, ulong blocks)
    {
        var (first, count) = StripesOf(lba, blocks);
        for (int i = 0; i < count; i++)
        {
            Interlocked.Increment(ref shared[(first + i) & StripeMask]);
        }
        if (Volatile.Read(ref exclusiveActive) == 0)
        {
            return true;
        }
        for (int i = 0; i < count; i++)
        {
            if (Volatile.Read(ref exclusive[(first + i) & StripeMask]) != 0)
            {
                ExitShared(lba, blocks);
                return false;
            }
        }
        return true;
    }

    public void ExitShared(ulong lba, ulong blocks)
    {
        var (first, count) = StripesOf(lba, blocks);
        for (int i = 0; i < count; i++)
        {
            Interlocked.Decrement(ref shared[(first + i) & StripeMask]);
        }
        if (Volatile.Read(ref exclusiveActive) != 0)
        {
            Pulse();
        }
    }

    public ValueTask<RangeHold> EnterSharedAsync(ulong lba, ulong blocks, CancellationToken cancellationToken) =>
        TryEnterShared(lba, blocks)
            ? new ValueTask<RangeHold>(new RangeHold(this, lba, blocks, false))
            : EnterSharedSlowAsync(lba, blocks, cancellationToken);

    private async ValueTask<RangeHold> EnterSharedSlowAsync(ulong lba, ulong blocks, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Take the signal before re-checking so a release in between is not missed.
            Task signal = Signal();
            // Look before entering: a failed TryEnterShared pulses (for a draining exclusive
            // holder) and would complete our own signal, turning this into a busy loop.
            if (!IsHeldExclusively(lba, blocks) && TryEnterShared(lba, blocks))
            {
                return new RangeHold(this, lba, blocks, false);
            }
            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private bool IsHeldExclusively(ulong lba, ulong blocks)
    {
        var (first, count) = StripesOf(lba, blocks);
        for (int i = 0; i < count; i++)
        {
            if (Volatile.Read(ref exclusive[(first + i) & StripeMask]) != 0)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Waits until no other command holds any block of the range.</summary>
    public async ValueTask<RangeHold> EnterExclusiveAsync(ulong lba, ulong blocks, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref exclusiveActive);
        var (first, count) = StripesOf(lba, blocks);
        bool owned = false;
        try
        {
            while (true)
            {
                Task signal;
                lock (gate)
                {
                    signal = changed.Task;
                    bool free = true;
                    for (int i = 0; i < count && free; i++)
                    {
                        free = exclusive[(first + i) & StripeMask] == 0;
                    }
                    if (free)
                    {
                        for (int i = 0; i < count; i++)
                        {
                            Interlocked.Increment(ref exclusive[(first + i) & StripeMask]);
                        }
                        owned = true;
                        break;
                    }
                }
                await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            while (true)
            {
                Task signal = Signal();
                bool drained = true;
                for (int i = 0; i < count && drained; i++)
                {
                    drained = Volatile.Read(ref shared[(first + i) & StripeMask]) == 0;
                }
                if (drained)
                {
                    return new RangeHold(this, lba, blocks, true);
                }
                await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            Release(first, count, owned);
            throw;
        }
    }

    public void ExitExclusive(ulong lba, ulong blocks)
    {
        var (first, count) = StripesOf(lba, blocks);
        Release(first, count, owned: true);
    }

    private void Release(int first, int count, bool owned)
    {
        if (owned)
        {
            lock (gate)
            {
                for (int i = 0; i < count; i++)
                {
                    Interlocked.Decrement(ref exclusive[(first + i) & StripeMask]);
                }
            }
        }
        Interlocked.Decrement(ref exclusiveActive);
        Pulse();
    }

    private Task Signal()
    {
        lock (gate)
        {
            return changed.Task;
        }
    }

    private void Pulse()
    {
        TaskCompletionSource old;
        lock (gate)
        {
            old = changed;
            changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        old.TrySetResult();
    }
}

/// <summary>A held range; disposing releases it.</summary>
internal readonly struct RangeHold(RangeLock owner, ulong lba, ulong blocks, bool exclusive) : IDisposable
{
    public void Dispose()
    {
        if (exclusive)
        {
            owner.ExitExclusive(lba, blocks);
        }
        else
        {
            owner?.ExitShared(lba, blocks);
        }
    }
}
