using Sluice.Storage;
using Sluice.Target.Configuration;

namespace Sluice.Cli.Commands;

/// <summary>
/// Maps <c>sluice serve</c> flags onto a <see cref="ServerConfig"/>. Precedence (docs/configuration.md):
/// built-in defaults, then the config file, then flags. <c>--listen</c> replaces the portals;
/// <c>--data-dir</c> replaces <c>dataDir</c>; the target flags extend the target named by
/// <c>--target</c> (or the config's only target) or add it when it isn't in the config.
/// </summary>
internal static class ServeConfigBuilder
{
    public const string DefaultTargetName = "iqn.2026-11.dev.sluice:default";

    /// <summary>A 1 GiB sparse file in the data directory, created on first run and reused after.</summary>
    public const string DefaultLun = "file:lun0.img:1GiB";

    public const string DefaultHost = "127.0.0.1";

    /// <summary>
    /// <c>$XDG_DATA_HOME/sluice</c>, else <c>~/.local/share/sluice</c> (on Windows
    /// <c>%LOCALAPPDATA%\sluice</c>); <c>./sluice-data</c> when there is no home directory.
    /// </summary>
    public static string DefaultDataDir()
    {
        string root = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
        return string.IsNullOrEmpty(root) ? Path.GetFullPath("sluice-data") : Path.Combine(root, "sluice");
    }

    /// <summary>
    /// Builds the effective config. <paramref name="fileConfig"/> is what <c>--config</c> read
    /// (null without it) and is changed in place. Flag values are checked here, so their errors
    /// name the flag; the result still needs <see cref="ConfigValidator.Validate"/>.
    /// </summary>
    public static ServerConfig Build(ServeOptions options, ServerConfig? fileConfig, string defaultDataDir, string currentDirectory)
    {
        var portals = options.Listen.Select(ParseListen).ToList();
        int? blockSize = ParseBlockSize(options.BlockSize);
        var chap = ParseChap(options.Chap, "--chap");
        var mutualChap = ParseChap(options.MutualChap, "--mutual-chap");
        if (options.Target is not null && !IscsiName.TryValidate(options.Target, out string? nameProblem))
            throw new ConfigException("--target", nameProblem);
        foreach (string initiator in options.Allow)
        {
            if (!IscsiName.TryValidate(initiator, out string? problem))
                throw new ConfigException("--allow", problem);
        }
        foreach (string lun in options.Luns)
        {
            if (!BackendSpec.TryParse(lun, out _, out string? error))
                throw new ConfigException("--lun", error);
        }

        var config = fileConfig ?? new ServerConfig { DataDir = defaultDataDir };
        if (options.Offload is not null)
        {
            if (options.Offload is not ("auto" or "none"))
                throw new ConfigException("--offload", $"must be auto or none (got '{options.Offload}')");
            config.Offload = options.Offload;
        }

        if (options.Metrics is not null)
        {
            if (!MetricsListen.TryParse(options.Metrics, out _, out _, out string? metricsError))
                throw new ConfigException("--metrics", metricsError);
            config.Metrics = new MetricsConfig { Listen = options.Metrics };
        }

        if (options.DataDir is not null)
        {
            if (options.DataDir.Length == 0)
                throw new ConfigException("--data-dir", "must not be empty");
            config.DataDir = Path.GetFullPath(options.DataDir, currentDirectory);
        }

        if (portals.Count > 0)
            config.Portals = portals;
        else if (fileConfig is null)
            config.Portals = [new PortalConfig { Host = DefaultHost, Port = PortalAddress.DefaultPort }];

        if (fileConfig is null || options.HasTargetFlags)
            ApplyTargetFlags(config, options, fileConfig is not null, blockSize, chap, mutualChap);
        return config;
    }

    private static void ApplyTargetFlags(
        ServerConfig config, ServeOptions options, bool fromFile, int? blockSize, ChapConfig? chap, ChapConfig? mutualChap)
    {
        config.Targets ??= [];
        TargetConfig? target;
        if (options.Target is not null)
        {
            target = config.Targets.Find(t => t is not null && string.Equals(t.Name, options.Target, StringComparison.OrdinalIgnoreCase));
        }
        else if (fromFile && config.Targets.Count == 1 && config.Targets[0] is not null)
        {
            target = config.Targets[0];
        }
        else if (fromFile && config.Targets.Count > 1)
        {
            throw new ConfigException("--target", $"needed to say which of the config's {config.Targets.Count} targets the target flags apply to");
        }
        else
        {
            target = null;
        }

        bool added = target is null;
        if (target is null)
        {
            target = new TargetConfig { Name = options.Target ?? DefaultTargetName };
            config.Targets.Add(target);
        }
        target.Luns ??= [];

        var specs = options.Luns.Count > 0 ? options.Luns : added ? [DefaultLun] : [];
        ulong next = target.Luns.Count == 0 ? 0 : target.Luns.Max(l => l?.Number ?? 0) + 1;
        foreach (string spec in specs)
            target.Luns.Add(new LunConfig { Number = next++, Backend = spec });

        foreach (var lun in target.Luns)
        {
            if (lun is null)
                continue;
            if (options.ReadOnly)
                lun.ReadOnly = true;
            if (blockSize is { } size)
                lun.BlockSize = size;
        }

        if (options.Allow.Count > 0)
        {
            target.AllowedInitiators ??= [];
            foreach (string initiator in options.Allow)
            {
                if (!target.AllowedInitiators.Contains(initiator, StringComparer.OrdinalIgnoreCase))
                    target.AllowedInitiators.Add(initiator);
            }
        }
        if (chap is not null)
            target.Chap = chap;
        if (mutualChap is not null)
            target.MutualChap = mutualChap;
    }

    /// <summary><c>--listen HOST[:PORT]</c> to a portal in group 1.</summary>
    public static PortalConfig ParseListen(string text)
    {
        if (!PortalAddress.TryParse(text, out string? host, out int port, out string? error))
            throw new ConfigException("--listen", error);
        return new PortalConfig { Host = host, Port = port };
    }

    private static int? ParseBlockSize(string? text) => text switch
    {
        null => null,
        "512" => 512,
        "4096" or "4K" or "4k" => 4096,
        _ => throw new ConfigException("--block-size", $"must be 512 or 4096 (got '{text}')"),
    };

    /// <summary><c>USER:SECRET</c>; the user ends at the first colon, the secret may contain colons.</summary>
    public static ChapConfig? ParseChap(string? text, string flag)
    {
        if (text is null)
            return null;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || colon == text.Length - 1)
            throw new ConfigException(flag, "expected USER:SECRET with both parts non-empty");
        return new ChapConfig { User = text[..colon], Secret = text[(colon + 1)..] };
    }
}
