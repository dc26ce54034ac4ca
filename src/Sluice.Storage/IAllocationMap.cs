namespace Sluice.Storage;

/// <summary>
/// Optional capability of an <see cref="IBlockDevice"/>: which byte ranges hold data and which
/// are deallocated (read as zeros). Backs GET LBA STATUS (SBC-4).
/// </summary>
public interface IAllocationMap
{
    /// <summary>
    /// Describes <c>[offset, offset + length)</c> as consecutive extents, in order, covering the
    /// range exactly. Adjacent extents differ in <c>Mapped</c>. The granularity is the back end's
    /// (file-system block, memory chunk); an extent reported mapped may still read as zeros.
    /// </summary>
    ValueTask<IReadOnlyList<(long Offset, long Length, bool Mapped)>> GetAllocationAsync(
        long offset, long length, CancellationToken cancellationToken = default);
}
