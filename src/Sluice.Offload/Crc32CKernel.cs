namespace Sluice.Offload;

/// <summary>The CRC32C implementations <see cref="Crc32C"/> can run; one is chosen at start-up.</summary>
internal enum Crc32CKernel
{
    /// <summary>Slicing-by-8 tables; no SIMD. What the "none" offload engine uses.</summary>
    Portable,

    /// <summary>SSE4.2 <c>crc32</c> over three interleaved streams, joined with shift tables.</summary>
    Sse42,

    /// <summary>PCLMULQDQ folding of eight 128-bit lanes, finished with SSE4.2 <c>crc32</c>.</summary>
    Pclmul128,

    /// <summary>AVX-512 VPCLMULQDQ folding of four 512-bit lanes, finished with SSE4.2 <c>crc32</c>.</summary>
    Vpclmul512,

    /// <summary>ARMv8 CRC32C instructions over three interleaved streams.</summary>
    Arm64,
}
