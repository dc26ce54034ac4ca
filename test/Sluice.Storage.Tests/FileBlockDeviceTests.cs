namespace Sluice.Storage.Tests;

public sealed class FileBlockDeviceTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, true)]
    public async Task ReadAsync_AfterRandomWrites_ReturnsWrittenData(int seed, bool writeThrough)
    {
        await using var device = FileBlockDevice.OpenFile(_temp.File("rw.img"), 4L << 20, writeThrough: writeThrough);
        await DeviceAssertions.ReadAfterWriteMatchesShadowAsync(device, seed, operations: 100);
    }

    [Fact]
    public async Task ReadAsync_UnwrittenRange_ReturnsZeros()
    {
        await using var device = FileBlockDevice.OpenFile(_temp.File("zeros.img"), 4L << 20);
        await DeviceAssertions.UnwrittenReadsZerosAsync(device);
    }

    [Fact]
    public async Task OpenFile_MissingWithSize_CreatesSparseFileAndDirectories()
    {
        string path = Path.Combine(_temp.Path, "a", "b", "new.img");
        await using var device = FileBlockDevice.OpenFile(path, 1L << 30);

        Assert.Equal(1L << 30, device.Length);
        Assert.Equal(1L << 30, new FileInfo(path).Length);
        Assert.Equal(0, TempDirectory.AllocatedBytes(path));
        Assert.True(device.SupportsUnmap);
        Assert.False(device.IsBlockDevice);
        Assert.Equal(path, device.Path);
    }

    [Fact]
    public async Task UnmapAsync_WrittenRange_FreesBlocksAndReadsZeros()
    {
        string path = _temp.File("unmap.img");
        await using var device = FileBlockDevice.OpenFile(path, 8L << 20);
        var data = new byte[4L << 20];
        data.AsSpan().Fill(0x5A);
        await device.WriteAsync(1L << 20, data, forceUnitAccess: true);
        long before = TempDirectory.AllocatedBytes(path);
        Assert.True(before >= 4L << 20, $"only {before} bytes allocated after writing 4 MiB");

        await device.UnmapAsync(2L << 20, 2L << 20);

        long after = TempDirectory.AllocatedBytes(path);
        Assert.True(before - after >= 2L << 20, $"unmap freed {before - after} bytes, expected 2 MiB");
        var back = new byte[8L << 20];
        await device.ReadAsync(0, back);
        Assert.True(back.AsSpan(0, 1 << 20).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(back.AsSpan(1 << 20, 1 << 20).IndexOfAnyExcept((byte)0x5A) < 0);
        Assert.True(back.AsSpan(2 << 20, 2 << 20).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(back.AsSpan(4 << 20, 1 << 20).IndexOfAnyExcept((byte)0x5A) < 0);
        Assert.True(back.AsSpan(5 << 20).IndexOfAnyExcept((byte)0) < 0);
    }

    [Theory]
    [InlineData(100, 5000)]
    [InlineData(4096, 4096)]
    [InlineData(1, 1)]
    [InlineData(0, 65536)]
    public async Task UnmapAsync_UnalignedRange_ZeroesExactlyThatRange(long offset, long length)
    {
        await using var device = FileBlockDevice.OpenFile(_temp.File("partial.img"), 64 * 1024);
        await DeviceAssertions.UnmapReadsZerosAsync(device, offset, length);
    }

    [Fact]
    public async Task UnmapAsync_PunchHoleUnsupported_WritesZerosInstead()
    {
        string path = _temp.File("fallback.img");
        await using var device = FileBlockDevice.OpenFile(path, 2L << 20);
        device.PunchHoleUnsupported = true;
        Assert.False(device.SupportsUnmap);

        await DeviceAssertions.UnmapReadsZerosAsync(device, 4096, 1L << 20);

        Assert.True(TempDirectory.AllocatedBytes(path) >= 2L << 20, "fallback must not deallocate");
    }

    [Fact]
    public async Task GetAllocationAsync_AfterWritesAndUnmap_ReportsDataAndHoles()
    {
        const long M = 1L << 20;
        await using var device = FileBlockDevice.OpenFile(_temp.File("map.img"), 16 * M);
        var data = new byte[M];
        data.AsSpan().Fill(1);
        await device.WriteAsync(2 * M, data, false);
        await device.WriteAsync(3 * M, data, false);
        await device.WriteAsync(8 * M, data, false);
        await device.WriteAsync(9 * M, data, false);
        await device.UnmapAsync(9 * M, M);
        await device.FlushAsync();

        var extents = await device.GetAllocationAsync(0, 16 * M);

        DeviceAssertions.AssertExtentsCover(extents, 0, 16 * M);
        Assert.Equal(
            new (long, long, bool)[] { (0, 2 * M, false), (2 * M, 2 * M, true), (4 * M, 4 * M, false), (8 * M, M, true), (9 * M, 7 * M, false) },
            extents);

        var inner = await device.GetAllocationAsync(3 * M, 2 * M);
        Assert.Equal(new (long, long, bool)[] { (3 * M, M, true), (4 * M, M, false) }, inner);
    }

    [Fact]
    public async Task OpenFile_ExistingFileReopened_KeepsDataAndSize()
    {
        string path = _temp.File("reuse.img");
        await using (var first = FileBlockDevice.OpenFile(path, 2L << 20))
            await first.WriteAsync(12345, "hello"u8.ToArray(), forceUnitAccess: true);

        await using var second = FileBlockDevice.OpenFile(path);
        Assert.Equal(2L << 20, second.Length);
        var back = new byte[5];
        await second.ReadAsync(12345, back);
        Assert.Equal("hello"u8.ToArray(), back);
    }

    [Fact]
    public async Task OpenFile_SameSizeGiven_ReusesFile()
    {
        string path = _temp.File("same.img");
        await using (var first = FileBlockDevice.OpenFile(path, 1L << 20))
            await first.WriteAsync(0, new byte[] { 9 }, false);

        await using var second = FileBlockDevice.OpenFile(path, 1L << 20);
        var back = new byte[1];
        await second.ReadAsync(0, back);
        Assert.Equal(9, back[0]);
    }

    [Fact]
    public async Task OpenFile_LargerSizeGiven_GrowsAndKeepsData()
    {
        string path = _temp.File("grow.img");
        await using (var first = FileBlockDevice.OpenFile(path, 1L << 20))
            await first.WriteAsync((1L << 20) - 1, new byte[] { 3 }, false);

        await using var second = FileBlockDevice.OpenFile(path, 4L << 20);
        Assert.Equal(4L << 20, second.Length);
        Assert.Equal(4L << 20, new FileInfo(path).Length);
        var back = new byte[2];
        await second.ReadAsync((1L << 20) - 1, back);
        Assert.Equal(new byte[] { 3, 0 }, back);
    }

    [Fact]
    public async Task OpenFile_SmallerSizeGiven_ThrowsAndKeepsFile()
    {
        string path = _temp.File("shrink.img");
        await using (FileBlockDevice.OpenFile(path, 4L << 20))
        {
        }

        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenFile(path, 1L << 20));
        Assert.Contains(path, e.Message);
        Assert.Contains("refusing to shrink", e.Message);
        Assert.Equal(4L << 20, new FileInfo(path).Length);
    }

    [Fact]
    public void OpenFile_MissingWithoutSize_ThrowsNamingPath()
    {
        string path = _temp.File("missing.img");
        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenFile(path));
        Assert.Equal($"'{path}' does not exist and no size was given to create it (use file:PATH:SIZE)", e.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void OpenFile_EmptyFileWithoutSize_Throws()
    {
        string path = _temp.File("empty.img");
        File.WriteAllBytes(path, []);
        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenFile(path));
        Assert.Contains("is empty", e.Message);
    }

    [Fact]
    public void OpenFile_Directory_Throws()
    {
        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenFile(_temp.Path, 1L << 20));
        Assert.Contains("is a directory", e.Message);
    }

    [Fact]
    public async Task OpenFile_AlreadyOpenForWriting_ThrowsInUse()
    {
        string path = _temp.File("locked.img");
        await using var first = FileBlockDevice.OpenFile(path, 1L << 20);
        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenFile(path, 1L << 20));
        Assert.Equal($"'{path}' is in use by another back end or process", e.Message);
    }

    [Fact]
    public void OpenFile_ReadOnlyMissing_ThrowsWithoutCreating()
    {
        string path = _temp.File("ro-missing.img");
        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenFile(path, 1L << 20, readOnly: true));
        Assert.Contains("does not exist", e.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task WriteAsync_ReadOnlyDevice_Throws()
    {
        string path = _temp.File("ro.img");
        await using (var rw = FileBlockDevice.OpenFile(path, 1L << 20))
            await rw.WriteAsync(0, new byte[] { 42 }, false);

        await using var device = FileBlockDevice.OpenFile(path, readOnly: true);
        Assert.True(device.IsReadOnly);
        Assert.False(device.SupportsUnmap);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await device.WriteAsync(0, new byte[512], false));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await device.UnmapAsync(0, 512));
        var back = new byte[1];
        await device.ReadAsync(0, back);
        Assert.Equal(42, back[0]);
    }

    [Fact]
    public async Task WriteAsync_Fua_SyncsBeforeCompleting()
    {
        await using var device = FileBlockDevice.OpenFile(_temp.File("fua.img"), 1L << 20);
        await device.WriteAsync(0, new byte[4096], forceUnitAccess: false);
        Assert.Equal(0, device.FlushCount);

        await device.WriteAsync(0, new byte[4096], forceUnitAccess: true);
        Assert.Equal(1, device.FlushCount);

        await device.FlushAsync();
        Assert.Equal(2, device.FlushCount);
    }

    [Fact]
    public async Task WriteAsync_FuaOnWriteThroughDevice_NeedsNoExtraSync()
    {
        await using var device = FileBlockDevice.OpenFile(_temp.File("wt.img"), 1L << 20, writeThrough: true);
        Assert.True(device.WriteThrough);
        await device.WriteAsync(0, new byte[4096], forceUnitAccess: true);
        Assert.Equal(0, device.FlushCount);
    }

    [Fact]
    public async Task WriteAsync_ConcurrentDisjointWriters_KeepTheirData()
    {
        await using var device = FileBlockDevice.OpenFile(_temp.File("concurrent.img"), 4L << 20);
        await DeviceAssertions.ConcurrentDisjointWritersKeepTheirDataAsync(device);
    }

    [Fact]
    public async Task Calls_OutOfRange_Throw()
    {
        await using var device = FileBlockDevice.OpenFile(_temp.File("range.img"), 1L << 20);
        await DeviceAssertions.OutOfRangeThrowsAsync(device);
    }

    [Fact]
    public void OpenBlockDevice_RegularFile_ThrowsNotABlockDevice()
    {
        string path = _temp.File("plain.img");
        File.WriteAllBytes(path, new byte[4096]);
        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenBlockDevice(path));
        Assert.Equal($"'{path}' is not a block device (use file:{path} for a regular file)", e.Message);
    }

    [Fact]
    public void OpenBlockDevice_Missing_ThrowsNamingPath()
    {
        string path = _temp.File("nodev");
        var e = Assert.Throws<StorageException>(() => FileBlockDevice.OpenBlockDevice(path));
        Assert.Equal($"block device '{path}' does not exist", e.Message);
    }
}
