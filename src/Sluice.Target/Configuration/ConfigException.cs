namespace Sluice.Target.Configuration;

/// <summary>
/// A configuration problem. <see cref="Exception.Message"/> is one line that names the key path
/// and what is wrong, e.g. <c>targets[0].luns[1].blockSize: must be 512 or 4096 (got 1024)</c>.
/// </summary>
public sealed class ConfigException : Exception
{
    public ConfigException()
    {
    }

    public ConfigException(string message)
        : base(message)
    {
    }

    public ConfigException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>A problem with the value at <paramref name="keyPath"/> (a config key path or a flag such as <c>--listen</c>).</summary>
    public ConfigException(string keyPath, string problem, Exception? innerException = null)
        : base($"{keyPath}: {problem}", innerException)
    {
        KeyPath = keyPath;
        Problem = problem;
    }

    /// <summary>Where the problem is, e.g. <c>targets[0].luns[1].blockSize</c>; null when the message has none.</summary>
    public string? KeyPath { get; }

    /// <summary>What is wrong, without the key path.</summary>
    public string? Problem { get; }
}
