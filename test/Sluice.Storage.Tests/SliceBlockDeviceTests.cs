namespace Sluice.Storage.Tests;

public class SliceBlockDeviceTests
{
    [Fact]
    public async Task WriteAsync_InOneSlice_LeavesNeighboursUntouched()
    {
        await using var inner = new MemoryBlockDevice(3 << 20);
        var a = new SliceBlockDevice(inner, 0, 1 << 20);
        var b = new SliceBlockDevice(inner, 1 << 20, 1 << 20);
        var c = new SliceBlockDevice(inner, 2 << 20, 1 << 20);

        await b.WriteAsync(0, Enumerable.Repeat((byte)0x5A, 1 << 20).ToArray(), forceUnitAccess: false);

        var back = new byte[1 << 20];
        await a.ReadAsync(0, back);
        Assert.All(back, x => Assert.Equal(0, x));
        await c.ReadAsync(0, back);
        Assert.All(back, x => Assert.Equal(0, x));
        await inner.ReadAsync(1 << 20, back);
        Assert.All(back, x => Assert.Equal(0x5A, x));
    }

    [Fact]
    public async Task ReadAfterWrite_MatchesShadow()
    {
        await using var inner = new MemoryBlockDevice(4 << 20);
        await DeviceAssertions.ReadAfterWriteMatchesShadowAsync(new SliceBlockDevice(inner, 1 << 20, 2 << 20), seed: 7);
    }

    [Theory]
    [InlineData(-1, 1)]
    [InlineData(0, (1 << 20) + 1)]
    [InlineData(1 << 20, 1)]
    public async Task OutsideWindow_Throws(long offset, int length)
    {
        await using var inner = new MemoryBlockDevice(2 << 20);
        var slice = new SliceBlockDevice(inner, 512, 1 << 20);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await slice.ReadAsync(offset, new byte[length]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await slice.WriteAsync(offset, new byte[length], false));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await slice.UnmapAsync(offset, length));
    }

    [Fact]
    public async Task Constructor_WindowBeyondDevice_Throws()
    {
        await using var inner = new MemoryBlockDevice(1 << 20);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SliceBlockDevice(inner, 512, 1 << 20));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SliceBlockDevice(inner, 0, 0));
    }

    [Fact]
    public async Task UnmapAndAllocation_PassThroughShifted()
    {
        await using var inner = new MemoryBlockDevice(4 << 20, readOnly: false, 64 * 1024);
        var slice = new SliceBlockDevice(inner, 1 << 20, 1 << 20);
        await slice.WriteAsync(0, Enumerable.Repeat((byte)1, 64 * 1024).ToArray(), forceUnitAccess: false);
        Assert.True(slice.SupportsUnmap);

        var map = await slice.GetAllocationAsync(0, 128 * 1024);
        Assert.Equal([(0L, 64L * 1024, true), (64L * 1024, 64L * 1024, false)], map);

        await slice.UnmapAsync(0, 64 * 1024);
        Assert.Equal(0, inner.AllocatedBytes);
    }

    [Fact]
    public async Task ReadOnlySlice_RefusesWrites_AndLeavesInnerOpen()
    {
        await using var inner = new MemoryBlockDevice(1 << 20);
        var slice = new SliceBlockDevice(inner, 0, 1 << 20, readOnly: true);
        Assert.True(slice.IsReadOnly);
        Assert.False(slice.SupportsUnmap);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await slice.WriteAsync(0, new byte[512], false));

        await slice.DisposeAsync();
        await inner.WriteAsync(0, new byte[512], false); // still open
    }

    [Fact]
    public void BackendSpec_Model_Parses()
    {
        var spec = Assert.IsType<ModelBackendSpec>(BackendSpec.Parse("model:64MiB:iops=2000"));
        Assert.Equal(64L << 20, spec.Size);
        Assert.Equal(2000, spec.Iops);
    }
}
