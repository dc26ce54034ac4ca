using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Sluice.Target.Configuration;
using Sluice.Target.Control;

namespace Sluice.Cli.Commands;

/// <summary><c>sluice serve</c>: run the iSCSI target until Ctrl-C or SIGTERM.</summary>
internal static class ServeCommand
{
    private static readonly Option<string[]> s_listen = new("--listen")
    {
        Description = "Listen on HOST[:PORT]: 127.0.0.1:3260, [::1]:3260, 0.0.0.0; port 3260 when left out, 0 for a free one. Repeatable; replaces the config's portals. [default: 127.0.0.1:3260]",
        HelpName = "HOST:PORT",
        Arity = ArgumentArity.OneOrMore,
    };

    private static readonly Option<string> s_target = new("--target")
    {
        Description = $"Target IQN the target flags (--lun, --chap, --mutual-chap, --allow, --read-only, --block-size) apply to. [default: {ServeConfigBuilder.DefaultTargetName}, or the config's only target]",
        HelpName = "IQN",
    };

    private static readonly Option<string[]> s_lun = new("--lun")
    {
        Description = $"Add a LUN backed by memory:SIZE, file:PATH[:SIZE] or block:PATH (relative paths are in the data directory). Repeatable; numbered 0, 1, 2... in order. [default: {ServeConfigBuilder.DefaultLun}]",
        HelpName = "SPEC",
        Arity = ArgumentArity.OneOrMore,
    };

    private static readonly Option<string> s_dataDir = new("--data-dir")
    {
        Description = "Directory for file LUNs and state. [default: $XDG_DATA_HOME/sluice or ~/.local/share/sluice]",
        HelpName = "DIR",
    };

    private static readonly Option<string> s_config = new("--config")
    {
        Description = "Read the JSON config file FILE first; flags then override or extend it (see docs/configuration.md).",
        HelpName = "FILE",
    };

    private static readonly Option<string> s_chap = new("--chap")
    {
        Description = "Require initiators to log in with CHAP as USER with SECRET.",
        HelpName = "USER:SECRET",
    };

    private static readonly Option<string> s_mutualChap = new("--mutual-chap")
    {
        Description = "With --chap: the target also proves itself to the initiator as USER with SECRET (a different secret).",
        HelpName = "USER:SECRET",
    };

    private static readonly Option<string[]> s_allow = new("--allow")
    {
        Description = "Only this initiator may discover and log in to the target. Repeatable. [default: everyone]",
        HelpName = "INITIATOR-IQN",
        Arity = ArgumentArity.OneOrMore,
    };

    private static readonly Option<bool> s_readOnly = new("--read-only")
    {
        Description = "Export the target's LUNs write-protected.",
    };

    private static readonly Option<string> s_blockSize = new("--block-size")
    {
        Description = "Logical block size of the target's LUNs: 512 or 4096. [default: 512]",
        HelpName = "512|4096",
    };

    private static readonly Option<string> s_logLevel = new("--log-level")
    {
        Description = $"Log to stderr at this level or above: {LogLevels.Names}. [default: info]",
        HelpName = "LEVEL",
    };

    private static readonly Option<string> s_offload = new("--offload")
    {
        Description = "Per-byte engine: auto (fastest CRC32C kernel, direct data placement) or none (staged copies and table CRC, to measure the gain). [default: auto]",
        HelpName = "auto|none",
    };

    private static readonly Option<string> s_metrics = new("--metrics")
    {
        Description = "Serve Prometheus metrics at http://HOST:PORT/metrics on a loopback address, e.g. 127.0.0.1:9464 (port 9464 when left out). [default: off, or metrics.listen]",
        HelpName = "HOST[:PORT]",
    };

    private static readonly Option<bool> s_check = new("--check")
    {
        Description = "Validate the configuration, print it as JSON (secrets redacted) and exit without serving.",
    };

    public static Command Create()
    {
        var command = new Command("serve", "Run the iSCSI target until Ctrl-C or SIGTERM.")
        {
            s_listen, s_target, s_lun, s_dataDir, s_config, s_chap, s_mutualChap, s_allow, s_readOnly, s_blockSize, s_offload, s_metrics, s_logLevel, s_check,
        };
        command.SetAction((parseResult, cancellationToken) =>
            RunAsync(Bind(parseResult), parseResult.InvocationConfiguration.Output, cancellationToken));
        return command;
    }

    public static ServeOptions Bind(ParseResult parseResult) => new()
    {
        Listen = parseResult.GetValue(s_listen) ?? [],
        Target = parseResult.GetValue(s_target),
        Luns = parseResult.GetValue(s_lun) ?? [],
        DataDir = parseResult.GetValue(s_dataDir),
        ConfigPath = parseResult.GetValue(s_config),
        Chap = parseResult.GetValue(s_chap),
        MutualChap = parseResult.GetValue(s_mutualChap),
        Allow = parseResult.GetValue(s_allow) ?? [],
        ReadOnly = parseResult.GetValue(s_readOnly),
        BlockSize = parseResult.GetValue(s_blockSize),
        Offload = parseResult.GetValue(s_offload),
        Metrics = parseResult.GetValue(s_metrics),
        LogLevel = parseResult.GetValue(s_logLevel),
        Check = parseResult.GetValue(s_check),
    };

    /// <summary>Loads, merges and validates the config. Throws <see cref="ConfigException"/>.</summary>
    public static ServerConfig BuildConfig(ServeOptions options)
    {
        var fileConfig = options.ConfigPath is null ? null : ConfigLoader.Read(options.ConfigPath);
        var config = ServeConfigBuilder.Build(options, fileConfig, ServeConfigBuilder.DefaultDataDir(), Directory.GetCurrentDirectory());
        ConfigValidator.Validate(config);
        return config;
    }

    public static async Task<int> RunAsync(ServeOptions options, TextWriter output, CancellationToken cancellationToken, ServeEnvironment? environment = null)
    {
        environment ??= ServeEnvironment.Default;
        var level = LogLevels.Parse(options.LogLevel);
        var config = BuildConfig(options);
        if (options.Check)
        {
            await output.WriteLineAsync(ConfigLoader.ToJson(Redacted(config)));
            return ExitCodes.Success;
        }

        Directory.CreateDirectory(config.DataDir);

        using var loggerFactory = LoggerFactory.Create(builder =>
        {
            builder.SetMinimumLevel(level);
            if (environment.LogSink is not null)
            {
                builder.AddProvider(environment.LogSink);
                return;
            }
            builder
                .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)
                .AddSimpleConsole(o =>
                {
                    o.SingleLine = true;
                    o.TimestampFormat = "HH:mm:ss.fff ";
                    o.ColorBehavior = LoggerColorBehavior.Default;
                });
        });
        var logger = loggerFactory.CreateLogger("Sluice.Cli");

        using var shutdown = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        string? signalName = null;
        void OnSignal(PosixSignalContext context)
        {
            // The first signal asks for a clean stop; a second one falls through to the default
            // action and ends the process at once.
            if (signalName is not null)
                return;
            context.Cancel = true;
            signalName = context.Signal.ToString();
            Log.Stopping(logger, signalName);
            shutdown.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        Log.Starting(logger, config.Targets.Count, config.Portals.Count, config.DataDir);
        var server = environment.HostFactory(config, loggerFactory);
        try
        {
            await server.StartAsync(shutdown.Token);
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
        {
            return await StopAsync(server, logger, environment.StopTimeout);
        }
        catch (Exception e)
        {
            Log.StartFailed(logger, e);
            await AbandonAsync(server, logger, environment.StopTimeout);
            throw;
        }

        // IServeHost does not carry the path; a real server's socket is at <dataDir>/control.sock when it could open it.
        string? control = server is TargetServerHost ? ControlProtocol.SocketPath(config.DataDir) : null;
        await output.WriteAsync(Banner(config, server.LocalEndpoints, control is not null && File.Exists(control) ? control : null));
        await output.FlushAsync(CancellationToken.None);

        try
        {
            await Task.Delay(Timeout.Infinite, shutdown.Token);
        }
        catch (OperationCanceledException)
        {
        }
        return await StopAsync(server, logger, environment.StopTimeout);
    }

    private static async Task<int> StopAsync(IServeHost server, ILogger logger, TimeSpan stopTimeout)
    {
        using var timeout = new CancellationTokenSource(stopTimeout);
        try
        {
            await server.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            // Dispose would stop again without a deadline; the process is ending anyway.
            Log.StopTimedOut(logger, stopTimeout);
            return ExitCodes.Failure;
        }
        await server.DisposeAsync();
        Log.Stopped(logger);
        return ExitCodes.Success;
    }

    // After a failed start, release what the server had opened, but never hang on it.
    private static async Task AbandonAsync(IServeHost server, ILogger logger, TimeSpan stopTimeout)
    {
        try
        {
            using var timeout = new CancellationTokenSource(stopTimeout);
            await server.StopAsync(timeout.Token);
        }
        catch (Exception e)
        {
            Log.CleanupFailed(logger, e);
        }
    }

    /// <summary>What <c>sluice serve</c> prints on stdout once it listens: portals, targets, LUNs, client URLs, <c>ready</c>.</summary>
    public static string Banner(ServerConfig config, IReadOnlyList<IPEndPoint> endpoints, string? controlSocket = null)
    {
        // LocalEndpoints follow the order of config.Portals; without a match, every endpoint is group 1.
        var bound = new List<(IPEndPoint EndPoint, ushort Group)>();
        for (int i = 0; i < endpoints.Count; i++)
        {
            ushort group = endpoints.Count == config.Portals.Count ? config.Portals[i].GroupTag : (ushort)1;
            bound.Add((endpoints[i], group));
        }

        var text = new System.Text.StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        foreach (var (endPoint, group) in bound)
            text.Append(inv, $"portal {Format(endPoint)} group {group}\n");
        foreach (var target in config.Targets)
        {
            text.Append(inv, $"target {target.Name}");
            if (target.Chap is not null)
                text.Append(inv, $" chap-user {target.Chap.User}{(target.MutualChap is null ? "" : " mutual")}");
            if (target.AllowedInitiators.Count > 0)
                text.Append(inv, $" allow {string.Join(',', target.AllowedInitiators)}");
            text.Append('\n');
            foreach (var lun in target.Luns)
            {
                text.Append(inv, $"lun {lun.Number} {lun.Backend} block-size {lun.BlockSize} {(lun.ReadOnly ? "read-only" : "read-write")}\n");
            }
            foreach (var (endPoint, group) in bound)
            {
                if (target.PortalGroups.Count > 0 && !target.PortalGroups.Contains(group))
                    continue;
                foreach (var lun in target.Luns)
                    text.Append(inv, $"url {Url(endPoint, target.Name, lun.Number)}\n");
            }
        }
        if (controlSocket is not null)
            text.Append(inv, $"control {controlSocket}\n");
        text.Append("ready\n");
        return text.ToString();
    }

    /// <summary>
    /// The libiscsi-style URL a client on this machine uses: <c>iscsi://HOST:PORT/IQN/LUN</c>.
    /// A wildcard listen address is shown as the loopback address of its family.
    /// </summary>
    public static string Url(IPEndPoint endPoint, string targetName, ulong lun)
    {
        var address = endPoint.Address;
        if (address.Equals(IPAddress.Any))
            address = IPAddress.Loopback;
        else if (address.Equals(IPAddress.IPv6Any))
            address = IPAddress.IPv6Loopback;
        return string.Create(CultureInfo.InvariantCulture, $"iscsi://{Format(new IPEndPoint(address, endPoint.Port))}/{targetName}/{lun}");
    }

    private static string Format(IPEndPoint endPoint) =>
        endPoint.AddressFamily == AddressFamily.InterNetworkV6
            ? string.Create(CultureInfo.InvariantCulture, $"[{endPoint.Address}]:{endPoint.Port}")
            : string.Create(CultureInfo.InvariantCulture, $"{endPoint.Address}:{endPoint.Port}");

    private static ServerConfig Redacted(ServerConfig config)
    {
        var copy = ConfigLoader.Parse(ConfigLoader.ToJson(config), config.DataDir);
        copy.DiscoveryChap?.Secret = "(redacted)";
        foreach (var target in copy.Targets)
        {
            target.Chap?.Secret = "(redacted)";
            target.MutualChap?.Secret = "(redacted)";
        }
        return copy;
    }
}
