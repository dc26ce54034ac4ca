using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Reflection;
using Sluice.Cli.Commands;
using Sluice.Target.Configuration;

namespace Sluice.Cli;

/// <summary>
/// The <c>sluice</c> command line. Each subcommand lives in its own file under Commands/ and
/// registers here. Usage errors print one line on stderr and exit 2; failures exit 1.
/// </summary>
internal static class SluiceCli
{
    public static RootCommand CreateRootCommand()
    {
        var root = new RootCommand("Sluice: an iSCSI target and initiator.");
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(LsCommand.Create());
        root.Subcommands.Add(InqCommand.Create());
        root.Subcommands.Add(CpCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(FnCommand.Create());
        root.SetAction(parseResult => new HelpAction().Invoke(parseResult));
        // The default prints the entry assembly's version, which is the test host under tests.
        foreach (var option in root.Options)
        {
            if (option is VersionOption)
                option.Action = new PrintVersionAction();
        }
        return root;
    }

    /// <summary>This assembly's informational version, e.g. <c>0.1.0+1a2b3c4</c>.</summary>
    public static string Version =>
        typeof(SluiceCli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(SluiceCli).Assembly.GetName().Version?.ToString()
        ?? "unknown";

    private sealed class PrintVersionAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.WriteLine(Version);
            return ExitCodes.Success;
        }
    }

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var root = CreateRootCommand();
        var parseResult = root.Parse(args);
        string commandName = CommandName(parseResult);
        if (parseResult.Errors.Count > 0)
        {
            await error.WriteLineAsync($"{commandName}: {parseResult.Errors[0].Message} Try '{commandName} --help'.");
            return ExitCodes.Usage;
        }

        var invocation = new InvocationConfiguration
        {
            Output = output,
            Error = error,
            EnableDefaultExceptionHandler = false,
            // Commands handle SIGINT/SIGTERM themselves (serve stops cleanly).
            ProcessTerminationTimeout = null,
        };
        try
        {
            return await parseResult.InvokeAsync(invocation, cancellationToken);
        }
        catch (ConfigException e)
        {
            await error.WriteLineAsync($"{commandName}: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return ExitCodes.Success;
        }
        catch (Exception e)
        {
            await error.WriteLineAsync($"{commandName}: {OneLine(e.Message)}");
            return ExitCodes.Failure;
        }
    }

    private static string CommandName(ParseResult parseResult)
    {
        var names = new List<string>();
        for (var result = parseResult.CommandResult; result is not null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
            names.Add(result.Command is RootCommand ? "sluice" : result.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
