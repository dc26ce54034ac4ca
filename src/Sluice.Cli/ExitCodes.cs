namespace Sluice.Cli;

/// <summary>Process exit codes shared by every command.</summary>
internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The work failed: a back end would not open, a port was taken, a peer went away.</summary>
    public const int Failure = 1;

    /// <summary>The invocation was wrong: an unknown flag, a bad value, an invalid config file.</summary>
    public const int Usage = 2;
}
