using Sluice.Cli;

if (args.Length > 0 && args[0] == "bench" && Environment.GetEnvironmentVariable(InlineSocketCompletions) is null)
{
    // A load generator is an event loop: let socket completions run the receive loops (and, with
    // IscsiClientOptions.InlineCompletions, the workers) on the socket engine's own thread instead of
    // handing each one to the thread pool, as libiscsi's single-threaded loop does. Read by the
    // runtime when the first socket operation starts, so it is set before anything else runs.
    Environment.SetEnvironmentVariable(InlineSocketCompletions, "1");
}

return await SluiceCli.RunAsync(args, Console.Out, Console.Error);

internal static partial class Program
{
    private const string InlineSocketCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
}
