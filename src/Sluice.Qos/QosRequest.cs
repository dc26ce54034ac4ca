using System.Threading.Tasks.Sources;

namespace Sluice.Qos;

/// <summary>
/// One request, pooled by its scheduler: the waiter its caller awaits while it is queued and the
/// record of it while it is outstanding. <see cref="Version"/> grows on each reuse so a stale
/// <see cref="Grant"/> can be told apart.
/// </summary>
internal sealed class QosRequest : IValueTaskSource<Grant>
{
    internal enum States : byte
    {
        Free,
        Queued,
        Dispatched,
        Canceled,
    }

    internal ManualResetValueTaskSourceCore<Grant> Core;

    internal QosRequest(QosScheduler scheduler, bool runContinuationsAsynchronously)
    {
        Scheduler = scheduler;
        Core.RunContinuationsAsynchronously = runContinuationsAsynchronously;
    }

    internal QosScheduler Scheduler { get; }

    internal FunctionHandle? Function;
    internal int Bytes;
    /// <summary>1 when the request carries the per-I/O charge (a whole I/O, or the first part of a split one), else 0.</summary>
    internal int Ios;
    /// <summary>A part of an I/O split into several: its completion counts its bytes, not an I/O (<see cref="QosScheduler.AcquirePartAsync"/>).</summary>
    internal bool Part;
    internal long Arrival;
    internal long Dispatched;
    internal double Cost;
    internal int Version;
    internal States State;
    internal DispatchPhase Phase;
    internal QosRequest? Prev, Next, NextSignal;
    internal Exception? Failure;
    internal CancellationTokenRegistration Registration;

    public Grant GetResult(short token)
    {
        bool failed = State == States.Canceled;
        try
        {
            return Core.GetResult(token);
        }
        finally
        {
            if (failed)
                Scheduler.Recycle(this);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => Core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        Core.OnCompleted(continuation, state, token, flags);
}
