namespace Sluice.Offload;

/// <summary>Which per-byte engine a connection uses (DESIGN.md: the offload engine is replaceable).</summary>
public enum OffloadMode
{
    /// <summary>The fastest CRC32C kernel the CPU has, and payloads placed straight into their final buffers.</summary>
    Auto,

    /// <summary>The baseline: every payload staged and copied, table-driven CRC32C. Exists to measure the gain.</summary>
    None,
}
