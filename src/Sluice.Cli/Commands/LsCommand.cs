using System.CommandLine;
using System.Globalization;
using Sluice.Initiator;

namespace Sluice.Cli.Commands;

/// <summary><c>sluice ls iscsi://host[:port]</c>: the portal's targets and, per LUN, type, size and identity (like <c>iscsi-ls -s</c>).</summary>
internal static class LsCommand
{
    private static readonly Argument<string> s_url = new("url") { Description = "Portal to discover: iscsi://[user[%secret]@]host[:port]" };
    private static readonly Option<string> s_chap = ClientCommon.ChapOption();
    private static readonly Option<string> s_mutual = ClientCommon.MutualChapOption();
    private static readonly Option<string> s_initiator = ClientCommon.InitiatorNameOption();
    private static readonly Option<bool> s_targetsOnly = new("--targets-only") { Description = "List targets and portals only; do not log in to them." };

    public static Command Create()
    {
        var command = new Command("ls", "List the targets of a portal (SendTargets) and their LUNs with size, block size, vendor and product.")
        {
            s_url, s_chap, s_mutual, s_initiator, s_targetsOnly,
        };
        command.SetAction((parse, ct) => ClientRunner.RunAsync("ls", parse.InvocationConfiguration.Error,
            () => RunAsync(parse, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct)));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var url = ClientCommon.ParseUrl(parse.GetValue(s_url)!, needTarget: false);
        var options = ClientCommon.Options(parse, s_chap, s_mutual, s_initiator);
        options = options with { ChapUser = options.ChapUser ?? url.User, ChapSecret = options.ChapSecret ?? url.Secret };
        var targets = await IscsiDiscovery.SendTargetsAsync(url.Host, url.Port, options, ct);
        int failures = 0;
        foreach (var target in targets)
        {
            if (url.Target is not null && target.TargetName != url.Target)
            {
                continue;
            }

            await output.WriteLineAsync($"Target: {target.TargetName}");
            foreach (var a in target.Addresses)
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"  Portal: {(a.Host.Contains(':', StringComparison.Ordinal) ? "[" + a.Host + "]" : a.Host)}:{a.Port}{(a.PortalGroupTag >= 0 ? "," + a.PortalGroupTag : "")}"));
            }

            if (parse.GetValue(s_targetsOnly))
            {
                continue;
            }

            try
            {
                await using var session = await IscsiSession.ConnectAsync(url.Host, url.Port, target.TargetName, options, ct);
                foreach (int lun in await IscsiLun.ReportLunsAsync(session, ct))
                {
                    await output.WriteLineAsync(await DescribeLunAsync(session, lun, ct));
                }
            }
            catch (Exception e) when (e is IOException or TimeoutException)
            {
                failures++;
                await output.WriteLineAsync($"  (cannot list LUNs: {e.Message})");
            }
        }

        if (targets.Count == 0)
        {
            await error.WriteLineAsync($"sluice ls: {url.Host}:{url.Port} reported no targets");
        }

        return failures == 0 ? ExitCodes.Success : ExitCodes.Failure;
    }

    private static async Task<string> DescribeLunAsync(IscsiSession session, int lun, CancellationToken ct)
    {
        var cdb = new byte[] { 0x12, 0, 0, 0, 96, 0 };
        var data = new byte[96];
        var r = await session.ExecuteAsync(lun, cdb, default, data, ct);
        if (!r.IsGood)
        {
            return string.Create(CultureInfo.InvariantCulture, $"  Lun: {lun,-4} (INQUIRY failed: {new ScsiCommandException(0x12, r).Description})");
        }

        var inq = StandardInquiry.Parse(data);
        var line = string.Create(CultureInfo.InvariantCulture,
            $"  Lun: {lun,-4} Type: {StandardInquiry.DescribeDeviceType(inq.DeviceType)}  Vendor: {inq.Vendor}  Product: {inq.Product}  Rev: {inq.Revision}");
        if (inq.DeviceType != 0)
        {
            return line;
        }

        try
        {
            await using var l = await IscsiLun.OpenAsync(session, lun, ct);
            return line + string.Create(CultureInfo.InvariantCulture,
                $"  Size: {ClientCommon.FormatBytes(l.SizeBytes)} ({l.BlockCount} x {l.BlockSize})");
        }
        catch (ScsiCommandException e)
        {
            return line + $"  (READ CAPACITY failed: {e.Description})";
        }
    }
}
