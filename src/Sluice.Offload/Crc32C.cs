using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

// The kernel enum and per-kernel entry point are internal; the benchmarks compare kernels directly.
[assembly: InternalsVisibleTo("Sluice.Benchmarks")]

namespace Sluice.Offload;

/// <summary>
/// CRC32C, the iSCSI header and data digest (RFC 7143 §13.1, RFC 3720 Appendix B.4): the reflected
/// Castagnoli polynomial 0x82F63B78, initial value 0xFFFFFFFF and final XOR 0xFFFFFFFF.
/// </summary>
/// <remarks>
/// The fastest kernel the CPU has is picked once, at start-up (<see cref="KernelName"/>). Values passed
/// to and returned from <see cref="Append(uint, ReadOnlySpan{byte})"/> are finished CRCs, so a digest
/// can be carried across the pieces of a scatter-gather list without extra state.
/// </remarks>
public static partial class Crc32C
{
    /// <summary>Reflected Castagnoli polynomial, x^32 implied.</summary>
    internal const uint Polynomial = 0x82F63B78;

    // Slicing-by-8: eight 256-entry tables, back to back; table k advances a byte by k further bytes.
    private static readonly uint[] s_table = BuildSlicingTable();

    /// <summary>The kernel <see cref="Compute"/> and <see cref="Append(uint, ReadOnlySpan{byte})"/> use.</summary>
    internal static readonly Crc32CKernel Selected = SelectKernel();

    /// <summary>Name of the kernel chosen for this CPU, for logs and benchmark reports.</summary>
    public static string KernelName => Selected switch
    {
        Crc32CKernel.Portable => "portable (slicing-by-8)",
        Crc32CKernel.Sse42 => "sse4.2 crc32 x3",
        Crc32CKernel.Pclmul128 => "pclmulqdq 8x128 fold",
        Crc32CKernel.Vpclmul512 => "avx512 vpclmulqdq 4x512 fold",
        Crc32CKernel.Arm64 => "arm64 crc32c x3",
        _ => Selected.ToString(),
    };

    /// <summary>CRC32C of <paramref name="data"/>; equal to <c>Append(0, data)</c>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>
    /// Extends a finished CRC32C with more bytes: <c>Append(Append(0, a), b)</c> is the CRC of
    /// <c>a</c> followed by <c>b</c>.
    /// </summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data) => ~Update(Selected, ~crc, data);

    /// <summary>Table-driven, SIMD-free form of <see cref="Append(uint, ReadOnlySpan{byte})"/>.</summary>
    public static uint AppendPortable(uint crc, ReadOnlySpan<byte> data) =>
        ~UpdatePortable(~crc, ref MemoryMarshal.GetReference(data), (nuint)data.Length);

    /// <summary>Runs one kernel explicitly, for tests and benchmarks.</summary>
    /// <exception cref="NotSupportedException">The CPU lacks the kernel's instructions.</exception>
    internal static uint Append(Crc32CKernel kernel, uint crc, ReadOnlySpan<byte> data)
    {
        if (!IsSupported(kernel))
        {
            throw new NotSupportedException($"CRC32C kernel {kernel} is not supported on this CPU.");
        }

        return ~Update(kernel, ~crc, data);
    }

    internal static bool IsSupported(Crc32CKernel kernel) => kernel switch
    {
        Crc32CKernel.Portable => true,
        Crc32CKernel.Sse42 => Sse42.X64.IsSupported,
        Crc32CKernel.Pclmul128 => Sse42.X64.IsSupported && Pclmulqdq.IsSupported,
        Crc32CKernel.Vpclmul512 => Sse42.X64.IsSupported && Avx512F.IsSupported
            && Pclmulqdq.V256.IsSupported && Pclmulqdq.V512.IsSupported,
        Crc32CKernel.Arm64 => Crc32.Arm64.IsSupported,
        _ => false,
    };

    private static Crc32CKernel SelectKernel()
    {
        // Sse42 before Pclmul128: 8x128 folding issues twice the instructions per byte of the 512-bit
        // form and measured at half the speed of three crc32 streams on Zen 4 (bench/crc32c-vs-isal.sh,
        // crc-gbps --kernel); Skylake-class cores have the same 1/cycle rate for both instructions.
        ReadOnlySpan<Crc32CKernel> best =
            [Crc32CKernel.Vpclmul512, Crc32CKernel.Sse42, Crc32CKernel.Pclmul128, Crc32CKernel.Arm64];
        foreach (var kernel in best)
        {
            if (IsSupported(kernel))
            {
                return kernel;
            }
        }

        return Crc32CKernel.Portable;
    }

    // State in, state out: no inversions, so kernels compose and the shift tables stay linear.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Update(Crc32CKernel kernel, uint state, ReadOnlySpan<byte> data)
    {
        ref byte p = ref MemoryMarshal.GetReference(data);
        var length = (nuint)data.Length;
        return kernel switch
        {
            Crc32CKernel.Vpclmul512 => UpdateVpclmul512(state, ref p, length),
            Crc32CKernel.Pclmul128 => UpdatePclmul128(state, ref p, length),
            Crc32CKernel.Sse42 => UpdateSse42(state, ref p, length),
            Crc32CKernel.Arm64 => UpdateArm64(state, ref p, length),
            _ => UpdatePortable(state, ref p, length),
        };
    }

    private static uint UpdatePortable(uint state, ref byte p, nuint length)
    {
        ref uint t = ref MemoryMarshal.GetArrayDataReference(s_table);
        nuint i = 0;
        if (BitConverter.IsLittleEndian)
        {
            for (; length - i >= 8; i += 8)
            {
                ulong v = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i));
                uint lo = (uint)v ^ state;
                var hi = (uint)(v >> 32);
                state = Unsafe.Add(ref t, (7 * 256) + (lo & 0xFF))
                    ^ Unsafe.Add(ref t, (6 * 256) + ((lo >> 8) & 0xFF))
                    ^ Unsafe.Add(ref t, (5 * 256) + ((lo >> 16) & 0xFF))
                    ^ Unsafe.Add(ref t, (4 * 256) + (lo >> 24))
                    ^ Unsafe.Add(ref t, (3 * 256) + (hi & 0xFF))
                    ^ Unsafe.Add(ref t, (2 * 256) + ((hi >> 8) & 0xFF))
                    ^ Unsafe.Add(ref t, 256 + ((hi >> 16) & 0xFF))
                    ^ Unsafe.Add(ref t, hi >> 24);
            }
        }

        for (; i < length; i++)
        {
            state = (state >> 8) ^ Unsafe.Add(ref t, (state ^ Unsafe.Add(ref p, i)) & 0xFF);
        }

        return state;
    }

    private static uint[] BuildSlicingTable()
    {
        var table = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (var bit = 0; bit < 8; bit++)
            {
                c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            }

            table[i] = c;
        }

        for (var k = 1; k < 8; k++)
        {
            for (var i = 0; i < 256; i++)
            {
                uint prev = table[((k - 1) * 256) + i];
                table[(k * 256) + i] = (prev >> 8) ^ table[prev & 0xFF];
            }
        }

        return table;
    }

    // Polynomials below 32 bits are kept reflected: bit j holds the coefficient of x^(31-j).

    /// <summary>x^<paramref name="n"/> mod P, reflected.</summary>
    internal static uint XPowModP(int n)
    {
        uint v = 0x8000_0000; // x^0
        for (var i = 0; i < n; i++)
        {
            v = (v & 1) != 0 ? (v >> 1) ^ Polynomial : v >> 1;
        }

        return v;
    }

    /// <summary>a·b mod P, both reflected.</summary>
    internal static uint MultiplyModP(uint a, uint b)
    {
        uint product = 0;
        for (uint m = 0x8000_0000; m != 0; m >>= 1)
        {
            if ((a & m) != 0)
            {
                product ^= b;
            }

            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }

        return product;
    }

    /// <summary>
    /// Four 256-entry tables that multiply a CRC state by x^(8·<paramref name="bytes"/>) mod P one byte
    /// of the state at a time; that is how independent streams are joined.
    /// </summary>
    private static uint[] BuildShiftTable(int bytes)
    {
        uint shift = XPowModP(8 * bytes);
        var table = new uint[4 * 256];
        for (var k = 0; k < 4; k++)
        {
            for (uint i = 0; i < 256; i++)
            {
                table[(k * 256) + (int)i] = MultiplyModP(i << (8 * k), shift);
            }
        }

        return table;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Shift(uint[] table, uint state)
    {
        ref uint t = ref MemoryMarshal.GetArrayDataReference(table);
        return Unsafe.Add(ref t, state & 0xFF)
            ^ Unsafe.Add(ref t, 256 + ((state >> 8) & 0xFF))
            ^ Unsafe.Add(ref t, 512 + ((state >> 16) & 0xFF))
            ^ Unsafe.Add(ref t, 768 + (state >> 24));
    }
}
