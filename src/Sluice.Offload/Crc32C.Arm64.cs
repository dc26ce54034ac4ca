using System.Runtime.CompilerServices;
using ArmCrc32 = System.Runtime.Intrinsics.Arm.Crc32;

namespace Sluice.Offload;

// ARMv8 CRC32C instructions, three streams joined with the same shift tables as the SSE4.2 kernel.
public static partial class Crc32C
{
    private static uint UpdateArm64(uint state, ref byte p, nuint length)
    {
        uint crc = state;
        nuint i = 0;
        for (; length - i >= 3 * LongStream; i += 3 * LongStream)
        {
            crc = Arm64ThreeStreams(crc, ref Unsafe.Add(ref p, i), LongStream, s_shiftLong);
        }

        for (; length - i >= 3 * ShortStream; i += 3 * ShortStream)
        {
            crc = Arm64ThreeStreams(crc, ref Unsafe.Add(ref p, i), ShortStream, s_shiftShort);
        }

        for (; length - i >= 8; i += 8)
        {
            crc = ArmCrc32.Arm64.ComputeCrc32C(crc, Read64(ref p, i));
        }

        for (; i < length; i++)
        {
            crc = ArmCrc32.ComputeCrc32C(crc, Unsafe.Add(ref p, i));
        }

        return crc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Arm64ThreeStreams(uint c0, ref byte p, nuint stream, uint[] shift)
    {
        uint c1 = 0;
        uint c2 = 0;
        ref byte p1 = ref Unsafe.Add(ref p, stream);
        ref byte p2 = ref Unsafe.Add(ref p, 2 * stream);
        for (nuint i = 0; i < stream; i += 8)
        {
            c0 = ArmCrc32.Arm64.ComputeCrc32C(c0, Read64(ref p, i));
            c1 = ArmCrc32.Arm64.ComputeCrc32C(c1, Read64(ref p1, i));
            c2 = ArmCrc32.Arm64.ComputeCrc32C(c2, Read64(ref p2, i));
        }

        uint joined = Shift(shift, c0) ^ c1;
        return Shift(shift, joined) ^ c2;
    }
}
