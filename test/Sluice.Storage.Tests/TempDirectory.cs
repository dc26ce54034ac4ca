using System.Diagnostics;
using System.Globalization;

namespace Sluice.Storage.Tests;

/// <summary>A scratch directory removed when the test class is done.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = Directory.CreateTempSubdirectory("sluice-storage-").FullName;
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Bytes the file system really holds for <paramref name="path"/> (st_blocks * 512).</summary>
    public static long AllocatedBytes(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%b", path]) { RedirectStandardOutput = true };
        using var process = Process.Start(psi)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        return long.Parse(output.Trim(), CultureInfo.InvariantCulture) * 512;
    }
}
