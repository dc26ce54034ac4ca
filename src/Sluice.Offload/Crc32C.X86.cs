using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sluice.Offload;

// x86 kernels. Folding follows Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ"
// (Gopal et al., 2009), reflected form. A 128-bit lane A = L·x^64 + H (L = low qword, higher degrees)
// moves D bits forward as L·x^(64+D) + H·x^D. A carry-less product of a reflected qword and a
// reflected 32-bit constant lands 33 bit positions short of the lane's top, so the constants are
// x^(D+31) mod P for L and x^(D-33) mod P for H. Folding keeps the value only modulo P, which is all
// the final step needs: the folded lane is treated as 16 ordinary message bytes and run through the
// SSE4.2 crc32 instruction with the tail, which does the reduction (no Barrett step).
public static partial class Crc32C
{
    // Stream lengths for the three-way crc32 kernels: long rounds for bulk, short ones for what is
    // left, so a 512-byte PDU still gets three streams.
    private const int LongStream = 1024;
    private const int ShortStream = 80;

    // Below this the folding set-up costs more than it saves.
    private const int FoldThreshold = 256;

    private static readonly uint[] s_shiftLong = BuildShiftTable(LongStream);
    private static readonly uint[] s_shiftShort = BuildShiftTable(ShortStream);

    private static readonly ulong s_k128L = FoldKeyL(128);
    private static readonly ulong s_k128H = FoldKeyH(128);
    private static readonly ulong s_k256L = FoldKeyL(256);
    private static readonly ulong s_k256H = FoldKeyH(256);
    private static readonly ulong s_k512L = FoldKeyL(512);
    private static readonly ulong s_k512H = FoldKeyH(512);
    private static readonly ulong s_k1024L = FoldKeyL(1024);
    private static readonly ulong s_k1024H = FoldKeyH(1024);
    private static readonly ulong s_k2048L = FoldKeyL(2048);
    private static readonly ulong s_k2048H = FoldKeyH(2048);

    /// <summary>Constant for the low qword of a lane folded <paramref name="bits"/> forward.</summary>
    internal static ulong FoldKeyL(int bits) => XPowModP(bits + 31);

    /// <summary>Constant for the high qword of a lane folded <paramref name="bits"/> forward.</summary>
    internal static ulong FoldKeyH(int bits) => XPowModP(bits - 33);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Read64(ref byte p, nuint offset) => Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, offset));

    private static uint UpdateSse42(uint state, ref byte p, nuint length)
    {
        ulong crc = state;
        nuint i = 0;
        for (; length - i >= 3 * LongStream; i += 3 * LongStream)
        {
            crc = Sse42ThreeStreams(crc, ref Unsafe.Add(ref p, i), LongStream, s_shiftLong);
        }

        for (; length - i >= 3 * ShortStream; i += 3 * ShortStream)
        {
            crc = Sse42ThreeStreams(crc, ref Unsafe.Add(ref p, i), ShortStream, s_shiftShort);
        }

        return Sse42Tail((uint)crc, ref Unsafe.Add(ref p, i), length - i);
    }

    // crc32 has a latency of 3 and a throughput of 1 per cycle: three independent streams keep the
    // unit busy. The streams are joined by multiplying by x^(8·stream) mod P with the shift tables.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Sse42ThreeStreams(ulong c0, ref byte p, nuint stream, uint[] shift)
    {
        ulong c1 = 0;
        ulong c2 = 0;
        ref byte p1 = ref Unsafe.Add(ref p, stream);
        ref byte p2 = ref Unsafe.Add(ref p, 2 * stream);
        for (nuint i = 0; i < stream; i += 16)
        {
            c0 = Sse42.X64.Crc32(c0, Read64(ref p, i));
            c1 = Sse42.X64.Crc32(c1, Read64(ref p1, i));
            c2 = Sse42.X64.Crc32(c2, Read64(ref p2, i));
            c0 = Sse42.X64.Crc32(c0, Read64(ref p, i + 8));
            c1 = Sse42.X64.Crc32(c1, Read64(ref p1, i + 8));
            c2 = Sse42.X64.Crc32(c2, Read64(ref p2, i + 8));
        }

        uint joined = Shift(shift, (uint)c0) ^ (uint)c1;
        return Shift(shift, joined) ^ (uint)c2;
    }

    private static uint Sse42Tail(uint state, ref byte p, nuint length)
    {
        ulong crc = state;
        nuint i = 0;
        for (; length - i >= 8; i += 8)
        {
            crc = Sse42.X64.Crc32(crc, Read64(ref p, i));
        }

        var c = (uint)crc;
        if ((length & 4) != 0)
        {
            c = Sse42.Crc32(c, Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, i)));
            i += 4;
        }

        if ((length & 2) != 0)
        {
            c = Sse42.Crc32(c, Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref p, i)));
            i += 2;
        }

        if ((length & 1) != 0)
        {
            c = Sse42.Crc32(c, Unsafe.Add(ref p, i));
        }

        return c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Fold128(Vector128<ulong> acc, Vector128<ulong> keys, Vector128<ulong> data) =>
        Pclmulqdq.CarrylessMultiply(acc, keys, 0x00) ^ Pclmulqdq.CarrylessMultiply(acc, keys, 0x11) ^ data;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Load128(ref byte p, nuint offset) => Vector128.LoadUnsafe(ref p, offset).AsUInt64();

    // The folded lane is 16 message bytes whose CRC (with state 0) carries everything before it.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint FinishFold(Vector128<ulong> lane, ref byte tail, nuint length)
    {
        ulong crc = Sse42.X64.Crc32(0UL, lane.ToScalar());
        crc = Sse42.X64.Crc32(crc, lane.GetElement(1));
        return Sse42Tail((uint)crc, ref tail, length);
    }

    private static uint UpdatePclmul128(uint state, ref byte p, nuint length)
    {
        if (length < FoldThreshold)
        {
            return UpdateSse42(state, ref p, length);
        }

        // The state enters as an XOR into the first four message bytes (linearity of the CRC).
        var x0 = Load128(ref p, 0) ^ Vector128.CreateScalar(state).AsUInt64();
        var x1 = Load128(ref p, 16);
        var x2 = Load128(ref p, 32);
        var x3 = Load128(ref p, 48);
        var x4 = Load128(ref p, 64);
        var x5 = Load128(ref p, 80);
        var x6 = Load128(ref p, 96);
        var x7 = Load128(ref p, 112);
        nuint i = 128;

        var k1024 = Vector128.Create(s_k1024L, s_k1024H);
        for (; length - i >= 128; i += 128)
        {
            x0 = Fold128(x0, k1024, Load128(ref p, i));
            x1 = Fold128(x1, k1024, Load128(ref p, i + 16));
            x2 = Fold128(x2, k1024, Load128(ref p, i + 32));
            x3 = Fold128(x3, k1024, Load128(ref p, i + 48));
            x4 = Fold128(x4, k1024, Load128(ref p, i + 64));
            x5 = Fold128(x5, k1024, Load128(ref p, i + 80));
            x6 = Fold128(x6, k1024, Load128(ref p, i + 96));
            x7 = Fold128(x7, k1024, Load128(ref p, i + 112));
        }

        var k512 = Vector128.Create(s_k512L, s_k512H);
        var k256 = Vector128.Create(s_k256L, s_k256H);
        var k128 = Vector128.Create(s_k128L, s_k128H);
        x4 = Fold128(x0, k512, x4);
        x5 = Fold128(x1, k512, x5);
        x6 = Fold128(x2, k512, x6);
        x7 = Fold128(x3, k512, x7);
        x6 = Fold128(x4, k256, x6);
        x7 = Fold128(x5, k256, x7);
        x7 = Fold128(x6, k128, x7);

        for (; length - i >= 16; i += 16)
        {
            x7 = Fold128(x7, k128, Load128(ref p, i));
        }

        return FinishFold(x7, ref Unsafe.Add(ref p, i), length - i);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Fold512(Vector512<ulong> acc, Vector512<ulong> keys, Vector512<ulong> data) =>
        Avx512F.TernaryLogic(
            Pclmulqdq.V512.CarrylessMultiply(acc, keys, 0x00),
            Pclmulqdq.V512.CarrylessMultiply(acc, keys, 0x11),
            data,
            0x96); // a ^ b ^ c

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Load512(ref byte p, nuint offset) => Vector512.LoadUnsafe(ref p, offset).AsUInt64();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Keys512(ulong low, ulong high) => Vector512.Create(low, high, low, high, low, high, low, high);

    private static uint UpdateVpclmul512(uint state, ref byte p, nuint length)
    {
        if (length < FoldThreshold)
        {
            return UpdateSse42(state, ref p, length);
        }

        var z0 = Load512(ref p, 0) ^ Vector512.CreateScalar(state).AsUInt64();
        var z1 = Load512(ref p, 64);
        var z2 = Load512(ref p, 128);
        var z3 = Load512(ref p, 192);
        nuint i = 256;

        var k2048 = Keys512(s_k2048L, s_k2048H);
        for (; length - i >= 256; i += 256)
        {
            z0 = Fold512(z0, k2048, Load512(ref p, i));
            z1 = Fold512(z1, k2048, Load512(ref p, i + 64));
            z2 = Fold512(z2, k2048, Load512(ref p, i + 128));
            z3 = Fold512(z3, k2048, Load512(ref p, i + 192));
        }

        var k1024 = Keys512(s_k1024L, s_k1024H);
        var k512 = Keys512(s_k512L, s_k512H);
        z2 = Fold512(z0, k1024, z2);
        z3 = Fold512(z1, k1024, z3);
        z3 = Fold512(z2, k512, z3);

        for (; length - i >= 64; i += 64)
        {
            z3 = Fold512(z3, k512, Load512(ref p, i));
        }

        // 512 -> 256 -> 128 bits: the lower half of the register is the earlier data.
        var k256 = Vector256.Create(s_k256L, s_k256H, s_k256L, s_k256H);
        var lower = z3.GetLower();
        var y = Pclmulqdq.V256.CarrylessMultiply(lower, k256, 0x00)
            ^ Pclmulqdq.V256.CarrylessMultiply(lower, k256, 0x11)
            ^ z3.GetUpper();
        var k128 = Vector128.Create(s_k128L, s_k128H);
        var x = Fold128(y.GetLower(), k128, y.GetUpper());

        for (; length - i >= 16; i += 16)
        {
            x = Fold128(x, k128, Load128(ref p, i));
        }

        return FinishFold(x, ref Unsafe.Add(ref p, i), length - i);
    }
}
