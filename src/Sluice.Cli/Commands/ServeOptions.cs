namespace Sluice.Cli.Commands;

/// <summary>
/// The flags of <c>sluice serve</c>, as given (unparsed). <see cref="ServeConfigBuilder"/> turns
/// them, plus an optional config file, into a <c>ServerConfig</c>.
/// </summary>
internal sealed record ServeOptions
{
    /// <summary><c>--listen HOST[:PORT]</c>, repeatable; when given, replaces the config's portals.</summary>
    public IReadOnlyList<string> Listen { get; init; } = [];

    /// <summary><c>--target IQN</c>: the target the target flags below apply to.</summary>
    public string? Target { get; init; }

    /// <summary><c>--lun SPEC</c>, repeatable: back ends numbered in order after the target's last LUN.</summary>
    public IReadOnlyList<string> Luns { get; init; } = [];

    /// <summary><c>--data-dir DIR</c>; relative to the current directory.</summary>
    public string? DataDir { get; init; }

    /// <summary><c>--config FILE</c>.</summary>
    public string? ConfigPath { get; init; }

    /// <summary><c>--chap USER:SECRET</c>.</summary>
    public string? Chap { get; init; }

    /// <summary><c>--mutual-chap USER:SECRET</c>.</summary>
    public string? MutualChap { get; init; }

    /// <summary><c>--allow IQN</c>, repeatable.</summary>
    public IReadOnlyList<string> Allow { get; init; } = [];

    /// <summary><c>--read-only</c>.</summary>
    public bool ReadOnly { get; init; }

    /// <summary><c>--block-size 512|4096</c>, as typed.</summary>
    public string? BlockSize { get; init; }

    /// <summary><c>--offload auto|none</c>: the per-byte engine.</summary>
    public string? Offload { get; init; }

    /// <summary><c>--metrics HOST[:PORT]</c>: serve Prometheus <c>/metrics</c> there (loopback only).</summary>
    public string? Metrics { get; init; }

    /// <summary><c>--log-level</c>, as typed.</summary>
    public string? LogLevel { get; init; }

    /// <summary><c>--check</c>: validate, print the effective config, and exit.</summary>
    public bool Check { get; init; }

    /// <summary>True when any flag that shapes a target is present.</summary>
    public bool HasTargetFlags =>
        Target is not null || Luns.Count > 0 || Chap is not null || MutualChap is not null
        || Allow.Count > 0 || ReadOnly || BlockSize is not null;
}
