namespace Sluice.Initiator.Tests;

/// <summary>Every library call against tgtd, the reference target.</summary>
public sealed class TgtdInteropTests(TgtdFixture tgt) : IClassFixture<TgtdFixture>
{
    private static readonly IscsiClientOptions Options = new() { NopInterval = TimeSpan.FromSeconds(2) };

    private async Task<IscsiLun> OpenAsync(IscsiClientOptions? options = null)
    {
        Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
        return await IscsiLun.OpenAsync(tgt.Url(), options ?? Options);
    }

    [SkippableFact]
    public async Task Discovery_SendTargets_ListsTargetsWithPortal()
    {
        Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
        var targets = await IscsiDiscovery.SendTargetsAsync(tgt.Host, tgt.Port, Options);
        var plain = Assert.Single(targets, t => t.TargetName == TgtdFixture.PlainTarget);
        Assert.Contains(plain.Addresses, a => a.Port == tgt.Port && a.Host == "127.0.0.1");
    }

    [SkippableFact]
    public async Task Open_ReadsCapacityAndInquiry()
    {
        await using var lun = await OpenAsync();
        Assert.Equal(512, lun.BlockSize);
        Assert.Equal(TgtdFixture.DiskBytes, lun.SizeBytes);
        var inq = await lun.InquiryAsync();
        Assert.Equal(0, inq.DeviceType);
        Assert.False(string.IsNullOrEmpty(inq.Vendor));
        var pages = await lun.SupportedVpdPagesAsync();
        Assert.Contains((byte)0x83, pages);
        var ids = Designator.ParsePage(await lun.InquiryAsync(0x83));
        Assert.NotEmpty(ids);
        var cap = await lun.ReadCapacityAsync();
        Assert.Equal(TgtdFixture.DiskBytes / 512, cap.BlockCount);
        await lun.TestUnitReadyAsync();
        var luns = await lun.ReportLunsAsync();
        Assert.Contains(0, luns);
        Assert.Contains(1, luns);
    }

    [SkippableFact]
    public async Task WriteRead_64MiB_RoundTripsByteForByte()
    {
        await using var lun = await OpenAsync();
        var data = new byte[64 << 20];
        new Random(42).NextBytes(data);
        await lun.WriteAsync(0, data);
        var back = new byte[data.Length];
        await lun.ReadAsync(0, back);
        Assert.True(data.AsSpan().SequenceEqual(back));
    }

    [SkippableFact]
    public async Task ManyCommandsInFlight_AllComplete()
    {
        await using var lun = await OpenAsync();
        var data = new byte[4096 * 64];
        new Random(7).NextBytes(data);
        var writes = Enumerable.Range(0, 64).Select(i => lun.WriteAsync(1000 + (i * 8), data.AsMemory(i * 4096, 4096)).AsTask());
        await Task.WhenAll(writes);
        var back = new byte[data.Length];
        var reads = Enumerable.Range(0, 64).Select(i => lun.ReadAsync(1000 + (i * 8), back.AsMemory(i * 4096, 4096)).AsTask());
        await Task.WhenAll(reads);
        Assert.True(data.AsSpan().SequenceEqual(back));
    }

    [SkippableFact]
    public async Task ScatterGatherRead_FillsSegmentsInOrder()
    {
        await using var lun = await OpenAsync();
        var data = new byte[8192];
        new Random(3).NextBytes(data);
        await lun.WriteAsync(5000, data);
        var a = new byte[1000];
        var b = new byte[3000];
        var c = new byte[4192];
        await lun.ReadAsync(5000, new Memory<byte>[] { a, b, c });
        Assert.True(data.AsSpan(0, 1000).SequenceEqual(a));
        Assert.True(data.AsSpan(1000, 3000).SequenceEqual(b));
        Assert.True(data.AsSpan(4000).SequenceEqual(c));
    }

    [SkippableFact]
    public async Task WriteFua_SyncCache_WriteSame_CompareAndWrite()
    {
        await using var lun = await OpenAsync();
        var block = new byte[512];
        block.AsSpan().Fill(0xAB);
        await lun.WriteAsync(20000, block, fua: true);
        await lun.SynchronizeCacheAsync();
        await lun.WriteSameAsync(20001, 16, block);
        var back = new byte[17 * 512];
        await lun.ReadAsync(20000, back);
        Assert.All(back, b => Assert.Equal(0xAB, b));

        var next = new byte[512];
        next.AsSpan().Fill(0xCD);
        try
        {
            Assert.True(await lun.CompareAndWriteAsync(20000, block, next));
        }
        catch (ScsiCommandException e) when (e.SenseKey == SenseKey.IllegalRequest && e.Asc == 0x20)
        {
            return; // tgt's rdwr back end has no COMPARE AND WRITE
        }

        Assert.False(await lun.CompareAndWriteAsync(20000, block, next)); // now holds 0xCD
        var one = new byte[512];
        await lun.ReadAsync(20000, one);
        Assert.All(one, b => Assert.Equal(0xCD, b));
    }

    [SkippableFact]
    public async Task Unmap_SucceedsOrReportsIllegalRequest()
    {
        await using var lun = await OpenAsync();
        try
        {
            await lun.UnmapAsync([new BlockRange(30000, 8), new BlockRange(30100, 8)]);
        }
        catch (ScsiCommandException e)
        {
            Assert.Equal(SenseKey.IllegalRequest, e.SenseKey);
        }
    }

    [SkippableFact]
    public async Task ReadBeyondEnd_ThrowsScsiException_WithDecodedSense()
    {
        await using var lun = await OpenAsync();
        var cdb = new byte[10];
        cdb[0] = 0x28;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), (uint)lun.BlockCount);
        cdb[8] = 1;
        var r = await lun.ExecuteAsync(cdb, default, new byte[512]);
        Assert.Equal(ScsiStatus.CheckCondition, r.Status);
        var e = new ScsiCommandException(0x28, r);
        Assert.Equal(SenseKey.IllegalRequest, e.SenseKey);
        Assert.Equal(0x21, e.Asc);
        Assert.Contains("out of range", e.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Stream_UnalignedWriteAndRead_ReadModifyWrite()
    {
        await using var lun = await OpenAsync();
        await using var stream = lun.AsStream();
        var data = new byte[3000];
        new Random(11).NextBytes(data);
        stream.Position = (40000 * 512) + 100;
        await stream.WriteAsync(data);
        stream.Position = (40000 * 512) + 100;
        var back = new byte[3000];
        int n = await stream.ReadAsync(back);
        Assert.Equal(3000, n);
        Assert.True(data.AsSpan().SequenceEqual(back));
        Assert.Equal(TgtdFixture.DiskBytes, stream.Length);
    }

    [SkippableFact]
    public async Task Chap_OneWay_LogsIn_AndWrongSecretFails()
    {
        Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
        var good = Options with { ChapUser = TgtdFixture.ChapUser, ChapSecret = TgtdFixture.ChapSecret };
        await using (var lun = await IscsiLun.OpenAsync(tgt.Url(TgtdFixture.ChapTarget), good))
        {
            await lun.TestUnitReadyAsync();
        }

        var bad = Options with { ChapUser = TgtdFixture.ChapUser, ChapSecret = "wrongsecret1" };
        var e = await Assert.ThrowsAsync<LoginException>(() => IscsiLun.OpenAsync(tgt.Url(TgtdFixture.ChapTarget), bad));
        Assert.Equal(2, e.StatusClass);

        var none = await Assert.ThrowsAnyAsync<IOException>(() => IscsiLun.OpenAsync(tgt.Url(TgtdFixture.ChapTarget), Options));
        Assert.Contains("authentication", none.Message, StringComparison.OrdinalIgnoreCase);
    }

    [SkippableFact]
    public async Task Chap_Mutual_LogsIn_AndWrongTargetSecretFails()
    {
        Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
        var good = Options with
        {
            ChapUser = TgtdFixture.ChapUser,
            ChapSecret = TgtdFixture.ChapSecret,
            TargetChapUser = TgtdFixture.TargetUser,
            TargetChapSecret = TgtdFixture.TargetSecret,
        };
        await using (var lun = await IscsiLun.OpenAsync(tgt.Url(TgtdFixture.MutualTarget), good))
        {
            await lun.TestUnitReadyAsync();
        }

        var e = await Assert.ThrowsAsync<LoginException>(() => IscsiLun.OpenAsync(tgt.Url(TgtdFixture.MutualTarget), good with { TargetChapSecret = "notthesecret" }));
        Assert.Contains("mutual", e.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task UnknownTarget_LoginException_NotFound()
    {
        Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
        var e = await Assert.ThrowsAsync<LoginException>(() => IscsiSession.ConnectAsync(tgt.Url("iqn.2026-11.dev.sluice:nope"), Options));
        Assert.Equal(0x02, e.StatusClass);
        Assert.Equal(0x03, e.StatusDetail);
        Assert.Contains("not found", e.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Cancellation_BeforeCompletion_ThrowsOperationCanceled()
    {
        await using var lun = await OpenAsync();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => lun.ReadAsync(0, new byte[512], cts.Token).AsTask());
        await lun.TestUnitReadyAsync();
    }
}
