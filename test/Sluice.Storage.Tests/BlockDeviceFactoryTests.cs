namespace Sluice.Storage.Tests;

public sealed class BlockDeviceFactoryTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Open_MemorySpec_ReturnsMemoryDevice()
    {
        await using var device = BlockDeviceFactory.Open(BackendSpec.Parse("memory:64GiB"), _temp.Path, readOnly: false, writeThrough: false);
        var memory = Assert.IsType<MemoryBlockDevice>(device);
        Assert.Equal(64L << 30, memory.Length);
        Assert.Equal(0, memory.AllocatedBytes);
        Assert.IsAssignableFrom<IAllocationMap>(device);
    }

    [Fact]
    public async Task Open_RelativeFileSpec_CreatesUnderDataDirectory()
    {
        await using var device = BlockDeviceFactory.Open(BackendSpec.Parse("file:luns/t1/lun0.img:16MiB"), _temp.Path, readOnly: false, writeThrough: true);
        var file = Assert.IsType<FileBlockDevice>(device);
        string expected = Path.Combine(_temp.Path, "luns", "t1", "lun0.img");
        Assert.Equal(expected, file.Path);
        Assert.True(File.Exists(expected));
        Assert.Equal(16L << 20, device.Length);
        Assert.True(file.WriteThrough);
    }

    [Fact]
    public async Task Open_AbsoluteFileSpec_IgnoresDataDirectory()
    {
        string path = _temp.File("abs.img");
        await using var device = BlockDeviceFactory.Open(new FileBackendSpec(path, 1L << 20), "/nonexistent-data-dir", readOnly: false, writeThrough: false);
        Assert.Equal(path, Assert.IsType<FileBlockDevice>(device).Path);
    }

    [Fact]
    public void Open_FileSpecWithoutSizeMissing_ThrowsStorageException()
    {
        var e = Assert.Throws<StorageException>(() =>
            BlockDeviceFactory.Open(BackendSpec.Parse("file:nothing.img"), _temp.Path, readOnly: false, writeThrough: false));
        Assert.Contains(Path.Combine(_temp.Path, "nothing.img"), e.Message);
    }

    [Fact]
    public void Open_BlockSpecMissingDevice_ThrowsStorageException()
    {
        var e = Assert.Throws<StorageException>(() =>
            BlockDeviceFactory.Open(BackendSpec.Parse("block:/dev/sluice-no-such-device"), _temp.Path, readOnly: false, writeThrough: false));
        Assert.Equal("block device '/dev/sluice-no-such-device' does not exist", e.Message);
    }

    [Fact]
    public void Open_FileUnderAFile_ThrowsStorageException()
    {
        string blocker = _temp.File("blocker");
        File.WriteAllBytes(blocker, [1]);
        var e = Assert.Throws<StorageException>(() =>
            BlockDeviceFactory.Open(new FileBackendSpec("blocker/lun.img", 1L << 20), _temp.Path, readOnly: false, writeThrough: false));
        Assert.Contains(blocker, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task Open_ReadOnlyMemory_RejectsWrites()
    {
        await using var device = BlockDeviceFactory.Open(new MemoryBackendSpec(1L << 20), _temp.Path, readOnly: true, writeThrough: false);
        Assert.True(device.IsReadOnly);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await device.WriteAsync(0, new byte[1], false));
    }
}
