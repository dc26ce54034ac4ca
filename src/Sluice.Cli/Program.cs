using Sluice.Cli;

return await SluiceCli.RunAsync(args, Console.Out, Console.Error);
