using System.Diagnostics.CodeAnalysis;
using Sluice.Storage;

namespace Sluice.Target.Configuration;

/// <summary>
/// A LUN back end carved out of a shared device: <c>device:NAME[:OFFSET]:SIZE</c>. Without an
/// offset the slice starts where the previous slice of the same device (in config order: targets,
/// then their LUNs) ends, or at 0 for the first.
/// </summary>
internal readonly record struct DeviceSlice(string Device, long? Offset, long Size)
{
    public const string Prefix = "device:";
    private const string Expected = "expected device:NAME[:OFFSET]:SIZE";

    public static bool IsSlice(string? backend) =>
        backend is not null && backend.TrimStart().StartsWith(Prefix, StringComparison.OrdinalIgnoreCase);

    public static bool TryParse(string text, out DeviceSlice slice, [NotNullWhen(false)] out string? error)
    {
        slice = default;
        error = null;
        string[] parts = text.Trim()[Prefix.Length..].Split(':');
        if (parts.Length is < 2 or > 3 || parts[0].Length == 0)
        {
            error = $"invalid slice '{text.Trim()}' ({Expected})";
            return false;
        }

        long? offset = null;
        if (parts.Length == 3)
        {
            if (!TryParseOffset(parts[1], out long o))
            {
                error = $"invalid offset '{parts[1]}' ({Expected})";
                return false;
            }
            offset = o;
        }

        if (!ByteSize.TryParse(parts[^1], out long size) || size <= 0)
        {
            error = $"invalid size '{parts[^1]}' ({Expected})";
            return false;
        }

        slice = new DeviceSlice(parts[0], offset, size);
        return true;
    }

    // ByteSize takes positive sizes only; an offset may be 0.
    private static bool TryParseOffset(string text, out long offset)
    {
        offset = 0;
        return text.Trim() == "0" || ByteSize.TryParse(text, out offset);
    }
}

/// <summary>Where each sliced LUN lies on its device, offsets resolved.</summary>
internal sealed record SlicePlacement(int Target, int Lun, string Device, long Offset, long Size)
{
    public long End => Offset + Size;

    public string At => $"targets[{Target}].luns[{Lun}]";

    /// <summary>Every slice LUN of a config that parses, in config order, offsets filled in.</summary>
    public static List<SlicePlacement> Plan(ServerConfig config)
    {
        var placements = new List<SlicePlacement>();
        var next = new Dictionary<string, long>(StringComparer.Ordinal);
        for (int t = 0; t < config.Targets.Count; t++)
        {
            var luns = config.Targets[t]?.Luns;
            if (luns is null)
                continue;
            for (int l = 0; l < luns.Count; l++)
            {
                if (luns[l] is not { } lun || !DeviceSlice.IsSlice(lun.Backend) || !DeviceSlice.TryParse(lun.Backend, out var slice, out _))
                    continue;
                long offset = slice.Offset ?? next.GetValueOrDefault(slice.Device);
                next[slice.Device] = offset + slice.Size;
                placements.Add(new SlicePlacement(t, l, slice.Device, offset, slice.Size));
            }
        }
        return placements;
    }
}
