using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Sluice.Storage;

/// <summary>
/// A back end on a regular file or a block device node, with positional I/O
/// (<see cref="RandomAccess"/>) so concurrent calls share no file position.
/// </summary>
/// <remarks>
/// Durability: opened write-through, every write is synchronous (<c>O_SYNC</c>). Otherwise a FUA
/// write is followed by <c>fdatasync</c> before it completes, and <see cref="FlushAsync"/> is
/// <c>fdatasync</c>. Unmap punches a hole (<c>fallocate(PUNCH_HOLE|KEEP_SIZE)</c>, which on a
/// block device is a discard that is guaranteed to read back zeros); where that is not supported
/// it zeroes the range (<c>BLKZEROOUT</c> on a block device, else by writing zeros).
/// </remarks>
public sealed class FileBlockDevice : IBlockDevice, IAllocationMap
{
    private const int ZeroBufferSize = 256 * 1024;
    private static readonly ReadOnlyMemory<byte> s_zeros = new byte[ZeroBufferSize];

    private readonly SafeFileHandle _handle;
    private readonly int _sectorSize;
    private volatile bool _punchHoleUnsupported;
    private volatile bool _zeroOutUnsupported;
    private long _flushCount;

    private FileBlockDevice(string path, SafeFileHandle handle, long length, bool readOnly, bool writeThrough, bool isBlockDevice, int sectorSize)
    {
        Path = path;
        _handle = handle;
        Length = length;
        IsReadOnly = readOnly;
        WriteThrough = writeThrough && !readOnly;
        IsBlockDevice = isBlockDevice;
        _sectorSize = sectorSize;
    }

    /// <summary>Full path of the file or device node.</summary>
    public string Path { get; }

    /// <summary>True for a block device node, false for a regular file.</summary>
    public bool IsBlockDevice { get; }

    /// <summary>True when every write reaches stable storage before it completes.</summary>
    public bool WriteThrough { get; }

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public bool IsReadOnly { get; }

    /// <inheritdoc/>
    /// <remarks>Becomes false if the file system or device turns out not to deallocate.</remarks>
    public bool SupportsUnmap => OperatingSystem.IsLinux() && !IsReadOnly && !_punchHoleUnsupported;

    /// <summary>Set when the file system can't punch holes; unmap then writes zeros. Tests set it to force the fallback.</summary>
    internal bool PunchHoleUnsupported
    {
        get => _punchHoleUnsupported;
        set => _punchHoleUnsupported = value;
    }

    /// <summary>How many times data was synced to stable storage (FUA writes and flushes).</summary>
    internal long FlushCount => Interlocked.Read(ref _flushCount);

    /// <summary>
    /// Opens a regular file. With <paramref name="size"/>, a missing file is created sparse (and
    /// its directory with it) and a smaller file is grown; a larger file is an error, never shrunk.
    /// Without <paramref name="size"/>, the file must exist and its size is the capacity.
    /// </summary>
    /// <exception cref="StorageException">The file can't be opened, created or sized as asked.</exception>
    public static FileBlockDevice OpenFile(string path, long? size = null, bool readOnly = false, bool writeThrough = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (size is { } requested)
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(requested, nameof(size));
        path = FullPath(path);
        if (Directory.Exists(path))
            throw new StorageException($"'{path}' is a directory, not a file");

        bool mayCreate = size is not null && !readOnly;
        if (!mayCreate && !File.Exists(path))
        {
            throw new StorageException(readOnly
                ? $"'{path}' does not exist (a read-only back end is not created)"
                : $"'{path}' does not exist and no size was given to create it (use file:PATH:SIZE)");
        }
        if (mayCreate && System.IO.Path.GetDirectoryName(path) is { Length: > 0 } directory)
        {
            try
            {
                Directory.CreateDirectory(directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new StorageException($"cannot create directory '{directory}' for '{path}': {Reason(e)}", e);
            }
        }

        var handle = OpenHandle(path, mayCreate ? FileMode.OpenOrCreate : FileMode.Open, readOnly, writeThrough);
        try
        {
            if (OperatingSystem.IsLinux() && TryGetBlockDeviceSize(handle, out _))
                throw new StorageException($"'{path}' is a block device; use block:{path}");

            long current = RandomAccess.GetLength(handle);
            long length = current;
            if (size is not { } wanted)
            {
                if (current == 0)
                    throw new StorageException($"'{path}' is empty and no size was given (use file:PATH:SIZE)");
            }
            else if (current > wanted)
            {
                throw new StorageException(
                    $"'{path}' is {ByteSize.Format(current)}, larger than the requested {ByteSize.Format(wanted)}; refusing to shrink it (give no size to use it as is)");
            }
            else if (current < wanted)
            {
                if (readOnly)
                    throw new StorageException($"'{path}' is {ByteSize.Format(current)}, smaller than the requested {ByteSize.Format(wanted)}, and read-only");
                // ftruncate: the new range is a hole, so a fresh file takes no space.
                RandomAccess.SetLength(handle, wanted);
                RandomAccess.FlushToDisk(handle);
                length = wanted;
            }

            var device = new FileBlockDevice(path, handle, length, readOnly, writeThrough, isBlockDevice: false, sectorSize: 1);
            if (!readOnly)
                device.ProbePunchHole();
            return device;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not StorageException)
        {
            handle.Dispose();
            throw new StorageException($"cannot size '{path}': {Reason(e)}", e);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Opens a block device node (Linux); its capacity comes from <c>BLKGETSIZE64</c>.</summary>
    /// <exception cref="StorageException">The node is missing, not a block device, empty or not accessible.</exception>
    public static FileBlockDevice OpenBlockDevice(string path, bool readOnly = false, bool writeThrough = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = FullPath(path);
        if (!OperatingSystem.IsLinux())
            throw new StorageException($"'{path}': block devices are supported on Linux only");
        if (!File.Exists(path))
            throw new StorageException(Directory.Exists(path) ? $"'{path}' is a directory, not a block device" : $"block device '{path}' does not exist");

        var handle = OpenHandle(path, FileMode.Open, readOnly, writeThrough);
        try
        {
            if (!TryGetBlockDeviceSize(handle, out long length))
                throw new StorageException($"'{path}' is not a block device (use file:{path} for a regular file)");
            if (length == 0)
                throw new StorageException($"block device '{path}' has size 0 (no medium, or a detached loop device)");
            int sector = 512;
            using (var lease = new FdLease(handle))
            {
                if (NativeMethods.IoctlGetInt32(lease.Fd, NativeMethods.BLKSSZGET, out int s) == 0 && s > 0)
                    sector = s;
            }
            return new FileBlockDevice(path, handle, length, readOnly, writeThrough, isBlockDevice: true, sector);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, destination.Length);
        while (!destination.IsEmpty)
        {
            int n = await RandomAccess.ReadAsync(_handle, destination, offset, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                // Only if the file was truncated behind our back: what isn't there reads as zeros.
                destination.Span.Clear();
                break;
            }
            destination = destination[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        CheckRange(offset, source.Length);
        await RandomAccess.WriteAsync(_handle, source, offset, cancellationToken).ConfigureAwait(false);
        // SBC-4 FUA bit: the data is on the medium before status. RandomAccess finishes file I/O
        // on a pool thread, so this blocking sync does not hold up the caller.
        if (forceUnitAccess && !WriteThrough)
            DataSync();
    }

    /// <inheritdoc/>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        if (IsReadOnly)
            return ValueTask.CompletedTask;
        // fdatasync may take long; keep it off the caller's (network) thread.
        return new ValueTask(Task.Run(DataSync, cancellationToken));
    }

    /// <inheritdoc/>
    public async ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        CheckRange(offset, length);
        if (length == 0)
            return;

        if (IsBlockDevice)
        {
            // Block-device fallocate and BLKZEROOUT take whole logical sectors; zero the edges.
            long stop = offset + length;
            long start = (offset + _sectorSize - 1) / _sectorSize * _sectorSize;
            long end = stop / _sectorSize * _sectorSize;
            if (start >= end)
            {
                await WriteZerosAsync(offset, length, cancellationToken).ConfigureAwait(false);
                return;
            }
            if (start > offset)
                await WriteZerosAsync(offset, start - offset, cancellationToken).ConfigureAwait(false);
            if (stop > end)
                await WriteZerosAsync(end, stop - end, cancellationToken).ConfigureAwait(false);
            offset = start;
            length = end - start;
        }

        if (OperatingSystem.IsLinux())
        {
            (long o, long l) = (offset, length);
            if (await Task.Run(() => Deallocate(o, l), cancellationToken).ConfigureAwait(false))
                return;
        }
        await WriteZerosAsync(offset, length, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    /// <remarks>Uses <c>lseek(SEEK_DATA/SEEK_HOLE)</c>; a block device reports everything mapped.</remarks>
    public ValueTask<IReadOnlyList<(long Offset, long Length, bool Mapped)>> GetAllocationAsync(
        long offset, long length, CancellationToken cancellationToken = default)
    {
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            CheckRange(offset, length);
            var extents = new List<(long Offset, long Length, bool Mapped)>();
            if (length == 0)
                return ValueTask.FromResult<IReadOnlyList<(long, long, bool)>>(extents);
            long end = offset + length;
            if (IsBlockDevice || !OperatingSystem.IsLinux())
            {
                extents.Add((offset, length, true));
                return ValueTask.FromResult<IReadOnlyList<(long, long, bool)>>(extents);
            }

            using (var lease = new FdLease(_handle))
            {
                int fd = lease.Fd;
                long position = offset;
                while (position < end)
                {
                    long data = Seek(fd, position, NativeMethods.SEEK_DATA, end);
                    if (data < 0)
                    {
                        // File system without SEEK_DATA: say everything is mapped.
                        extents.Add((position, end - position, true));
                        break;
                    }
                    if (data > position)
                        extents.Add((position, Math.Min(data, end) - position, false));
                    if (data >= end)
                        break;
                    long hole = Seek(fd, data, NativeMethods.SEEK_HOLE, end);
                    if (hole < 0)
                        hole = end;
                    extents.Add((data, Math.Min(hole, end) - data, true));
                    position = hole;
                }
            }
            return ValueTask.FromResult<IReadOnlyList<(long, long, bool)>>(extents);
        }
        catch (Exception e)
        {
            return ValueTask.FromException<IReadOnlyList<(long, long, bool)>>(e);
        }
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>lseek for SEEK_DATA/SEEK_HOLE: <paramref name="end"/> when nothing follows (ENXIO), -1 if unsupported.</summary>
    private long Seek(int fd, long position, int whence, long end)
    {
        long result = NativeMethods.Lseek(fd, position, whence);
        if (result >= 0)
            return result;
        int errno = Marshal.GetLastPInvokeError();
        return errno switch
        {
            NativeMethods.ENXIO => end,
            NativeMethods.EINVAL => -1,
            _ => throw new StorageException($"lseek on '{Path}' failed: {NativeMethods.ErrorText(errno)}"),
        };
    }

    /// <summary>Deallocates a range in place; false when the file system or device can't.</summary>
    private bool Deallocate(long offset, long length)
    {
        if (!_punchHoleUnsupported)
        {
            int errno = PunchHole(_handle, offset, length);
            if (errno == 0)
                return true;
            if (errno is NativeMethods.EOPNOTSUPP or NativeMethods.ENOSYS)
                _punchHoleUnsupported = true;
            else
                throw new StorageException($"punching a hole in '{Path}' at {offset}+{length} failed: {NativeMethods.ErrorText(errno)}");
        }

        if (IsBlockDevice && !_zeroOutUnsupported)
        {
            // The device can't promise zeros after a discard (so no BLKDISCARD), but the kernel may
            // still zero the range faster than we can (WRITE ZEROES / WRITE SAME).
            int errno = ZeroOut(_handle, offset, length);
            if (errno == 0)
                return true;
            if (errno is NativeMethods.EOPNOTSUPP or NativeMethods.ENOTTY or NativeMethods.EINVAL)
                _zeroOutUnsupported = true;
            else
                throw new StorageException($"zeroing '{Path}' at {offset}+{length} failed: {NativeMethods.ErrorText(errno)}");
        }
        return false;
    }

    /// <summary>
    /// Learns whether the file system punches holes without touching data: a hole past the end
    /// with KEEP_SIZE is a no-op where supported and EOPNOTSUPP where not.
    /// </summary>
    private void ProbePunchHole()
    {
        if (!OperatingSystem.IsLinux())
            return;
        int errno = PunchHole(_handle, Length, 4096);
        if (errno is NativeMethods.EOPNOTSUPP or NativeMethods.ENOSYS)
            _punchHoleUnsupported = true;
    }

    private async ValueTask WriteZerosAsync(long offset, long length, CancellationToken cancellationToken)
    {
        while (length > 0)
        {
            int n = (int)Math.Min(length, ZeroBufferSize);
            await RandomAccess.WriteAsync(_handle, s_zeros[..n], offset, cancellationToken).ConfigureAwait(false);
            offset += n;
            length -= n;
        }
    }

    private void DataSync()
    {
        if (OperatingSystem.IsLinux())
        {
            int errno;
            using (var lease = new FdLease(_handle))
            {
                while ((errno = Errno(NativeMethods.Fdatasync(lease.Fd))) == NativeMethods.EINTR)
                {
                }
            }
            if (errno != 0)
                throw new StorageException($"fdatasync on '{Path}' failed: {NativeMethods.ErrorText(errno)}");
        }
        else
        {
            RandomAccess.FlushToDisk(_handle);
        }
        Interlocked.Increment(ref _flushCount);
    }

    private void CheckWritable()
    {
        if (IsReadOnly)
            throw new InvalidOperationException($"'{Path}' is open read-only");
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Length - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"range [{offset}, +{length}) is outside '{Path}' (length {Length})");
    }

    private static bool TryGetBlockDeviceSize(SafeFileHandle handle, out long size)
    {
        using var lease = new FdLease(handle);
        int rc = NativeMethods.IoctlGetUInt64(lease.Fd, NativeMethods.BLKGETSIZE64, out ulong bytes);
        size = rc == 0 ? (long)bytes : 0;
        return rc == 0;
    }

    /// <summary>fallocate(PUNCH_HOLE | KEEP_SIZE); 0 or the errno.</summary>
    private static int PunchHole(SafeFileHandle handle, long offset, long length)
    {
        using var lease = new FdLease(handle);
        int errno;
        while ((errno = Errno(NativeMethods.Fallocate(
            lease.Fd, NativeMethods.FALLOC_FL_PUNCH_HOLE | NativeMethods.FALLOC_FL_KEEP_SIZE, offset, length))) == NativeMethods.EINTR)
        {
        }
        return errno;
    }

    /// <summary>ioctl(BLKZEROOUT); 0 or the errno.</summary>
    private static unsafe int ZeroOut(SafeFileHandle handle, long offset, long length)
    {
        using var lease = new FdLease(handle);
        ulong* range = stackalloc ulong[2];
        range[0] = (ulong)offset;
        range[1] = (ulong)length;
        int errno;
        while ((errno = Errno(NativeMethods.IoctlRange(lease.Fd, NativeMethods.BLKZEROOUT, range))) == NativeMethods.EINTR)
        {
        }
        return errno;
    }

    private static int Errno(int result) => result == 0 ? 0 : Marshal.GetLastPInvokeError();

    private static SafeFileHandle OpenHandle(string path, FileMode mode, bool readOnly, bool writeThrough)
    {
        var options = FileOptions.Asynchronous;
        if (writeThrough && !readOnly)
            options |= FileOptions.WriteThrough;
        try
        {
            // FileShare.None takes an exclusive advisory lock: two servers can't share a back end.
            return File.OpenHandle(
                path,
                mode,
                readOnly ? FileAccess.Read : FileAccess.ReadWrite,
                readOnly ? FileShare.Read : FileShare.None,
                options);
        }
        catch (FileNotFoundException e)
        {
            throw new StorageException($"'{path}' does not exist", e);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new StorageException($"directory of '{path}' does not exist", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new StorageException($"cannot open '{path}': permission denied", e);
        }
        catch (IOException e) when (e.HResult == NativeMethods.EWOULDBLOCK)
        {
            // flock(LOCK_NB) refused: another open back end (in this or another process) holds it.
            throw new StorageException($"'{path}' is in use by another back end or process", e);
        }
        catch (IOException e)
        {
            throw new StorageException($"cannot open '{path}': {Reason(e)}", e);
        }
    }

    private static string FullPath(string path)
    {
        try
        {
            return System.IO.Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new StorageException($"invalid path '{path}': {e.Message}", e);
        }
    }

    private static string Reason(Exception e) => e.Message.ReplaceLineEndings(" ");

    /// <summary>Borrows a handle's descriptor so it can't be closed and reused under a system call.</summary>
    private readonly ref struct FdLease
    {
        private readonly SafeFileHandle _handle;

        public FdLease(SafeFileHandle handle)
        {
            bool added = false;
            handle.DangerousAddRef(ref added);
            _handle = handle;
            Fd = (int)handle.DangerousGetHandle();
        }

        public int Fd { get; }

        public void Dispose() => _handle.DangerousRelease();
    }
}
