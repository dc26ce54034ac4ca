namespace Sluice.Scsi;

/// <summary>How a logical unit presents itself to initiators (SBC-3 direct-access block device).</summary>
public sealed class LogicalUnitOptions
{
    /// <summary>Logical block length in bytes (power of two, 512..65536).</summary>
    public int BlockSize { get; set; } = 512;

    /// <summary>Writes fail with DATA PROTECT / WRITE PROTECTED.</summary>
    public bool ReadOnly { get; set; }

    /// <summary>RMB=1: START STOP UNIT LOEJ and PREVENT ALLOW MEDIUM REMOVAL act on a virtual medium.</summary>
    public bool Removable { get; set; }

    /// <summary>Initial WCE of the caching mode page; false makes every write FUA (write-through).</summary>
    public bool WriteCacheEnabled { get; set; } = true;

    /// <summary>Unit serial number (VPD 80h); derived from the NAA identifier when null.</summary>
    public string? SerialNumber { get; set; }

    /// <summary>Stable per-LU identifier behind the NAA designator of VPD 83h; derived from target name and LUN when null.</summary>
    public ulong? NaaIdentifier { get; set; }

    public string Vendor { get; set; } = "SLUICE";
    public string Product { get; set; } = "Sluice disk";
    public string Revision { get; set; } = "0001";

    /// <summary>Largest single transfer the LU accepts (Block Limits VPD MAXIMUM TRANSFER LENGTH).</summary>
    public int MaxTransferLengthBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>
    /// Largest WRITE SAME and per-descriptor UNMAP range (Block Limits VPD MAXIMUM WRITE SAME
    /// LENGTH and MAXIMUM UNMAP LBA COUNT).
    /// </summary>
    public long MaxWriteSameLengthBytes { get; set; } = 1L << 30;

    /// <summary>
    /// Directory for state that must survive a restart: persistent reservations made with
    /// APTPL=1 go to <c>pr-lun&lt;N&gt;.json</c> here (written atomically). One directory per target.
    /// Null: APTPL is not supported (REPORT CAPABILITIES PTPL_C=0).
    /// </summary>
    public string? StateDirectory { get; set; }

    /// <summary>OPTIMAL UNMAP GRANULARITY in bytes; null derives it from the back end (memory chunk, or 4 KiB).</summary>
    public long? UnmapGranularityBytes { get; set; }
}
