using System.Text.RegularExpressions;
using Sluice.Interop.Tests.Infrastructure;

namespace Sluice.Interop.Tests;

/// <summary>
/// The target driven by real initiators: libiscsi's command line tools and qemu-img's iscsi
/// block driver. Each test runs against sluice and against tgt (the reference).
/// </summary>
public abstract partial class InteropTests<TFixture>(TFixture target) where TFixture : TargetFixture
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(60);

    protected TFixture Target { get; } = target;

    private void SkipUnlessAvailable(params string[] tools)
    {
        Skip.If(Target.SkipReason is not null, Target.SkipReason);
        string? missing = Tools.Missing(tools);
        Skip.If(missing is not null, missing);
    }

    private static Task<ToolResult> Run(string tool, params string[] args) =>
        ProcessRunner.RunAsync(Tools.Find(tool)!, args, ToolTimeout);

    private void AssertSucceeded(ToolResult result) =>
        Assert.True(result.Succeeded, $"{result}\n--- {Target.Kind} server\n{Target.ServerLog}");

    private void AssertRefused(ToolResult result, string why)
    {
        Assert.False(result.TimedOut, $"hung instead of refusing ({why})\n{result}");
        Assert.True(result.ExitCode != 0, $"expected a refused login ({why})\n{result}\n--- {Target.Kind} server\n{Target.ServerLog}");
    }

    [SkippableFact]
    public async Task IscsiLs_Portal_ListsTargetAndDiskLun()
    {
        SkipUnlessAvailable("iscsi-ls");
        var r = await Run("iscsi-ls", "-s", "-i", TargetFixture.InitiatorName, Target.Main.PortalUrl());
        AssertSucceeded(r);
        Assert.Contains($"Target:{Target.Main.Iqn} Portal:{Target.Main.Portal}", r.StdOut, StringComparison.Ordinal);
        Assert.Matches($@"Lun:{Target.Main.Lun}\s+Type:DIRECT_ACCESS", r.StdOut);
    }

    [SkippableFact]
    public async Task IscsiInq_Standard_DirectAccessDevice()
    {
        SkipUnlessAvailable("iscsi-inq");
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName, Target.Main.Url());
        AssertSucceeded(r);
        Assert.Contains("Peripheral Qualifier:CONNECTED", r.StdOut, StringComparison.Ordinal);
        Assert.Contains("Peripheral Device Type:DIRECT_ACCESS", r.StdOut, StringComparison.Ordinal);
        Assert.Matches(@"Vendor:\S", r.StdOut);
        Assert.Matches(@"Product:\S", r.StdOut);
    }

    [SkippableFact]
    public async Task IscsiInq_Vpd80_HasUnitSerialNumber()
    {
        SkipUnlessAvailable("iscsi-inq");
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName, "-e", "1", "-c", "128", Target.Main.Url());
        AssertSucceeded(r);
        var serial = SerialRegex().Match(r.StdOut);
        Assert.True(serial.Success, r.ToString());
        Assert.NotEmpty(serial.Groups[1].Value.Trim());
    }

    [SkippableFact]
    public async Task IscsiInq_Vpd83_HasDeviceDesignators()
    {
        SkipUnlessAvailable("iscsi-inq");
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName, "-e", "1", "-c", "131", Target.Main.Url());
        AssertSucceeded(r);
        Assert.Contains("DEVICE_IDENTIFICATION", r.StdOut, StringComparison.Ordinal);
        Assert.Contains("DEVICE DESIGNATOR #0", r.StdOut, StringComparison.Ordinal);
        Assert.Contains("Association:(0) LOGICAL_UNIT", r.StdOut, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task IscsiInq_SupportedVpdPages_ListsMandatoryPages()
    {
        SkipUnlessAvailable("iscsi-inq");
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName, "-e", "1", "-c", "0", Target.Main.Url());
        AssertSucceeded(r);
        Assert.Contains("Page:0x80 UNIT_SERIAL_NUMBER", r.StdOut, StringComparison.Ordinal);
        Assert.Contains("Page:0x83 DEVICE_IDENTIFICATION", r.StdOut, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task ReadCapacity16_ReportsLunSize()
    {
        SkipUnlessAvailable("iscsi-readcapacity16");
        var r = await Run("iscsi-readcapacity16", "-i", TargetFixture.InitiatorName, Target.Main.Url());
        AssertSucceeded(r);
        Assert.Contains("LOGICAL BLOCK LENGTH IN BYTES:512", r.StdOut, StringComparison.Ordinal);
        Assert.Contains($"RETURNED LOGICAL BLOCK ADDRESS:{(TargetFixture.MainLunBytes / 512) - 1}", r.StdOut, StringComparison.Ordinal);
        Assert.Contains($"Total size:{TargetFixture.MainLunBytes}", r.StdOut, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task IscsiInq_HeaderDigestCrc32c_Works()
    {
        SkipUnlessAvailable("iscsi-inq");
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName, Target.Main.Url(query: "header_digest=crc32c"));
        AssertSucceeded(r);
        Assert.Contains("Peripheral Device Type:DIRECT_ACCESS", r.StdOut, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task QemuImg_Convert64MiBInAndOut_ByteIdentical()
    {
        SkipUnlessAvailable("qemu-img");
        Skip.If(!QemuHasIscsiDriver(), "qemu-img has no iscsi driver (apt-get install qemu-block-extra)");
        string dir = Directory.CreateTempSubdirectory("sluice-qemu-").FullName;
        try
        {
            const int size = 64 * 1024 * 1024;
            byte[] image = new byte[size];
            new Random(20261129).NextBytes(image);
            string input = Path.Combine(dir, "img.raw");
            string back = Path.Combine(dir, "back.raw");
            await File.WriteAllBytesAsync(input, image);

            var write = await ProcessRunner.RunAsync(Tools.Find("qemu-img")!,
                ["convert", "-n", "-f", "raw", "-O", "raw", input, Target.Main.Url()], TimeSpan.FromSeconds(120));
            AssertSucceeded(write);
            var read = await ProcessRunner.RunAsync(Tools.Find("qemu-img")!,
                ["convert", "-f", "raw", "-O", "raw", Target.Main.Url(), back], TimeSpan.FromSeconds(120));
            AssertSucceeded(read);

            await using var fs = File.OpenRead(back);
            Assert.Equal(TargetFixture.MainLunBytes, fs.Length);
            byte[] got = new byte[size];
            await fs.ReadExactlyAsync(got);
            int firstDifference = image.AsSpan().CommonPrefixLength(got);
            Assert.True(firstDifference == size, $"read back differs from what was written at byte {firstDifference}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static bool QemuHasIscsiDriver() =>
        Directory.Exists("/usr/lib/x86_64-linux-gnu/qemu")
            ? Directory.EnumerateFiles("/usr/lib/x86_64-linux-gnu/qemu", "block-iscsi.so").Any()
            : Directory.EnumerateFiles("/usr/lib", "block-iscsi.so", SearchOption.AllDirectories).Any();

    [SkippableFact]
    public async Task Chap_NoCredentials_LoginRefused()
    {
        SkipUnlessAvailable("iscsi-inq");
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName, Target.Chap.Url());
        AssertRefused(r, "CHAP target, no credentials");
    }

    [SkippableFact]
    public async Task Chap_WrongSecret_LoginRefused()
    {
        SkipUnlessAvailable("iscsi-inq");
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName, Target.Chap.Url(TargetFixture.ChapUser, "wrong-secret-99"));
        AssertRefused(r, "CHAP target, wrong secret");
        Assert.Contains("Authentication failure", r.StdErr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Chap_RightSecret_IscsiLsListsLun()
    {
        SkipUnlessAvailable("iscsi-ls");
        var r = await Run("iscsi-ls", "-s", "-i", TargetFixture.InitiatorName, Target.Chap.PortalUrl(TargetFixture.ChapUser, TargetFixture.ChapSecret));
        AssertSucceeded(r);
        Assert.Contains($"Target:{Target.Chap.Iqn}", r.StdOut, StringComparison.Ordinal);
        Assert.Matches($@"Lun:{Target.Chap.Lun}\s+Type:DIRECT_ACCESS", r.StdOut);
    }

    [SkippableFact]
    public async Task MutualChap_RightTargetSecret_LoginAccepted()
    {
        SkipUnlessAvailable("iscsi-inq");
        string query = $"target_user={TargetFixture.MutualUser}&target_password={TargetFixture.MutualSecret}";
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName,
            Target.MutualChap.Url(TargetFixture.ChapUser, TargetFixture.ChapSecret, query));
        AssertSucceeded(r);
        Assert.Contains("Peripheral Device Type:DIRECT_ACCESS", r.StdOut, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task MutualChap_TargetProvesWrongSecret_InitiatorRefuses()
    {
        SkipUnlessAvailable("iscsi-inq");
        string query = $"target_user={TargetFixture.MutualUser}&target_password=not-the-target-secret";
        var r = await Run("iscsi-inq", "-i", TargetFixture.InitiatorName,
            Target.MutualChap.Url(TargetFixture.ChapUser, TargetFixture.ChapSecret, query));
        AssertRefused(r, "the target's CHAP_R can't match a secret it doesn't know");
        Assert.Contains("Invalid CHAP_R", r.StdErr, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"Unit Serial Number:\[(.*)\]")]
    private static partial Regex SerialRegex();
}

[Collection(TgtCollection.Name)]
public sealed class TgtInteropTests(TgtTargetFixture target) : InteropTests<TgtTargetFixture>(target);

[Collection(SluiceCollection.Name)]
public sealed class SluiceInteropTests(SluiceTargetFixture target) : InteropTests<SluiceTargetFixture>(target);
