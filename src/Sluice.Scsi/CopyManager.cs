using System.Buffers.Binary;
using System.Collections.Concurrent;
using Sluice.Storage;

namespace Sluice.Scsi;

/// <summary>
/// A logical unit that an EXTENDED COPY copy source or copy destination (CSCD) descriptor
/// names: its device, the unit, the I_T nexus the copy manager acts through on it (reservations
/// are checked for that nexus). A QoS-scheduled LU's device is itself scheduled, so the copy's
/// I/O is charged to the LU's function like any other.
/// </summary>
public sealed record CopyTarget(ScsiTargetDevice Device, LogicalUnit Unit, ITNexus Nexus);

/// <summary>
/// Finds the logical unit an identification CSCD descriptor (type E4h, SPC-4 6.4.5.6) names by
/// its NAA designator, among the LUs the requesting initiator may reach. Without a resolver a
/// <see cref="ScsiTargetDevice"/> resolves only its own LUs.
/// </summary>
public interface ICopyTargetResolver
{
    /// <summary>
    /// <paramref name="designator"/> is the DESIGNATOR field of a binary, LU-associated NAA
    /// designation descriptor (as VPD page 83h reports it). Returns null when no LU the
    /// <paramref name="requester"/>'s initiator may reach has it.
    /// </summary>
    CopyTarget? Resolve(ReadOnlySpan<byte> designator, ITNexus requester);
}

/// <summary>Status of one EXTENDED COPY (LID1) held for RECEIVE COPY RESULTS (SPC-4 6.18).</summary>
internal sealed class CopyRecord(byte listId, bool holdDetails)
{
    public const byte InProgress = 0x00;
    public const byte CompletedGood = 0x01;
    public const byte CompletedWithErrors = 0x02;

    public byte ListId { get; } = listId;

    /// <summary>LIST ID USAGE 00b: FAILED SEGMENT DETAILS are held as well as the copy status.</summary>
    public bool HoldDetails { get; } = holdDetails;

    private int state; // InProgress / CompletedGood / CompletedWithErrors
    private int segmentsProcessed;
    private long bytesTransferred;

    public byte State => (byte)Volatile.Read(ref state);
    public int SegmentsProcessed => Volatile.Read(ref segmentsProcessed);
    public long BytesTransferred => Interlocked.Read(ref bytesTransferred);

    /// <summary>Status of the EXTENDED COPY command itself and its sense data, once it has ended with an error.</summary>
    public byte CommandStatus { get; private set; }
    public byte[] Sense { get; private set; } = [];

    public void AddBytes(long n) => Interlocked.Add(ref bytesTransferred, n);

    public void SegmentDone() => Interlocked.Increment(ref segmentsProcessed);

    public void Complete(byte commandStatus, ReadOnlySpan<byte> sense)
    {
        CommandStatus = commandStatus;
        Sense = sense.ToArray();
        Volatile.Write(ref state, commandStatus == ScsiStatus.Good ? CompletedGood : CompletedWithErrors);
    }
}

/// <summary>
/// Per-LU copy manager state: the held copy results per I_T nexus and list identifier
/// (SPC-4 5.16.4.3), and the number of copies running.
/// </summary>
internal sealed class CopyResults
{
    private readonly ConcurrentDictionary<(string Initiator, string Target, byte ListId), CopyRecord> records = new();
    private int running;

    public int Running => Volatile.Read(ref running);

    public bool TryBegin(int limit)
    {
        if (Interlocked.Increment(ref running) > limit)
        {
            Interlocked.Decrement(ref running);
            return false;
        }
        return true;
    }

    public void End() => Interlocked.Decrement(ref running);

    /// <summary>
    /// Registers a copy under its list identifier; false when a copy with that list identifier
    /// is still running for the nexus (SPC-4 6.4.3: OPERATION IN PROGRESS). A finished one's
    /// held data is discarded.
    /// </summary>
    public bool TryAdd(ITNexus nexus, CopyRecord record)
    {
        var key = (nexus.InitiatorPortName, nexus.TargetPortName, record.ListId);
        while (true)
        {
            if (records.TryGetValue(key, out var existing))
            {
                if (existing.State == CopyRecord.InProgress)
                {
                    return false;
                }
                if (records.TryUpdate(key, record, existing))
                {
                    return true;
                }
            }
            else if (records.TryAdd(key, record))
            {
                return true;
            }
        }
    }

    public CopyRecord? Find(ITNexus nexus, byte listId) =>
        records.TryGetValue((nexus.InitiatorPortName, nexus.TargetPortName, listId), out var r) ? r : null;

    /// <summary>I_T nexus loss discards that nexus' held data (SPC-4 5.16.4.3).</summary>
    public void Forget(ITNexus nexus)
    {
        foreach (var key in records.Keys)
        {
            if (key.Initiator == nexus.InitiatorPortName && key.Target == nexus.TargetPortName)
            {
                records.TryRemove(key, out _);
            }
        }
    }

    /// <summary>A logical unit reset discards all held data (SPC-4 5.16.4.3).</summary>
    public void Clear()
    {
        foreach (var pair in records)
        {
            if (pair.Value.State != CopyRecord.InProgress)
            {
                records.TryRemove(pair);
            }
        }
    }
}

/// <summary>Copy manager limits, reported identically by RECEIVE COPY RESULTS / OPERATING PARAMETERS and VPD page 8Fh.</summary>
internal static class CopyLimits
{
    public const int MaxCscdDescriptors = 16;
    public const int MaxSegmentDescriptors = 64;
    public const int CscdDescriptorLength = 32;
    public const int BlockToBlockLength = 28;
    /// <summary>MAXIMUM DESCRIPTOR LIST LENGTH: the largest CSCD + segment descriptor lists at the counts above.</summary>
    public const int MaxDescriptorListLength = (MaxCscdDescriptors * CscdDescriptorLength) + (MaxSegmentDescriptors * BlockToBlockLength);
    public const int MaxInlineData = 0;
    public const int MaxConcurrentCopies = 16;
    /// <summary>MAXIMUM SEGMENT LENGTH in bytes: 65535 blocks (the 16-bit BLOCK DEVICE NUMBER OF BLOCKS) of the LU's size.</summary>
    public static uint MaxSegmentLength(LogicalUnit lu) => (uint)Math.Min(uint.MaxValue, 65535L * lu.BlockSize);

    public const byte CscdIdentification = 0xE4;
    public const byte BlockToBlock = 0x02;
    public static ReadOnlySpan<byte> ImplementedDescriptors => [BlockToBlock, CscdIdentification];
}
