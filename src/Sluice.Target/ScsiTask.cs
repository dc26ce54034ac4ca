using System.Buffers;
using Sluice.Iscsi.Pdu;
using Sluice.Scsi;

namespace Sluice.Target;

/// <summary>
/// Target-side state of one SCSI command (RFC 7143 §3.2.2 task): its buffers, the unsolicited
/// data window, the R2T bursts in flight and where it is in its life.
/// </summary>
internal sealed class ScsiTask
{
    public uint Itt { get; set; }
    public uint CmdSN { get; set; }
    public bool Immediate { get; set; }

    /// <summary>The request handed to the device; pooled with the task (its Nexus is the session's).</summary>
    public ScsiRequest Request { get; set; } = null!;

    /// <summary>Expected data-out length (W bit) and data-in length (R bit or the bidi AHS).</summary>
    public int OutLength { get; set; }
    public int InLength { get; set; }

    public byte[]? OutBuffer { get; set; }
    public byte[]? InBuffer { get; set; }

    /// <summary>Data-out bytes received so far (immediate, unsolicited and solicited).</summary>
    public int Received { get; set; }

    /// <summary>Unsolicited data (immediate plus Data-Out with TTT=0xffffffff) ends here (min(FirstBurstLength, EDTL)).</summary>
    public int UnsolicitedLimit { get; set; }
    public bool UnsolicitedDone { get; set; }
    public uint UnsolicitedDataSN { get; set; }

    /// <summary>Buffer offset the next unsolicited Data-Out must carry (immediate data comes first).</summary>
    public int UnsolicitedNextOffset { get; set; }

    /// <summary>
    /// Ranges of the data-out buffer whose Data-Out failed its data digest (RFC 7143 §7.8) and
    /// were discarded: at ErrorRecoveryLevel 1 each is asked for again with a recovery R2T
    /// before the command may run. Null until the first loss (an error path, so it may allocate).
    /// </summary>
    public List<(int Offset, int End)>? Lost { get; set; }

    /// <summary>
    /// At ErrorRecoveryLevel 0 a Data-Out failed its digest: the rest of the data is drained and
    /// the command ends with PROTOCOL SERVICE CRC ERROR once every outstanding burst is in (§7.8 b).
    /// </summary>
    public bool DigestFailed { get; set; }

    /// <summary>
    /// ErrorRecoveryLevel 1: the task's Data-In buffer is kept after the command completed, so
    /// a Data SNACK can be answered, until the initiator acknowledges its status (§11.16).
    /// </summary>
    public bool Retained { get; set; }

    /// <summary>The retained task's status is held for a Status SNACK; its acknowledgement releases the buffers.</summary>
    public bool StatusRecorded { get; set; }

    /// <summary>Length of the Data-In sent for the command (what a Data SNACK may ask for again).</summary>
    public int DataInSent { get; set; }

    /// <summary>Next offset that still needs an R2T.</summary>
    public int NextR2TOffset { get; set; }
    public uint NextR2TSN { get; set; }
    public List<Burst> Bursts => _bursts ??= [];

    private List<Burst>? _bursts;

    public bool Delivered { get; set; }
    public bool Dispatched { get; set; }
    public bool Aborted { get; set; }
    public CancellationTokenSource Cancellation { get; private set; } = new();

    /// <summary><see cref="System.Diagnostics.Stopwatch"/> timestamp at which the SCSI Command PDU arrived (for the function's latency).</summary>
    public long Arrival { get; set; }

    /// <summary>The SCSI Command PDU header that created the task.</summary>
    public Bhs Header { get; set; }

    /// <summary>The transfer exceeds MaxTransferLength: answered with CHECK CONDITION, data drained.</summary>
    public bool TooLarge { get; set; }

    /// <summary>Sense to answer with once delivered, when the data phase already failed.</summary>
    public byte[]? FailureSense { get; set; }

    public bool DataComplete => Received >= OutLength;

    private bool _pooledReturned;

    public void ReleaseBuffers()
    {
        if (OutBuffer is not null)
        {
            ArrayPool<byte>.Shared.Return(OutBuffer);
            OutBuffer = null;
        }

        if (InBuffer is not null)
        {
            ArrayPool<byte>.Shared.Return(InBuffer);
            InBuffer = null;
        }

        // CDB (16-byte form) and sense were rented when the command arrived.
        if (!_pooledReturned)
        {
            _pooledReturned = true;
            if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray(Request.Cdb, out var cdb) && cdb.Count == 16 && cdb.Array!.Length >= 16)
            {
                ArrayPool<byte>.Shared.Return(cdb.Array);
            }

            if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray((ReadOnlyMemory<byte>)Request.Sense, out var sense) && sense.Array is { Length: > 0 })
            {
                ArrayPool<byte>.Shared.Return(sense.Array);
            }
        }

    }

    /// <summary>
    /// Bumped each time the task goes back to its connection's pool, so a reference taken
    /// earlier (an ABORT TASK racing the completion) can tell it now belongs to another command.
    /// </summary>
    public int Generation { get; set; }

    /// <summary>Something outside the command's own path (an abort) holds the task: never pool it.</summary>
    public bool NoReuse { get; set; }

    /// <summary>The command's response went out: its path is over and the task may be reused.</summary>
    public bool Completed { get; set; }

    /// <summary>Clears the task for the next command (the caller holds the connection's task lock).</summary>
    public void Reset()
    {
        Itt = 0;
        CmdSN = 0;
        Immediate = false;
        OutLength = 0;
        InLength = 0;
        OutBuffer = null;
        InBuffer = null;
        Received = 0;
        UnsolicitedLimit = 0;
        UnsolicitedDone = false;
        UnsolicitedDataSN = 0;
        UnsolicitedNextOffset = 0;
        Lost = null;
        DigestFailed = false;
        Retained = false;
        StatusRecorded = false;
        DataInSent = 0;
        NextR2TOffset = 0;
        NextR2TSN = 0;
        _bursts?.Clear();
        Delivered = false;
        Dispatched = false;
        Aborted = false;
        Header = default;
        TooLarge = false;
        FailureSense = null;
        Completed = false;
        _pooledReturned = false;
        var request = Request;
        request.Cdb = default;
        request.Sense = default;
        request.DataIn = default;
        request.DataOut = default;
        if (!Cancellation.TryReset())
        {
            Cancellation = new CancellationTokenSource();
        }
    }

    /// <summary>One R2T's solicited Data-Out sequence (RFC 7143 §11.8).</summary>
    internal sealed class Burst
    {
        public required uint Ttt { get; init; }
        public required int Offset { get; init; }
        public required int End { get; init; }
        public int NextOffset { get; set; }
        public uint NextDataSN { get; set; }

        /// <summary>The R2TSN of the R2T that opened the burst (an R2T SNACK names it).</summary>
        public uint R2TSN { get; init; }
    }
}
