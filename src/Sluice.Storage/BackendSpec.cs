using System.Diagnostics.CodeAnalysis;

namespace Sluice.Storage;

/// <summary>
/// Where a logical unit keeps its data, as written in configuration:
/// <c>memory:SIZE</c>, <c>file:PATH[:SIZE]</c>, <c>block:PATH</c> or
/// <c>model:SIZE[:iops=N,mbps=M,latency=X]</c> (<see cref="ModelBackendSpec"/>). Sizes follow <see cref="ByteSize"/>.
/// </summary>
public abstract record BackendSpec
{
    private protected BackendSpec()
    {
    }

    /// <summary>
    /// Parses a spec. On failure <paramref name="error"/> is one line saying what is wrong.
    /// For <c>file:</c>, a trailing <c>:SUFFIX</c> that starts with a digit is taken as the size
    /// (and must be valid); any other <c>:</c> belongs to the path.
    /// </summary>
    public static bool TryParse(
        string? text,
        [NotNullWhen(true)] out BackendSpec? spec,
        [NotNullWhen(false)] out string? error)
    {
        spec = null;
        error = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "empty back-end spec (expected memory:SIZE, file:PATH[:SIZE] or block:PATH)";
            return false;
        }

        text = text.Trim();
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            error = $"invalid back-end spec '{text}' (expected memory:SIZE, file:PATH[:SIZE] or block:PATH)";
            return false;
        }

        string kind = text[..colon];
        string rest = text[(colon + 1)..];
        if (kind.Equals("memory", StringComparison.OrdinalIgnoreCase))
        {
            if (rest.Length == 0)
            {
                error = "memory: needs a size (e.g. memory:1GiB)";
                return false;
            }
            if (!ByteSize.TryParse(rest, out long size))
            {
                error = $"invalid size '{rest}'";
                return false;
            }
            spec = new MemoryBackendSpec(size);
            return true;
        }

        if (kind.Equals("file", StringComparison.OrdinalIgnoreCase))
        {
            string path = rest;
            long? size = null;
            int last = rest.LastIndexOf(':');
            if (last >= 0 && last + 1 < rest.Length && char.IsAsciiDigit(rest[last + 1]))
            {
                string sizeText = rest[(last + 1)..];
                if (!ByteSize.TryParse(sizeText, out long parsed))
                {
                    error = $"invalid size '{sizeText}'";
                    return false;
                }
                path = rest[..last];
                size = parsed;
            }
            if (path.Length == 0)
            {
                error = "file: needs a path (e.g. file:lun0.img:10GiB)";
                return false;
            }
            spec = new FileBackendSpec(path, size);
            return true;
        }

        if (kind.Equals("block", StringComparison.OrdinalIgnoreCase))
        {
            if (rest.Length == 0)
            {
                error = "block: needs a device path (e.g. block:/dev/loop0)";
                return false;
            }
            if (!Path.IsPathRooted(rest))
            {
                error = $"block device path '{rest}' must be absolute";
                return false;
            }
            spec = new BlockBackendSpec(rest);
            return true;
        }

        if (kind.Equals("model", StringComparison.OrdinalIgnoreCase))
            return ModelBackendSpec.TryParseBody(rest, out spec, out error);

        error = $"unknown back end '{kind}' (expected memory:, file:, block: or model:)";
        return false;
    }

    /// <summary>Parses a spec or throws <see cref="FormatException"/> with the one-line error.</summary>
    public static BackendSpec Parse(string text) =>
        TryParse(text, out var spec, out var error) ? spec : throw new FormatException(error);
}

/// <summary>A RAM disk of <paramref name="Size"/> bytes; contents vanish with the process.</summary>
public sealed record MemoryBackendSpec(long Size) : BackendSpec
{
    public override string ToString() => $"memory:{ByteSize.Format(Size)}";
}

/// <summary>
/// A regular file. A relative <paramref name="Path"/> is under the data directory. Without
/// <paramref name="Size"/> the file must exist and its size is used; with it, a missing file is
/// created sparse and a smaller one grown.
/// </summary>
public sealed record FileBackendSpec(string Path, long? Size) : BackendSpec
{
    public override string ToString() =>
        Size is { } size ? $"file:{Path}:{ByteSize.Format(size)}" : $"file:{Path}";
}

/// <summary>A block device node such as <c>/dev/loop0</c>; its size is the device's.</summary>
public sealed record BlockBackendSpec(string Path) : BackendSpec
{
    public override string ToString() => $"block:{Path}";
}
