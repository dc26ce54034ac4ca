using System.CommandLine;
using System.Globalization;
using Sluice.Initiator;

namespace Sluice.Cli.Commands;

/// <summary>What the initiator commands (ls, inq, cp, bench) share: URL and CHAP options, sizes, formatting.</summary>
internal static class ClientCommon
{
    public static Option<string> ChapOption() => new("--chap")
    {
        Description = "Log in with CHAP as USER with SECRET (overrides the URL's user%secret).",
        HelpName = "USER:SECRET",
    };

    public static Option<string> MutualChapOption() => new("--mutual-chap")
    {
        Description = "Mutual CHAP: the target must prove itself as USER with SECRET.",
        HelpName = "USER:SECRET",
    };

    public static Option<string> InitiatorNameOption() => new("--initiator-name")
    {
        Description = $"InitiatorName to log in with. [default: {IscsiClientOptions.DefaultInitiatorName}]",
        HelpName = "IQN",
    };

    public static IscsiUrl ParseUrl(string text, bool needTarget)
    {
        if (!IscsiUrl.TryParse(text, out var url, out var error))
        {
            throw new UsageException($"'{text}' is not an iSCSI URL: {error} (iscsi://[user[%secret]@]host[:port]/target-iqn/lun)");
        }

        if (needTarget && url.Target is null)
        {
            throw new UsageException($"'{text}' names no target (iscsi://host[:port]/target-iqn/lun)");
        }

        return url;
    }

    public static IscsiClientOptions Options(ParseResult parse, Option<string> chap, Option<string> mutual, Option<string> initiatorName, int queueDepth = 128)
    {
        var options = new IscsiClientOptions { QueueDepth = Math.Max(queueDepth, 16) };
        if (parse.GetValue(initiatorName) is { } name)
        {
            options = options with { InitiatorName = name };
        }

        if (parse.GetValue(chap) is { } c)
        {
            var (u, s) = SplitCredential(c, "--chap");
            options = options with { ChapUser = u, ChapSecret = s };
        }

        if (parse.GetValue(mutual) is { } m)
        {
            var (u, s) = SplitCredential(m, "--mutual-chap");
            options = options with { TargetChapUser = u, TargetChapSecret = s };
        }

        return options;
    }

    private static (string, string) SplitCredential(string value, string option)
    {
        int colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || colon == value.Length - 1)
        {
            throw new UsageException($"{option} wants USER:SECRET");
        }

        return (value[..colon], value[(colon + 1)..]);
    }

    /// <summary>Parses 4096, 4k, 4K, 4KiB, 1m, 1MiB, 2g (powers of 1024).</summary>
    public static long ParseSize(string text, string what)
    {
        var t = text.Trim();
        long multiplier = 1;
        var lower = t.ToLowerInvariant();
        foreach (var (suffix, m) in new (string, long)[] { ("kib", 1L << 10), ("mib", 1L << 20), ("gib", 1L << 30), ("tib", 1L << 40), ("kb", 1L << 10), ("mb", 1L << 20), ("gb", 1L << 30), ("tb", 1L << 40), ("k", 1L << 10), ("m", 1L << 20), ("g", 1L << 30), ("t", 1L << 40), ("b", 1) })
        {
            if (lower.EndsWith(suffix, StringComparison.Ordinal))
            {
                multiplier = m;
                t = t[..^suffix.Length];
                break;
            }
        }

        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n <= 0 || n > long.MaxValue / multiplier)
        {
            throw new UsageException($"{what} '{text}' is not a size (e.g. 4k, 1m, 512)");
        }

        return n * multiplier;
    }

    /// <summary>Parses 10s, 500ms, 2m, 1h, or plain seconds.</summary>
    public static TimeSpan ParseDuration(string text, string what)
    {
        var t = text.Trim().ToLowerInvariant();
        double unit = 1;
        if (t.EndsWith("ms", StringComparison.Ordinal))
        {
            unit = 0.001;
            t = t[..^2];
        }
        else if (t.EndsWith('s'))
        {
            t = t[..^1];
        }
        else if (t.EndsWith('m'))
        {
            unit = 60;
            t = t[..^1];
        }
        else if (t.EndsWith('h'))
        {
            unit = 3600;
            t = t[..^1];
        }

        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || v <= 0)
        {
            throw new UsageException($"{what} '{text}' is not a duration (e.g. 10s, 500ms, 2m)");
        }

        return TimeSpan.FromSeconds(v * unit);
    }

    public static string FormatBytes(double bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        int u = 0;
        while (bytes >= 1024 && u < units.Length - 1)
        {
            bytes /= 1024;
            u++;
        }

        return u == 0 ? string.Create(CultureInfo.InvariantCulture, $"{bytes:0} B") : string.Create(CultureInfo.InvariantCulture, $"{bytes:0.0} {units[u]}");
    }
}

/// <summary>A wrong invocation: reported on one line with exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>Runs a client command, turning <see cref="UsageException"/> into exit code 2.</summary>
internal static class ClientRunner
{
    public static async Task<int> RunAsync(string name, TextWriter error, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (UsageException e)
        {
            await error.WriteLineAsync($"sluice {name}: {e.Message}");
            return ExitCodes.Usage;
        }
    }
}
