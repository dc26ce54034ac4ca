using System.Buffers.Binary;
using System.CommandLine;
using System.Globalization;
using Sluice.Initiator;

namespace Sluice.Cli.Commands;

/// <summary><c>sluice inq URL</c>: standard INQUIRY, the VPD pages decoded, and the capacity.</summary>
internal static class InqCommand
{
    private static readonly Argument<string> s_url = new("url") { Description = "LUN to inquire: iscsi://[user[%secret]@]host[:port]/target-iqn/lun" };
    private static readonly Option<string> s_chap = ClientCommon.ChapOption();
    private static readonly Option<string> s_mutual = ClientCommon.MutualChapOption();
    private static readonly Option<string> s_initiator = ClientCommon.InitiatorNameOption();

    public static Command Create()
    {
        var command = new Command("inq", "Show a LUN's standard INQUIRY data, its VPD pages (serial, identifiers, block limits, provisioning) and its capacity.")
        {
            s_url, s_chap, s_mutual, s_initiator,
        };
        command.SetAction((parse, ct) => ClientRunner.RunAsync("inq", parse.InvocationConfiguration.Error,
            () => RunAsync(parse, parse.InvocationConfiguration.Output, ct)));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, TextWriter o, CancellationToken ct)
    {
        var url = ClientCommon.ParseUrl(parse.GetValue(s_url)!, needTarget: true);
        var options = ClientCommon.Options(parse, s_chap, s_mutual, s_initiator);
        await using var session = await IscsiSession.ConnectAsync(url, options, ct);
        int lunNumber = url.Lun ?? 0;
        var raw = new byte[255];
        var r = await session.ExecuteAsync(lunNumber, new byte[] { 0x12, 0, 0, 0, 255, 0 }, default, raw, ct);
        r.ThrowIfError(0x12);
        var inq = StandardInquiry.Parse(raw);
        if (inq.PeripheralQualifier == 3)
        {
            // SPC-4 §6.6.2: the target can't have a logical unit at this LUN.
            throw new IOException($"{url}: {await ClientLun.NoSuchLunAsync(session, ct)}");
        }

        await o.WriteLineAsync("Standard INQUIRY:");
        await o.WriteLineAsync(Inv($"  Peripheral:    qualifier {inq.PeripheralQualifier}, type 0x{inq.DeviceType:x2} ({StandardInquiry.DescribeDeviceType(inq.DeviceType)})"));
        await o.WriteLineAsync(Inv($"  Vendor:        {inq.Vendor}"));
        await o.WriteLineAsync(Inv($"  Product:       {inq.Product}"));
        await o.WriteLineAsync(Inv($"  Revision:      {inq.Revision}"));
        await o.WriteLineAsync(Inv($"  Version:       0x{inq.Version:x2}{(inq.Version >= 6 ? " (SPC-4 or later)" : "")}"));
        await o.WriteLineAsync(Inv($"  Removable:     {(inq.Removable ? "yes" : "no")}   3PC (EXTENDED COPY): {(inq.ThirdPartyCopy ? "yes" : "no")}"));
        if (inq.DeviceType != 0)
        {
            return ExitCodes.Success;
        }

        await using var lun = await IscsiLun.OpenAsync(session, lunNumber, ct);
        IReadOnlyList<byte> pages;
        try
        {
            pages = await lun.SupportedVpdPagesAsync(ct);
        }
        catch (ScsiCommandException)
        {
            pages = [];
        }

        await o.WriteLineAsync("VPD pages: " + string.Join(' ', pages.Select(p => Inv($"0x{p:x2}"))));
        foreach (byte page in pages)
        {
            byte[] d;
            try
            {
                d = await lun.InquiryAsync(page, ct);
            }
            catch (ScsiCommandException e)
            {
                await o.WriteLineAsync(Inv($"  page 0x{page:x2}: {e.Description}"));
                continue;
            }

            switch (page)
            {
                case 0x80:
                    await o.WriteLineAsync("Unit Serial Number (0x80): " + System.Text.Encoding.ASCII.GetString(d.AsSpan(Math.Min(4, d.Length))).Trim(' ', '\0'));
                    break;
                case 0x83:
                    await o.WriteLineAsync("Device Identification (0x83):");
                    foreach (var id in Designator.ParsePage(d))
                    {
                        await o.WriteLineAsync($"  {(id.Association switch { 0 => "LU", 1 => "port", _ => "target" })} {id}");
                    }

                    break;
                case 0xB0:
                    var bl = BlockLimits.Parse(d);
                    await o.WriteLineAsync("Block Limits (0xB0):");
                    await o.WriteLineAsync(Inv($"  Max transfer:   {Blocks(bl.MaxTransferBlocks, lun.BlockSize)}"));
                    await o.WriteLineAsync(Inv($"  Opt transfer:   {Blocks(bl.OptimalTransferBlocks, lun.BlockSize)}"));
                    await o.WriteLineAsync(Inv($"  Max unmap:      {Blocks(bl.MaxUnmapBlocks, lun.BlockSize)}, {bl.MaxUnmapDescriptors} descriptors"));
                    await o.WriteLineAsync(Inv($"  Max write same: {Blocks(bl.MaxWriteSameBlocks, lun.BlockSize)}"));
                    await o.WriteLineAsync(Inv($"  Max compare and write: {bl.MaxCompareAndWriteBlocks} blocks"));
                    break;
                case 0xB1:
                    if (d.Length >= 6)
                    {
                        int rate = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(4));
                        await o.WriteLineAsync("Block Device Characteristics (0xB1): " + (rate == 1 ? "non-rotating medium" : rate == 0 ? "rotation rate not reported" : Inv($"{rate} rpm")));
                    }

                    break;
                case 0xB2:
                    var lbp = LogicalBlockProvisioning.Parse(d);
                    await o.WriteLineAsync("Logical Block Provisioning (0xB2):");
                    await o.WriteLineAsync(Inv($"  UNMAP: {YesNo(lbp.Unmap)}  WRITE SAME(16) UNMAP: {YesNo(lbp.WriteSame16Unmap)}  WRITE SAME(10) UNMAP: {YesNo(lbp.WriteSame10Unmap)}"));
                    await o.WriteLineAsync(Inv($"  Unmapped blocks read zeros: {YesNo(lbp.ReadZeros)}  Provisioning: {lbp.ProvisioningType switch { 1 => "resource", 2 => "thin", _ => "full/not reported" }}"));
                    break;
                case 0x00:
                    break;
                default:
                    await o.WriteLineAsync(Inv($"Page 0x{page:x2}: {d.Length} bytes"));
                    break;
            }
        }

        var cap = await lun.ReadCapacityAsync(ct);
        await o.WriteLineAsync("Capacity:");
        await o.WriteLineAsync(Inv($"  {ClientCommon.FormatBytes(cap.Bytes)} ({cap.Bytes} bytes) = {cap.BlockCount} blocks of {cap.BlockSize} bytes"));
        await o.WriteLineAsync(Inv($"  Physical block: {cap.BlockSize << cap.PhysicalBlockExponent} bytes   Thin provisioning (LBPME): {YesNo(cap.ThinProvisioned)}   LBPRZ: {YesNo(cap.ReadsZerosAfterUnmap)}"));
        return ExitCodes.Success;
    }

    private static string Blocks(long blocks, int blockSize) =>
        blocks == 0 ? "not reported" : Inv($"{blocks} blocks ({ClientCommon.FormatBytes((double)blocks * blockSize)})");

    private static string YesNo(bool b) => b ? "yes" : "no";

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
