namespace Sluice.Storage.Tests;

/// <summary>Behaviour every <see cref="IBlockDevice"/> must show, run against each back end.</summary>
internal static class DeviceAssertions
{
    /// <summary>Random writes checked against a shadow copy, then the whole device read back.</summary>
    public static async Task ReadAfterWriteMatchesShadowAsync(IBlockDevice device, int seed, int operations = 200)
    {
        var random = new Random(seed);
        var shadow = new byte[device.Length];
        await device.ReadAsync(0, shadow); // a real block device starts with whatever it held
        for (int i = 0; i < operations; i++)
        {
            int length = random.Next(1, 96 * 1024);
            long offset = random.NextInt64(0, device.Length - length + 1);
            var data = new byte[length];
            random.NextBytes(data);
            await device.WriteAsync(offset, data, forceUnitAccess: i % 17 == 0);
            data.CopyTo(shadow, offset);

            var back = new byte[length];
            await device.ReadAsync(offset, back);
            Assert.Equal(data, back);
        }

        var all = new byte[device.Length];
        await device.ReadAsync(0, all);
        Assert.True(shadow.AsSpan().SequenceEqual(all), "device content differs from the shadow copy");
    }

    public static async Task UnwrittenReadsZerosAsync(IBlockDevice device)
    {
        await device.WriteAsync(4096, new byte[] { 1, 2, 3 }, forceUnitAccess: false);
        var buffer = new byte[64 * 1024];
        buffer.AsSpan().Fill(0xEE);
        await device.ReadAsync(device.Length - buffer.Length, buffer);
        Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0) < 0, "unwritten range is not zero");
    }

    /// <summary>Eight writers, each on its own interleaved stripes, some sharing allocation units.</summary>
    public static async Task ConcurrentDisjointWritersKeepTheirDataAsync(IBlockDevice device)
    {
        const int writers = 8;
        const int stripe = 4096 + 512; // not a divisor of any chunk size: writers share chunks
        long stripes = device.Length / stripe;
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var data = new byte[stripe];
            for (long s = w; s < stripes; s += writers)
            {
                data.AsSpan().Fill((byte)(w + 1));
                data[0] = (byte)s;
                await device.WriteAsync(s * stripe, data, forceUnitAccess: false);
            }
        })));

        var back = new byte[stripe];
        for (long s = 0; s < stripes; s++)
        {
            await device.ReadAsync(s * stripe, back);
            byte w = (byte)(s % writers + 1);
            Assert.Equal((byte)s, back[0]);
            Assert.True(back.AsSpan(1).IndexOfAnyExcept(w) < 0, $"stripe {s} was overwritten");
        }
    }

    public static async Task UnmapReadsZerosAsync(IBlockDevice device, long offset, long length)
    {
        var ones = new byte[device.Length];
        ones.AsSpan().Fill(0xA5);
        await device.WriteAsync(0, ones, forceUnitAccess: false);

        await device.UnmapAsync(offset, length);

        var back = new byte[device.Length];
        await device.ReadAsync(0, back);
        Assert.True(back.AsSpan(0, (int)offset).IndexOfAnyExcept((byte)0xA5) < 0, "data before the unmapped range changed");
        Assert.True(back.AsSpan((int)offset, (int)length).IndexOfAnyExcept((byte)0) < 0, "unmapped range is not zero");
        Assert.True(back.AsSpan((int)(offset + length)).IndexOfAnyExcept((byte)0xA5) < 0, "data after the unmapped range changed");
    }

    public static async Task OutOfRangeThrowsAsync(IBlockDevice device)
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await device.ReadAsync(device.Length - 1, new byte[2]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await device.ReadAsync(-1, new byte[1]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await device.WriteAsync(device.Length, new byte[1], false));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await device.UnmapAsync(0, device.Length + 1));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await device.UnmapAsync(long.MaxValue, 1));
    }

    public static void AssertExtentsCover(IReadOnlyList<(long Offset, long Length, bool Mapped)> extents, long offset, long length)
    {
        long position = offset;
        bool? previous = null;
        foreach (var (o, l, m) in extents)
        {
            Assert.Equal(position, o);
            Assert.True(l > 0);
            Assert.NotEqual(previous, m);
            previous = m;
            position += l;
        }
        Assert.Equal(offset + length, position);
    }
}
