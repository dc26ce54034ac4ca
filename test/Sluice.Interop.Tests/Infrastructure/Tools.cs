namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>The real peers the interop tests drive, found on PATH.</summary>
internal static class Tools
{
    public static string? Find(string name)
    {
        string path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin";
        foreach (string dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(["/usr/sbin", "/sbin"]))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }

    /// <summary>A skip reason naming the missing tools (and the Debian package), or null when all are there.</summary>
    public static string? Missing(params string[] names)
    {
        var missing = names.Where(n => Find(n) is null).ToList();
        return missing.Count == 0
            ? null
            : $"not installed: {string.Join(", ", missing)} (./scripts/test.sh installs libiscsi-bin, tgt, qemu-utils, qemu-block-extra)";
    }

    public static bool IsRoot => Environment.UserName == "root";
}
