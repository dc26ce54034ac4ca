using System.Collections.Concurrent;
using Sluice.Storage;

namespace Sluice.Scsi;

/// <summary>
/// One SBC-3 direct-access logical unit over an <see cref="IBlockDevice"/>: geometry, the
/// virtual removable medium, mode pages, and per-nexus unit attention/prevent state.
/// </summary>
public sealed class LogicalUnit
{
    /// <summary>Largest LUN that single-level peripheral/flat addressing can express (SAM-5 4.7.7).</summary>
    public const ulong MaxLun = 16383;

    private readonly ConcurrentDictionary<ITNexus, NexusState> nexuses = new(NexusComparer.Instance);
    private readonly Lock modeGate = new();
    private volatile bool mediumPresent = true;

    public LogicalUnit(ulong lun, IBlockDevice device, LogicalUnitOptions options)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lun, MaxLun);
        if (options.BlockSize < 512 || options.BlockSize > 65536 || (options.BlockSize & (options.BlockSize - 1)) != 0)
        {
            throw new ArgumentException("BlockSize must be a power of two between 512 and 65536.", nameof(options));
        }
        if (options.MaxTransferLengthBytes < options.BlockSize)
        {
            throw new ArgumentException("MaxTransferLengthBytes must hold at least one block.", nameof(options));
        }
        Lun = lun;
        Device = device;
        Options = options;
        BlockSize = options.BlockSize;
        BlockCount = device.Length / options.BlockSize;
        ReadOnly = options.ReadOnly || device.IsReadOnly;
        Removable = options.Removable;
        MaxTransferBlocks = (uint)(options.MaxTransferLengthBytes / options.BlockSize);
        ThinProvisioned = device.SupportsUnmap;
        long granularity = options.UnmapGranularityBytes ?? (device is MemoryBlockDevice memory ? memory.ChunkSize : 4096);
        UnmapGranularityBlocks = (uint)Math.Clamp(granularity / options.BlockSize, 1, uint.MaxValue);
        MaxWriteSameBlocks = (uint)Math.Clamp(options.MaxWriteSameLengthBytes / options.BlockSize, 1, uint.MaxValue);
        MaxCompareAndWriteBlocks = (byte)Math.Clamp((1 << 20) / options.BlockSize, 1, Math.Max(1u, Math.Min(255u, MaxTransferBlocks / 2)));
        MaxAtomicBlocks = (uint)Math.Clamp((1 << 20) / options.BlockSize, 1, Math.Min(ushort.MaxValue, MaxTransferBlocks));
        // libiscsi (and common initiators) treat a MAXIMUM UNMAP LBA COUNT above 1M as bogus.
        MaxUnmapBlocks = Math.Min(MaxWriteSameBlocks, 1u << 20);
        Reservations = new PersistentReservations(options.StateDirectory is { } dir
            ? Path.Combine(dir, $"pr-lun{lun}.json")
            : null);
        ModePages.InitDefaults(this);
        ApplyModePages();
    }

    /// <summary>Persistent and RESERVE(6)/(10) reservations (SPC-4 5.12).</summary>
    internal PersistentReservations Reservations { get; }

    public ulong Lun { get; }

    /// <summary>Number of logical blocks (capacity / block size).</summary>
    public long BlockCount { get; }

    public int BlockSize { get; }

    internal IBlockDevice Device { get; }
    internal LogicalUnitOptions Options { get; }
    internal bool ReadOnly { get; }
    internal bool Removable { get; }
    internal uint MaxTransferBlocks { get; }

    /// <summary>
    /// Logical block provisioning management is enabled (SBC-3 4.7.3): the back end really
    /// deallocates, and deallocated blocks read as zeros (LBPRZ=1).
    /// </summary>
    internal bool ThinProvisioned { get; }

    /// <summary>OPTIMAL UNMAP GRANULARITY (SBC-3 6.5.3): the back end's allocation unit in blocks.</summary>
    internal uint UnmapGranularityBlocks { get; }

    /// <summary>MAXIMUM COMPARE AND WRITE LENGTH (SBC-3 6.5.3).</summary>
    internal byte MaxCompareAndWriteBlocks { get; }

    /// <summary>MAXIMUM ATOMIC TRANSFER LENGTH (SBC-4 6.6.4); ATOMIC ALIGNMENT and GRANULARITY are 1.</summary>
    internal uint MaxAtomicBlocks { get; }

    /// <summary>MAXIMUM WRITE SAME LENGTH (SBC-3 6.5.3).</summary>
    internal uint MaxWriteSameBlocks { get; }

    /// <summary>MAXIMUM UNMAP LBA COUNT (SBC-3 6.5.3).</summary>
    internal uint MaxUnmapBlocks { get; }

    /// <summary>Copy manager state: EXTENDED COPY results held per I_T nexus and list identifier.</summary>
    internal CopyResults Copies { get; } = new();

    /// <summary>Serialises COMPARE AND WRITE / ORWRITE / WRITE ATOMIC against overlapping I/O.</summary>
    internal RangeLock Ranges { get; } = new();

    /// <summary>MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT (SBC-3 6.5.3).</summary>
    internal const uint MaxUnmapDescriptors = 256;

    // Current mode page values (SPC-4 7.5 / SBC-3 6.4). Guarded by modeGate; the derived
    // flags below are read lock-free on the I/O path.
    internal byte[] Caching { get; } = new byte[ModePages.CachingLength];
    internal byte[] Control { get; } = new byte[ModePages.ControlLength];
    internal byte[] InformationalExceptions { get; } = new byte[ModePages.IecLength];
    internal Lock ModeGate => modeGate;

    internal volatile bool WriteCacheEnabled;
    internal volatile bool DescriptorSense;
    internal volatile bool SoftwareWriteProtect;

    internal bool MediumPresent
    {
        get => mediumPresent;
        set => mediumPresent = value;
    }

    private int backgroundOperation;

    /// <summary>
    /// The NOT READY ASC/ASCQ of an operation that has the whole LU (SANITIZE: 04h/1Bh), or 0.
    /// Every command but INQUIRY, REPORT LUNS and REQUEST SENSE is refused with it meanwhile.
    /// </summary>
    internal ushort BackgroundOperation => (ushort)Volatile.Read(ref backgroundOperation);

    internal bool TryBeginBackgroundOperation(ushort notReadyAsc) =>
        Interlocked.CompareExchange(ref backgroundOperation, notReadyAsc, 0) == 0;

    internal void EndBackgroundOperation() => Volatile.Write(ref backgroundOperation, 0);

    /// <summary>Sanitize failure mode (SBC-3 4.11.?): the last SANITIZE failed.</summary>
    internal volatile bool SanitizeFailed;

    /// <summary>Writes are refused: read-only LU or SWP set in the control mode page.</summary>
    internal bool WriteProtected => ReadOnly || SoftwareWriteProtect;

    internal void ApplyModePages()
    {
        WriteCacheEnabled = (Caching[2] & 0x04) != 0;
        DescriptorSense = (Control[2] & 0x04) != 0;
        SoftwareWriteProtect = (Control[4] & 0x08) != 0;
    }

    /// <summary>The state of <paramref name="nexus"/> on this LU; a new nexus starts with POWER ON UA pending.</summary>
    internal NexusState GetNexus(ITNexus nexus) =>
        nexuses.GetOrAdd(nexus, static _ => new NexusState(powerOn: true));

    internal bool RemovalPrevented
    {
        get
        {
            foreach (var pair in nexuses)
            {
                if (pair.Value.Prevent)
                {
                    return true;
                }
            }
            return false;
        }
    }

    /// <summary>Queues a unit attention for every known nexus except <paramref name="except"/>.</summary>
    internal void RaiseUnitAttention(ushort ascAscq, ITNexus? except = null)
    {
        foreach (var pair in nexuses)
        {
            if (except is not null && NexusComparer.Instance.Equals(pair.Key, except))
            {
                continue;
            }
            pair.Value.Add(ascAscq);
        }
    }

    internal void RemoveNexus(ITNexus nexus)
    {
        nexuses.TryRemove(nexus, out _);
        Copies.Forget(nexus);
        // I_T nexus loss releases a RESERVE(6)/(10) reservation (SPC-2 5.5.1); persistent
        // reservations survive it (SPC-4 5.12.1).
        ReleaseLegacy(nexus);
    }

    internal void ReleaseLegacy(ITNexus? nexus)
    {
        var pr = Reservations;
        lock (pr.Gate)
        {
            if (pr.LegacyHolder is not null && (nexus is null || NexusComparer.Instance.Equals(pr.LegacyHolder, nexus)))
            {
                pr.LegacyHolder = null;
                pr.UpdateActive();
            }
        }
    }

    /// <summary>
    /// Logical unit reset (SAM-5 6.3.3 / hard reset): mode parameters return to their
    /// defaults (nothing is saved), PREVENT state is cleared (SPC-4 6.13), and every nexus gets
    /// <paramref name="ascAscq"/> as a unit attention.
    /// </summary>
    internal void Reset(ushort ascAscq)
    {
        lock (modeGate)
        {
            ModePages.InitDefaults(this);
            ApplyModePages();
        }
        foreach (var pair in nexuses)
        {
            pair.Value.Prevent = false;
            pair.Value.Add(ascAscq);
        }
        // Resets release RESERVE(6)/(10) reservations, not persistent ones (SPC-4 5.12.1),
        // and discard held copy results (SPC-4 5.16.4.3).
        ReleaseLegacy(null);
        Copies.Clear();
    }
}
