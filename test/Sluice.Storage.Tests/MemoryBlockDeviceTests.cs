namespace Sluice.Storage.Tests;

public class MemoryBlockDeviceTests
{
    private const int Chunk = 64 * 1024;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task ReadAsync_AfterRandomWrites_ReturnsWrittenData(int seed)
    {
        await using var device = new MemoryBlockDevice(4L << 20, readOnly: false, Chunk);
        await DeviceAssertions.ReadAfterWriteMatchesShadowAsync(device, seed);
    }

    [Fact]
    public async Task ReadAsync_UnwrittenRange_ReturnsZeros()
    {
        await using var device = new MemoryBlockDevice(4L << 20, readOnly: false, Chunk);
        await DeviceAssertions.UnwrittenReadsZerosAsync(device);
    }

    [Fact]
    public async Task Constructor_HugeCapacity_AllocatesOnlyWrittenChunks()
    {
        await using var device = new MemoryBlockDevice(64L << 30);
        Assert.Equal(0, device.AllocatedBytes);

        await device.WriteAsync((32L << 30) - 10, new byte[20].Select(_ => (byte)7).ToArray(), forceUnitAccess: true);

        Assert.Equal(2L * MemoryBlockDevice.DefaultChunkSize, device.AllocatedBytes); // straddles two chunks
        var back = new byte[20];
        await device.ReadAsync((32L << 30) - 10, back);
        Assert.All(back, b => Assert.Equal(7, b));
    }

    [Fact]
    public async Task WriteAsync_ZerosToUnallocatedChunk_AllocatesNothing()
    {
        await using var device = new MemoryBlockDevice(1L << 20, readOnly: false, Chunk);
        await device.WriteAsync(0, new byte[3 * Chunk], forceUnitAccess: false);
        Assert.Equal(0, device.AllocatedBytes);
    }

    [Fact]
    public async Task UnmapAsync_WholeChunks_FreesThem()
    {
        await using var device = new MemoryBlockDevice(1L << 20, readOnly: false, Chunk);
        await DeviceAssertions.UnmapReadsZerosAsync(device, 2 * Chunk, 3 * Chunk);
        Assert.Equal((1L << 20) - 3 * Chunk, device.AllocatedBytes);
    }

    [Fact]
    public async Task UnmapAsync_PartialChunks_ZeroesAndKeepsThem()
    {
        await using var device = new MemoryBlockDevice(1L << 20, readOnly: false, Chunk);
        // Starts and ends inside chunks: only the one chunk wholly inside is freed.
        await DeviceAssertions.UnmapReadsZerosAsync(device, Chunk + 100, 2 * Chunk);
        Assert.Equal((1L << 20) - Chunk, device.AllocatedBytes);
    }

    [Fact]
    public async Task UnmapAsync_LastPartialChunk_FreesIt()
    {
        long length = 3 * Chunk + 512;
        await using var device = new MemoryBlockDevice(length, readOnly: false, Chunk);
        await DeviceAssertions.UnmapReadsZerosAsync(device, 3 * Chunk, 512);
        Assert.Equal(3L * Chunk, device.AllocatedBytes);
    }

    [Fact]
    public async Task WriteAsync_ConcurrentDisjointWriters_KeepTheirData()
    {
        await using var device = new MemoryBlockDevice(8L << 20, readOnly: false, Chunk);
        await DeviceAssertions.ConcurrentDisjointWritersKeepTheirDataAsync(device);
    }

    [Fact]
    public async Task Calls_OutOfRange_Throw()
    {
        await using var device = new MemoryBlockDevice(1L << 20, readOnly: false, Chunk);
        await DeviceAssertions.OutOfRangeThrowsAsync(device);
    }

    [Fact]
    public async Task WriteAsync_ReadOnlyDevice_Throws()
    {
        await using var device = new MemoryBlockDevice(1L << 20, readOnly: true);
        Assert.True(device.IsReadOnly);
        Assert.True(device.SupportsUnmap); // still thin: the LU reports LBPME and rejects UNMAP as write-protected
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await device.WriteAsync(0, new byte[512], false));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await device.UnmapAsync(0, 512));
        await device.ReadAsync(0, new byte[512]);
    }

    [Fact]
    public void Calls_Always_CompleteSynchronously()
    {
        var device = new MemoryBlockDevice(1L << 20, readOnly: false, Chunk);
        var buffer = new byte[8192];
        Assert.True(device.WriteAsync(100, buffer.AsMemory(), forceUnitAccess: true).IsCompletedSuccessfully);
        Assert.True(device.ReadAsync(100, buffer).IsCompletedSuccessfully);
        Assert.True(device.FlushAsync().IsCompletedSuccessfully);
        Assert.True(device.UnmapAsync(0, Chunk).IsCompletedSuccessfully);
        Assert.True(device.DisposeAsync().IsCompletedSuccessfully);
    }

    [Fact]
    public void ReadWrite_SteadyState_AllocatesNothing()
    {
        var device = new MemoryBlockDevice(1L << 20, readOnly: false, Chunk);
        var buffer = new byte[8192];
        buffer[0] = 1;
        bool synchronous = device.WriteAsync(0, buffer, false).IsCompletedSuccessfully;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            // Completed synchronously, so there is nothing to await and nothing to observe.
            synchronous &= device.WriteAsync(i * 64L, buffer, forceUnitAccess: true).IsCompletedSuccessfully;
            synchronous &= device.ReadAsync(i * 64L, buffer).IsCompletedSuccessfully;
        }
        Assert.True(synchronous);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task GetAllocationAsync_AfterWrites_ReportsChunkExtents()
    {
        await using var device = new MemoryBlockDevice(1L << 20, readOnly: false, Chunk);
        await device.WriteAsync(Chunk + 10, new byte[] { 1 }, false);
        await device.WriteAsync(2 * Chunk + 10, new byte[] { 1 }, false);
        await device.WriteAsync(5 * Chunk, new byte[] { 1 }, false);

        var extents = await device.GetAllocationAsync(100, (1L << 20) - 200);

        DeviceAssertions.AssertExtentsCover(extents, 100, (1L << 20) - 200);
        Assert.Equal(
            new (long, long, bool)[]
            {
                (100, Chunk - 100, false),
                (Chunk, 2 * Chunk, true),
                (3 * Chunk, 2 * Chunk, false),
                (5 * Chunk, Chunk, true),
                (6 * Chunk, (1L << 20) - 100 - 6 * Chunk, false),
            },
            extents);
    }

    [Fact]
    public async Task Calls_AfterDispose_ThrowObjectDisposed()
    {
        var device = new MemoryBlockDevice(1L << 20);
        await device.WriteAsync(0, new byte[] { 1 }, false);
        await device.DisposeAsync();
        Assert.Equal(0, device.AllocatedBytes);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await device.ReadAsync(0, new byte[1]));
    }
}
