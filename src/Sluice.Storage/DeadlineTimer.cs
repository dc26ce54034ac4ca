using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Sluice.Storage;

/// <summary>
/// Completes waits at <see cref="Stopwatch"/> timestamps with sub-millisecond accuracy, for
/// <see cref="ModelBlockDevice"/> on the system clock: <c>Task.Delay</c> rounds up to the timer
/// resolution and fires late on a loaded host (a 1 ms delay measured 4.6 ms at the median there).
/// </summary>
/// <remarks>
/// One background thread and a deadline-ordered queue. The thread blocks on an event while the next
/// deadline is more than <see cref="CoarseThreshold"/> away (or nothing is queued: an idle timer
/// uses no CPU), then sleeps in slices of at most <see cref="FineSlice"/> with
/// <c>clock_nanosleep</c> and a 1 us timer slack (Linux; <c>prctl(PR_SET_TIMERSLACK)</c>) until
/// <see cref="SpinMargin"/> before the deadline, and spins only for that last stretch. A wait that
/// comes in with an earlier deadline than the one the thread is blocked for wakes it. Completions
/// run their continuations on the thread pool, never on the timer thread, so one slow continuation
/// does not delay the next deadline.
/// </remarks>
internal sealed partial class DeadlineTimer
{
    /// <summary>Beyond this the thread blocks on its event (millisecond resolution, interruptible).</summary>
    internal static readonly long CoarseThreshold = Stopwatch.Frequency * 2 / 1000;

    /// <summary>The longest uninterrupted fine sleep: bounds how late a newly queued earlier deadline can be.</summary>
    internal static readonly long FineSlice = Stopwatch.Frequency / 5000;

    /// <summary>The stretch before a deadline that is spun rather than slept.</summary>
    internal static readonly long SpinMargin = Stopwatch.Frequency / 20_000;

    private static readonly Lazy<DeadlineTimer> s_shared = new(() => new DeadlineTimer(), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly Lock _lock = new();
    private readonly PriorityQueue<TaskCompletionSource, long> _queue = new();
    private readonly ManualResetEventSlim _wake = new(false, 1);
    private long _blockedUntil = long.MaxValue;
    private long _completed;
    private volatile int _nativeThreadId;

    /// <summary>A timer with its own thread; production code uses <see cref="Shared"/> (tests count completions of their own).</summary>
    internal DeadlineTimer()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "sluice model timer", Priority = ThreadPriority.AboveNormal };
        thread.Start();
    }

    /// <summary>The process-wide timer (its thread starts on first use).</summary>
    public static DeadlineTimer Shared => s_shared.Value;

    /// <summary>Waits completed so far (for tests).</summary>
    internal long Completed => Interlocked.Read(ref _completed);

    /// <summary>The timer thread's kernel thread id on Linux once it runs, else 0 (tests read its CPU time).</summary>
    internal int NativeThreadId => _nativeThreadId;

    /// <summary>Waits queued and not yet due.</summary>
    internal int Pending
    {
        get
        {
            lock (_lock)
                return _queue.Count;
        }
    }

    /// <summary>
    /// Completes at <see cref="Stopwatch.GetTimestamp"/> &gt;= <paramref name="deadline"/>, never before;
    /// canceled by <paramref name="cancellationToken"/>.
    /// </summary>
    public Task WaitUntilAsync(long deadline, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
            return Task.FromCanceled(cancellationToken);
        if (Stopwatch.GetTimestamp() >= deadline)
            return Task.CompletedTask;
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.UnsafeRegister(static (s, token) => ((TaskCompletionSource)s!).TrySetCanceled(token), waiter);
            waiter.Task.ContinueWith(static (_, r) => ((CancellationTokenRegistration)r!).Dispose(), registration,
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        lock (_lock)
        {
            _queue.Enqueue(waiter, deadline);
            if (deadline < _blockedUntil)
                _wake.Set();
        }
        return waiter.Task;
    }

    private void Run()
    {
        if (OperatingSystem.IsLinux())
        {
            _ = Prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0); // 1 us: nanosleep is otherwise 50 us late by design
            _nativeThreadId = GetTid();
        }
        var due = new List<TaskCompletionSource>();
        while (true)
        {
            long wait;
            lock (_lock)
            {
                _wake.Reset();
                _blockedUntil = long.MaxValue;
                long now = Stopwatch.GetTimestamp();
                long next = long.MaxValue;
                while (_queue.TryPeek(out var waiter, out long deadline))
                {
                    if (deadline > now)
                    {
                        next = deadline;
                        break;
                    }
                    _queue.Dequeue();
                    due.Add(waiter);
                }
                wait = next == long.MaxValue ? long.MaxValue : next - now;
                if (due.Count == 0 && wait > CoarseThreshold)
                    _blockedUntil = next;
                else if (due.Count == 0)
                    _blockedUntil = long.MinValue; // fine phase: no need to be woken
            }

            if (due.Count > 0)
            {
                foreach (var waiter in due)
                    waiter.TrySetResult();
                Interlocked.Add(ref _completed, due.Count);
                due.Clear();
            }
            else if (wait == long.MaxValue)
            {
                _wake.Wait();
            }
            else if (wait > CoarseThreshold)
            {
                // Wake ~1 ms early: the event's timeout is in whole milliseconds and may run over.
                _wake.Wait((int)Math.Min(int.MaxValue, (wait - CoarseThreshold / 2) * 1000 / Stopwatch.Frequency));
            }
            else if (wait > SpinMargin)
            {
                Sleep(Math.Min(wait - SpinMargin, FineSlice));
            }
            else
            {
                Thread.SpinWait(20);
            }
        }
    }

    private static void Sleep(long ticks)
    {
        long nanos = ticks * 1_000_000_000 / Stopwatch.Frequency;
        if (OperatingSystem.IsLinux())
        {
            var ts = new Timespec { Seconds = nanos / 1_000_000_000, Nanoseconds = nanos % 1_000_000_000 };
            _ = ClockNanosleep(CLOCK_MONOTONIC, 0, in ts, IntPtr.Zero); // EINTR: the loop recomputes
        }
        else
        {
            Thread.Sleep(0);
        }
    }

    private const int CLOCK_MONOTONIC = 1;
    private const int PR_SET_TIMERSLACK = 29;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_nanosleep")]
    private static partial int ClockNanosleep(int clock, int flags, in Timespec request, IntPtr remain);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
