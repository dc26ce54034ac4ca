namespace Sluice.Target;

/// <summary>
/// Back-end operations still running after the connection ended. Closing a connection cancels
/// its tasks, but a write the back end has already started cannot be called back; it completes
/// when the device is done with it. A new login of the same initiator to the same target
/// (session reinstatement, RFC 7143 §6.3.5, or a reconnect with a new ISID) must not have its
/// first command overtaken by such a write: the initiator replays the commands that had no
/// status and then writes on, and a stale write landing afterwards would undo an acknowledged
/// one. So the login waits, before its final response, until those operations are done
/// (the old session's tasks are terminated, RFC 7143 §6.3.5 and SAM-5 5.6).
/// </summary>
internal sealed partial class IscsiConnection
{
    private int _executing;
    private TaskCompletionSource? _backendIdle;

    /// <summary>Commands of this connection whose back-end execution has started and not finished.</summary>
    internal int ExecutingCount => Volatile.Read(ref _executing);

    /// <summary>The session this connection served (kept after it closed), for matching a later login.</summary>
    internal IscsiSession? SessionServed => _session;

    private void BackendStarted() => Interlocked.Increment(ref _executing);

    private void BackendDone()
    {
        if (Interlocked.Decrement(ref _executing) == 0 && Volatile.Read(ref _backendIdle) is { } idle)
        {
            idle.TrySetResult();
        }
    }

    /// <summary>Completes when no back-end operation of this connection is running.</summary>
    internal Task BackendIdleAsync()
    {
        if (Volatile.Read(ref _executing) == 0)
        {
            return Task.CompletedTask;
        }

        var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var idle = Interlocked.CompareExchange(ref _backendIdle, fresh, null) ?? fresh;
        if (Volatile.Read(ref _executing) == 0)
        {
            idle.TrySetResult();
        }

        return idle.Task;
    }
}
