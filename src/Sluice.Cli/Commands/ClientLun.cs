using Sluice.Initiator;

namespace Sluice.Cli.Commands;

/// <summary>Opening a LUN for a client command, with one clear line when the LUN isn't a disk there.</summary>
internal static class ClientLun
{
    /// <summary>
    /// Logs in to the URL's target and opens its LUN. A LUN the target doesn't have, or one that
    /// isn't a block device (tgt's LUN 0 controller), becomes an <see cref="IOException"/> that says
    /// so and lists the LUNs the target does report; the session is logged out then.
    /// </summary>
    public static async Task<OpenLun> OpenAsync(IscsiUrl url, IscsiClientOptions options, CancellationToken ct)
    {
        var session = await IscsiSession.ConnectAsync(url, options, ct);
        int number = url.Lun ?? 0;
        try
        {
            return new OpenLun(await IscsiLun.OpenAsync(session, number, ct), session);
        }
        catch (ScsiCommandException e)
        {
            string why = await DescribeAsync(session, number, e, ct);
            await session.DisposeAsync();
            throw new IOException($"{url}: {why}", e);
        }
        catch
        {
            await session.DisposeAsync();
            throw;
        }
    }

    /// <summary>"no such LUN (the target has LUN 0, 1)": what a client command says for a LUN that isn't there.</summary>
    public static async Task<string> NoSuchLunAsync(IscsiSession session, CancellationToken ct) => $"no such LUN ({await ListLunsAsync(session, ct)})";

    private static async Task<string> ListLunsAsync(IscsiSession session, CancellationToken ct)
    {
        try
        {
            var list = await IscsiLun.ReportLunsAsync(session, ct);
            return list.Count == 0 ? "the target reports no LUNs" : "the target has LUN " + string.Join(", ", list);
        }
        catch (ScsiCommandException)
        {
            return "REPORT LUNS failed";
        }
    }

    private static async Task<string> DescribeAsync(IscsiSession session, int number, ScsiCommandException e, CancellationToken ct)
    {
        string luns = await ListLunsAsync(session, ct);

        // SPC-4 §6.6.2: peripheral qualifier 3 = no logical unit at this LUN.
        if (e.Asc == 0x25)
        {
            return $"no such LUN ({luns})";
        }

        try
        {
            var raw = new byte[96];
            var r = await session.ExecuteAsync(number, new byte[] { 0x12, 0, 0, 0, 96, 0 }, default, raw, ct);
            if (r.IsGood)
            {
                var inq = StandardInquiry.Parse(raw);
                if (inq.PeripheralQualifier == 3)
                {
                    return $"no such LUN ({luns})";
                }

                if (inq.DeviceType != 0)
                {
                    return $"LUN {number} is a {StandardInquiry.DescribeDeviceType(inq.DeviceType).ToLowerInvariant()}, not a disk ({luns})";
                }
            }
        }
        catch (IOException)
        {
        }

        return $"LUN {number}: {e.Message}";
    }
}

/// <summary>A LUN and the session opened for it; disposing logs out.</summary>
internal sealed class OpenLun(IscsiLun lun, IscsiSession session) : IAsyncDisposable
{
    public IscsiLun Lun => lun;

    public IscsiSession Session => session;

    public async ValueTask DisposeAsync()
    {
        await lun.DisposeAsync();
        await session.DisposeAsync();
    }
}
