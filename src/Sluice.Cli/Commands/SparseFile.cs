using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Sluice.Cli.Commands;

/// <summary>
/// The data extents of a local file, from <c>lseek(SEEK_DATA/SEEK_HOLE)</c> (Linux, glibc, 64-bit
/// off_t), so <c>sluice cp</c> skips a sparse image's holes without reading them. Where the call is
/// missing (another OS, a file system without it) the whole range is reported as data.
/// </summary>
internal static partial class SparseFile
{
    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int ENXIO = 6;

    /// <summary>
    /// Splits [<paramref name="offset"/>, <paramref name="offset"/>+<paramref name="length"/>) into
    /// (start, length, isHole) pieces, in order, covering the whole range.
    /// </summary>
    public static List<(long Offset, long Length, bool Hole)> Map(SafeFileHandle handle, long offset, long length)
    {
        var pieces = new List<(long, long, bool)>();
        long end = offset + length;
        if (length <= 0)
        {
            return pieces;
        }

        if (!OperatingSystem.IsLinux())
        {
            pieces.Add((offset, length, false));
            return pieces;
        }

        bool addRef = false;
        try
        {
            handle.DangerousAddRef(ref addRef);
            int fd = (int)handle.DangerousGetHandle();
            long position = offset;
            while (position < end)
            {
                long data = Seek(fd, position, SeekData, end);
                if (data < 0)
                {
                    pieces.Add((position, end - position, false)); // not supported here: all data
                    break;
                }

                if (data > position)
                {
                    pieces.Add((position, Math.Min(data, end) - position, true));
                }

                if (data >= end)
                {
                    break;
                }

                long hole = Seek(fd, data, SeekHole, end);
                hole = hole < 0 ? end : Math.Min(hole, end);
                pieces.Add((data, hole - data, false));
                position = hole;
            }
        }
        finally
        {
            if (addRef)
            {
                handle.DangerousRelease();
            }
        }

        return pieces;
    }

    /// <summary>The offset, <paramref name="end"/> when nothing follows (ENXIO), or -1 when unsupported.</summary>
    private static long Seek(int fd, long position, int whence, long end)
    {
        long r = Lseek(fd, position, whence);
        if (r >= 0)
        {
            return r;
        }

        return Marshal.GetLastPInvokeError() == ENXIO ? end : -1;
    }

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long Lseek(int fd, long offset, int whence);
}
