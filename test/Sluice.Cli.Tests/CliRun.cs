namespace Sluice.Cli.Tests;

/// <summary>Runs the `sluice` command line in-process and captures its exit code and output.</summary>
internal static class CliRun
{
    public static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = await SluiceCli.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }
}
