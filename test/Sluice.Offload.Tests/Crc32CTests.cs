using Sluice.Offload;

namespace Sluice.Offload.Tests;

public sealed class Crc32CTests
{
    // Kernel names rather than the internal enum, so the theory methods can stay public.
    public static TheoryData<string> Kernels()
    {
        var data = new TheoryData<string>();
        foreach (var kernel in Enum.GetValues<Crc32CKernel>())
        {
            if (Crc32C.IsSupported(kernel))
            {
                data.Add(kernel.ToString());
            }
        }

        return data;
    }

    // RFC 3720 Appendix B.4: the 48-byte SCSI Read (10) command PDU.
    private static readonly byte[] s_readPdu =
    [
        0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
        0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    public static TheoryData<string, byte[], uint> Rfc3720Vectors() => new()
    {
        { "zeros", new byte[32], 0x8A9136AA },
        { "ones", Enumerable.Repeat((byte)0xFF, 32).ToArray(), 0x62A8AB43 },
        { "ascending", Enumerable.Range(0, 32).Select(i => (byte)i).ToArray(), 0x46DD794E },
        { "descending", Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray(), 0x113FDB5C },
        { "read-pdu", s_readPdu, 0xD9963A56 },
        { "check", "123456789"u8.ToArray(), 0xE3069283 },
        { "empty", [], 0x00000000 },
    };

    /// <summary>One bit at a time, straight from the definition; shares no code with the kernels.</summary>
    private static uint Reference(ReadOnlySpan<byte> data, uint crc = 0)
    {
        uint state = ~crc;
        foreach (byte b in data)
        {
            state ^= b;
            for (var bit = 0; bit < 8; bit++)
            {
                state = (state >> 1) ^ (0x82F63B78u & (0u - (state & 1)));
            }
        }

        return ~state;
    }

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Theory]
    [MemberData(nameof(Rfc3720Vectors))]
    public void Reference_Rfc3720Vector_Matches(string name, byte[] data, uint expected)
    {
        Assert.True(Reference(data) == expected, name);
    }

    [Theory]
    [MemberData(nameof(Rfc3720Vectors))]
    public void Compute_Rfc3720Vector_Matches(string name, byte[] data, uint expected)
    {
        Assert.True(Crc32C.Compute(data) == expected, name);
        Assert.True(Crc32C.AppendPortable(0, data) == expected, name);
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_Rfc3720Vectors_Match(string kernelName)
    {
        var kernel = Enum.Parse<Crc32CKernel>(kernelName);
        foreach (var row in Rfc3720Vectors())
        {
            var name = (string)row[0];
            var data = (byte[])row[1];
            var expected = (uint)row[2];
            Assert.True(Crc32C.Append(kernel, 0, data) == expected, $"{kernel} {name}");
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_EveryLengthTo4KiBAtRandomAlignment_MatchesReference(string kernelName)
    {
        var kernel = Enum.Parse<Crc32CKernel>(kernelName);
        var buffer = RandomBytes(4096 + 64, 7143);
        var random = new Random(3720);
        for (var length = 0; length <= 4096; length++)
        {
            var offset = random.Next(64);
            var data = buffer.AsSpan(offset, length);
            var seed = (uint)random.Next();
            uint expected = Reference(data, seed);
            uint actual = Crc32C.Append(kernel, seed, data);
            if (actual != expected)
            {
                Assert.Fail($"{kernel}: length {length} offset {offset}: got 0x{actual:X8}, want 0x{expected:X8}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_LargeBuffers_MatchReference(string kernelName)
    {
        var kernel = Enum.Parse<Crc32CKernel>(kernelName);
        var buffer = RandomBytes((1 << 20) + 13 + 3, 1048576);
        foreach (var length in new[] { 1 << 20, (1 << 20) + 13 })
        {
            foreach (var offset in new[] { 0, 3 })
            {
                var data = buffer.AsSpan(offset, length);
                Assert.Equal(Reference(data), Crc32C.Append(kernel, 0, data));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_AppendSplitAnywhere_EqualsWhole(string kernelName)
    {
        var kernel = Enum.Parse<Crc32CKernel>(kernelName);
        var data = RandomBytes(3000, 42);
        uint whole = Reference(data);
        var random = new Random(43);
        for (var trial = 0; trial < 300; trial++)
        {
            var a = random.Next(data.Length + 1);
            var b = random.Next(a, data.Length + 1);
            uint crc = Crc32C.Append(kernel, 0, data.AsSpan(0, a));
            crc = Crc32C.Append(kernel, crc, data.AsSpan(a, b - a));
            crc = Crc32C.Append(kernel, crc, data.AsSpan(b));
            Assert.Equal(whole, crc);
        }
    }

    [Fact]
    public void Append_Incremental_EqualsCompute()
    {
        var data = RandomBytes(70_000, 9);
        uint crc = 0;
        var rest = data.AsSpan();
        var random = new Random(10);
        while (!rest.IsEmpty)
        {
            var n = Math.Min(rest.Length, random.Next(1, 5000));
            crc = Crc32C.Append(crc, rest[..n]);
            rest = rest[n..];
        }

        Assert.Equal(Crc32C.Compute(data), crc);
        Assert.Equal(Reference(data), crc);
    }

    [Fact]
    public void AppendPortable_EveryLengthTo1KiB_MatchesReference()
    {
        var buffer = RandomBytes(1024 + 8, 11);
        for (var length = 0; length <= 1024; length++)
        {
            var data = buffer.AsSpan(length % 8, length);
            Assert.Equal(Reference(data, 0x1234_5678), Crc32C.AppendPortable(0x1234_5678, data));
        }
    }

    [Fact]
    public void Selected_IsSupportedOnThisCpu()
    {
        Assert.True(Crc32C.IsSupported(Crc32C.Selected));
        Assert.False(string.IsNullOrEmpty(Crc32C.KernelName));
    }

    [Fact]
    public void Append_UnsupportedKernel_Throws()
    {
        foreach (var kernel in Enum.GetValues<Crc32CKernel>())
        {
            if (!Crc32C.IsSupported(kernel))
            {
                Assert.Throws<NotSupportedException>(() => Crc32C.Append(kernel, 0, [1, 2, 3]));
            }
        }
    }

    /// <summary>x^n mod P in the ordinary (unreflected) bit order, independent of the product code.</summary>
    private static uint XPowModPUnreflected(int n)
    {
        ulong v = 1;
        for (var i = 0; i < n; i++)
        {
            v <<= 1;
            if ((v & 0x1_0000_0000) != 0)
            {
                v ^= 0x1_1EDC_6F41; // Castagnoli polynomial, normal form
            }
        }

        return (uint)v;
    }

    private static uint Reflect(uint v)
    {
        uint r = 0;
        for (var i = 0; i < 32; i++)
        {
            r |= ((v >> i) & 1) << (31 - i);
        }

        return r;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(95)]
    [InlineData(159)]
    [InlineData(543)]
    [InlineData(2079)]
    [InlineData(8192)]
    public void XPowModP_MatchesUnreflectedLongDivision(int n)
    {
        Assert.Equal(Reflect(XPowModPUnreflected(n)), Crc32C.XPowModP(n));
    }

    [Theory]
    [InlineData(128)]
    [InlineData(256)]
    [InlineData(512)]
    [InlineData(1024)]
    [InlineData(2048)]
    public void FoldKeys_AreXPowersForTheFoldDistance(int bits)
    {
        Assert.Equal(Reflect(XPowModPUnreflected(bits + 31)), (uint)Crc32C.FoldKeyL(bits));
        Assert.Equal(Reflect(XPowModPUnreflected(bits - 33)), (uint)Crc32C.FoldKeyH(bits));
    }

    [Fact]
    public void MultiplyModP_XPowers_AddExponents()
    {
        Assert.Equal(Crc32C.XPowModP(1000 + 777), Crc32C.MultiplyModP(Crc32C.XPowModP(1000), Crc32C.XPowModP(777)));
    }
}
