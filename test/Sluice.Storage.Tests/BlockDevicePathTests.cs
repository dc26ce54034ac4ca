namespace Sluice.Storage.Tests;

/// <summary>
/// Runs against a real block device only when <c>SLUICE_TEST_BLOCK_DEVICE</c> names one (for
/// example a loop device: <c>losetup -f --show scratch.img</c>). Its content is destroyed.
/// Without the variable these tests pass without doing anything.
/// </summary>
public class BlockDevicePathTests
{
    private static readonly string? s_device = Environment.GetEnvironmentVariable("SLUICE_TEST_BLOCK_DEVICE");

    [Fact]
    public async Task OpenBlockDevice_ScratchDevice_ReportsSizeAndReadsBackWrites()
    {
        if (s_device is null)
            return;
        await using var device = FileBlockDevice.OpenBlockDevice(s_device);
        Assert.True(device.IsBlockDevice);
        Assert.True(device.Length > 0);
        Assert.True(device.Length <= 256L << 20, "use a small scratch device");
        await DeviceAssertions.ReadAfterWriteMatchesShadowAsync(device, seed: 7, operations: 50);
        long flushes = device.FlushCount;
        await device.FlushAsync();
        Assert.Equal(flushes + 1, device.FlushCount);
    }

    [Theory]
    [InlineData(1L << 20, 2L << 20)]
    [InlineData(100, 10_000)]
    [InlineData(512, 512)]
    [InlineData(3, 7)]
    public async Task UnmapAsync_ScratchDevice_ReadsZeros(long offset, long length)
    {
        if (s_device is null)
            return;
        await using var device = FileBlockDevice.OpenBlockDevice(s_device);
        await DeviceAssertions.UnmapReadsZerosAsync(device, offset, length);
        var extents = await device.GetAllocationAsync(0, device.Length);
        Assert.Equal(new (long, long, bool)[] { (0, device.Length, true) }, extents);
    }

    [Fact]
    public async Task OpenBlockDevice_ReadOnly_RejectsWrites()
    {
        if (s_device is null)
            return;
        await using var device = FileBlockDevice.OpenBlockDevice(s_device, readOnly: true);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await device.WriteAsync(0, new byte[512], false));
    }

    [Fact]
    public void OpenFile_BlockDeviceNode_ThrowsUseBlock()
    {
        if (s_device is null)
            return;
        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenFile(s_device));
        Assert.Equal($"'{s_device}' is a block device; use block:{s_device}", e.Message);
    }
}
