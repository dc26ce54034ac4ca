using System.Runtime.InteropServices;

namespace Sluice.Storage;

/// <summary>Linux system calls the managed file API doesn't expose (x86-64/arm64 glibc, 64-bit off_t).</summary>
internal static partial class NativeMethods
{
    // <linux/falloc.h>
    internal const int FALLOC_FL_KEEP_SIZE = 0x01;
    internal const int FALLOC_FL_PUNCH_HOLE = 0x02;

    // <unistd.h> (GNU)
    internal const int SEEK_DATA = 3;
    internal const int SEEK_HOLE = 4;

    // <linux/fs.h>: _IOR(0x12, 114, size_t), _IO(0x12, 104), _IO(0x12, 127)
    internal const uint BLKGETSIZE64 = 0x80081272;
    internal const uint BLKSSZGET = 0x1268;
    internal const uint BLKZEROOUT = 0x127f;

    // <errno.h>
    internal const int EINTR = 4;
    internal const int EWOULDBLOCK = 11;
    internal const int EINVAL = 22;
    internal const int ENOTTY = 25;
    internal const int ENXIO = 6;
    internal const int ENOSYS = 38;
    internal const int EOPNOTSUPP = 95;

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    internal static partial int Fdatasync(int fd);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    internal static partial int Fallocate(int fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    internal static partial long Lseek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int IoctlGetUInt64(int fd, nuint request, out ulong value);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int IoctlGetInt32(int fd, nuint request, out int value);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static unsafe partial int IoctlRange(int fd, nuint request, ulong* range);

    internal static string ErrorText(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
