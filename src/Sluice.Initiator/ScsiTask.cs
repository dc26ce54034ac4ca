using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace Sluice.Initiator;

/// <summary>A CDB of up to 16 bytes, carried by value so that nothing is allocated for it.</summary>
[InlineArray(16)]
internal struct Cdb16
{
    private byte _element0;
}

internal enum TaskState
{
    Free,
    Queued,
    Sent,
    Completed,
}

/// <summary>
/// Per-command state, pooled by the session: one per task-tag slot. Its completion is an
/// <see cref="IValueTaskSource{TResult}"/>, so awaiting a command allocates nothing; the task
/// returns to the pool when its result is read.
/// </summary>
internal sealed class ScsiTask : IValueTaskSource<ScsiResult>, IValueTaskSource
{
    public const int SenseBufferLength = 512;

    private ManualResetValueTaskSourceCore<ScsiResult> _core = new() { RunContinuationsAsynchronously = true };

    public ScsiTask(IscsiSession session, int index, bool inlineCompletions = false)
    {
        Session = session;
        Index = index;
        InlineCompletions = inlineCompletions;
    }

    /// <summary>A successful completion runs the awaiter's continuation on the receive loop (<see cref="IscsiClientOptions.InlineCompletions"/>).</summary>
    public bool InlineCompletions { get; }

    public IscsiSession Session { get; }

    public int Index { get; }

    public ushort Generation;
    public uint Itt;
    public TaskState State;
    public object? Connection;
    public long Sequence;
    public uint CmdSN;
    public ulong Lun;
    public Cdb16 Cdb;
    public int CdbLength;
    public ReadOnlyMemory<byte> DataOut;
    public Memory<byte> DataIn;
    public IReadOnlyList<Memory<byte>>? DataInList;
    public int DataInLength;
    public long Deadline;
    public long AbortSentAt;
    public Exception? CancelReason;
    public CancellationTokenRegistration Registration;
    public readonly byte[] Sense = new byte[SenseBufferLength];
    public bool BlockMode;
    public bool CheckShortRead;
    public int RetryBudget;

    public short Version => _core.Version;

    public bool IsWrite => !DataOut.IsEmpty;

    public void Reset() => _core.Reset();

    /// <summary>Completes the command; called by the receive loop outside every lock.</summary>
    public void SetResult(ScsiResult result)
    {
        _core.RunContinuationsAsynchronously = !InlineCompletions;
        _core.SetResult(result);
    }

    /// <summary>Fails the command; the continuation always runs on the thread pool (failures come from timers, cancellation and teardown).</summary>
    public void SetException(Exception exception)
    {
        _core.RunContinuationsAsynchronously = true;
        _core.SetException(exception);
    }

    public ScsiResult GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Session.ReleaseTask(this);
        }
    }

    /// <summary>The block path's completion: SCSI errors and short reads become exceptions.</summary>
    void IValueTaskSource.GetResult(short token)
    {
        byte opcode = Cdb[0];
        bool checkShort = CheckShortRead;
        int expected = DataInLength;
        ScsiResult r;
        try
        {
            r = _core.GetResult(token);
        }
        finally
        {
            Session.ReleaseTask(this);
        }

        if (!r.IsGood)
        {
            throw new ScsiCommandException(opcode, r);
        }

        if (checkShort && r.Underflow && r.ResidualCount > 0)
        {
            throw new IOException($"short read: {r.ResidualCount} of {expected} bytes not transferred");
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}

/// <summary>
/// A reusable wake-up for one waiter (the connection's send loop): <see cref="Set"/> from any
/// thread, <see cref="WaitAsync"/> from the waiter. Allocation-free; continuations run on the
/// thread pool, unless the caller asks to run the waiter itself (the receive loop waking the
/// sender right before it waits for the socket).
/// </summary>
internal sealed class AsyncSignal : IValueTaskSource
{
    private const int Idle = 0;
    private const int Signaled = 1;
    private const int Waiting = 2;

    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private int _state;

    /// <summary>Wakes the waiter; with <paramref name="inline"/> its continuation runs on this thread before Set returns.</summary>
    public void Set(bool inline = false)
    {
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if (s == Signaled)
            {
                return;
            }

            if (s == Idle)
            {
                if (Interlocked.CompareExchange(ref _state, Signaled, Idle) == Idle)
                {
                    return;
                }
            }
            else if (Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting)
            {
                _core.RunContinuationsAsynchronously = !inline;
                _core.SetResult(true);
                return;
            }
        }
    }

    public ValueTask WaitAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Signaled) == Signaled)
        {
            return ValueTask.CompletedTask;
        }

        _core.Reset();
        if (Interlocked.CompareExchange(ref _state, Waiting, Idle) == Idle)
        {
            return new ValueTask(this, _core.Version);
        }

        // Set raced in between: consume it.
        Volatile.Write(ref _state, Idle);
        return ValueTask.CompletedTask;
    }

    public void GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
