using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Sluice.Storage;

/// <summary>
/// A device model of known speed with its data in RAM (<see cref="ModelBlockDevice"/>), written
/// <c>model:SIZE[:iops=N,mbps=M,latency=X]</c>, e.g. <c>model:1GiB:iops=20000,mbps=500,latency=200us</c>.
/// Each key is optional and appears at most once; an absent or zero rate is unlimited, an absent
/// latency is zero. MB/s is 10^6 bytes per second. Latency takes <c>ns</c>, <c>us</c> (or <c>µs</c>),
/// <c>ms</c> or <c>s</c>, with an optional fraction (<c>1.5ms</c>).
/// </summary>
public sealed record ModelBackendSpec(long Size, long Iops, double Mbps, TimeSpan Latency) : BackendSpec
{
    private const string Expected = "expected model:SIZE[:iops=N,mbps=M,latency=X]";

    /// <summary>Parses a whole <c>model:</c> spec.</summary>
    public static bool TryParse(
        string? text,
        [NotNullWhen(true)] out ModelBackendSpec? spec,
        [NotNullWhen(false)] out string? error)
    {
        spec = null;
        text = text?.Trim();
        if (text is null || !text.StartsWith("model:", StringComparison.OrdinalIgnoreCase))
        {
            error = $"not a model spec ({Expected})";
            return false;
        }
        if (!TryParseBody(text["model:".Length..], out var parsed, out error))
            return false;
        spec = (ModelBackendSpec)parsed;
        return true;
    }

    /// <summary>
    /// Parses what follows <c>model:</c>. This is what <see cref="BackendSpec.TryParse"/> calls for
    /// the <c>model</c> kind.
    /// </summary>
    internal static bool TryParseBody(
        string rest,
        [NotNullWhen(true)] out BackendSpec? spec,
        [NotNullWhen(false)] out string? error)
    {
        spec = null;
        error = null;
        int colon = rest.IndexOf(':', StringComparison.Ordinal);
        string sizeText = colon < 0 ? rest : rest[..colon];
        if (sizeText.Length == 0)
        {
            error = $"model: needs a size ({Expected})";
            return false;
        }
        if (!ByteSize.TryParse(sizeText, out long size))
        {
            error = $"invalid size '{sizeText}'";
            return false;
        }

        long iops = 0;
        double mbps = 0;
        var latency = TimeSpan.Zero;
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        if (colon >= 0)
        {
            foreach (string part in rest[(colon + 1)..].Split(',', StringSplitOptions.TrimEntries))
            {
                int eq = part.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    error = $"invalid model option '{part}' (expected key=value: iops, mbps or latency)";
                    return false;
                }
                string key = part[..eq].Trim();
                string value = part[(eq + 1)..].Trim();
                if (!seen.Add(key))
                {
                    error = $"model option '{key}' given twice";
                    return false;
                }
                switch (key.ToLowerInvariant())
                {
                    case "iops":
                        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out iops))
                        {
                            error = $"invalid iops '{value}' (a whole number >= 0)";
                            return false;
                        }
                        break;
                    case "mbps":
                        if (!double.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out mbps)
                            || !double.IsFinite(mbps))
                        {
                            error = $"invalid mbps '{value}' (a number >= 0, 10^6 bytes per second)";
                            return false;
                        }
                        break;
                    case "latency":
                        if (!TryParseDuration(value, out latency))
                        {
                            error = $"invalid latency '{value}' (e.g. 200us, 1ms, 1.5ms)";
                            return false;
                        }
                        break;
                    default:
                        error = $"unknown model option '{key}' (expected iops, mbps or latency)";
                        return false;
                }
            }
        }
        spec = new ModelBackendSpec(size, iops, mbps, latency);
        return true;
    }

    /// <summary>A duration such as <c>200us</c>, <c>1.5ms</c>, <c>2s</c> or <c>500ns</c>.</summary>
    public static bool TryParseDuration(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text))
            return false;
        var span = text.AsSpan().Trim();
        int end = 0;
        while (end < span.Length && (char.IsAsciiDigit(span[end]) || span[end] == '.'))
            end++;
        if (end == 0 || !double.TryParse(span[..end], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value))
            return false;
        double? seconds = span[end..] switch
        {
            "ns" => value / 1e9,
            "us" or "µs" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            _ => null,
        };
        if (seconds is not { } s || s > TimeSpan.MaxValue.TotalSeconds / 2)
            return false;
        duration = TimeSpan.FromTicks((long)Math.Round(s * TimeSpan.TicksPerSecond));
        return true;
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var options = new List<string>(3);
        if (Iops > 0)
            options.Add(string.Create(CultureInfo.InvariantCulture, $"iops={Iops}"));
        if (Mbps > 0)
            options.Add(string.Create(CultureInfo.InvariantCulture, $"mbps={Mbps}"));
        if (Latency > TimeSpan.Zero)
            options.Add(string.Create(CultureInfo.InvariantCulture, $"latency={Latency.TotalMicroseconds}us"));
        return options.Count == 0 ? $"model:{ByteSize.Format(Size)}" : $"model:{ByteSize.Format(Size)}:{string.Join(',', options)}";
    }
}
