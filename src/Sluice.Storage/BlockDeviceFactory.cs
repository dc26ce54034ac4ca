namespace Sluice.Storage;

/// <summary>Opens the back end a <see cref="BackendSpec"/> names.</summary>
public static class BlockDeviceFactory
{
    /// <summary>
    /// Opens <paramref name="spec"/>. A relative file path is taken under
    /// <paramref name="dataDirectory"/>, and a new file's directories are created.
    /// <paramref name="writeThrough"/> makes every write synchronous (ignored for memory and model).
    /// </summary>
    /// <exception cref="StorageException">The back end can't be opened; the message says which and why.</exception>
    public static IBlockDevice Open(BackendSpec spec, string dataDirectory, bool readOnly, bool writeThrough)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(dataDirectory);
        return spec switch
        {
            MemoryBackendSpec memory => new MemoryBlockDevice(memory.Size, readOnly),
            FileBackendSpec file => FileBlockDevice.OpenFile(ResolvePath(file.Path, dataDirectory), file.Size, readOnly, writeThrough),
            BlockBackendSpec block => FileBlockDevice.OpenBlockDevice(block.Path, readOnly, writeThrough),
            ModelBackendSpec model => new ModelBlockDevice(model, readOnly),
            _ => throw new ArgumentException($"unsupported back end '{spec}'", nameof(spec)),
        };
    }

    /// <summary>Where a <c>file:</c> path lives: as is when absolute, else under <paramref name="dataDirectory"/>.</summary>
    public static string ResolvePath(string path, string dataDirectory)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(dataDirectory);
        try
        {
            return Path.GetFullPath(Path.IsPathRooted(path) ? path : Path.Combine(dataDirectory, path));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new StorageException($"invalid path '{path}': {e.Message}", e);
        }
    }
}
