using System.Buffers.Binary;
using Sluice.Initiator;
using Sluice.Interop.Tests.Infrastructure;

namespace Sluice.Interop.Tests;

/// <summary>
/// Every public call of the Sluice.Initiator library against `sluice serve` and tgtd, with and
/// without CRC32C digests, without CHAP, with one-way and with mutual CHAP, and on the thin LUN
/// (UNMAP, WRITE SAME with UNMAP, GET LBA STATUS). What a target doesn't implement must surface as
/// a <see cref="ScsiCommandException"/> with ILLEGAL REQUEST and its decoded sense.
/// </summary>
public abstract class LibraryTests<TFixture>(TFixture target) where TFixture : TargetFixture
{
    protected TFixture Target { get; } = target;

    private (TargetEndpoint Endpoint, long Bytes, IscsiClientOptions Options) Pick(string kind, bool digests)
    {
        var options = new IscsiClientOptions { InitiatorName = TargetFixture.InitiatorName };
        if (digests)
            options = options with { HeaderDigest = DigestPreference.Crc32C, DataDigest = DigestPreference.Crc32C };
        var chap = options with { ChapUser = TargetFixture.ChapUser, ChapSecret = TargetFixture.ChapSecret };
        return kind switch
        {
            "plain" => (Target.Main, TargetFixture.MainLunBytes, options),
            "thin" => (Target.Thin, TargetFixture.ThinLunBytes, options),
            "chap" => (Target.Chap, 8L << 20, chap),
            "mutual" => (Target.MutualChap, 8L << 20, chap with { TargetChapUser = TargetFixture.MutualUser, TargetChapSecret = TargetFixture.MutualSecret }),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
    }

    [SkippableTheory]
    [InlineData("plain", false)]
    [InlineData("thin", false)]
    [InlineData("thin", true)]
    [InlineData("chap", false)]
    [InlineData("chap", true)]
    [InlineData("mutual", true)]
    public async Task EveryCall_WorksOrReportsDecodedSense(string kind, bool digests)
    {
        Skip.If(Target.SkipReason is not null, Target.SkipReason);
        var (endpoint, bytes, options) = Pick(kind, digests);
        string why = $"{Target.Kind} {kind} digests={digests}";

        // Discovery, with the same digests and CHAP (neither target authenticates itself to a discovery session).
        var targets = await IscsiDiscovery.SendTargetsAsync(endpoint.Host, endpoint.Port, options with { TargetChapUser = null, TargetChapSecret = null });
        var found = Assert.Single(targets, t => t.TargetName == endpoint.Iqn);
        Assert.Contains(found.Addresses, a => a.Port == endpoint.Port);

        await using var session = await IscsiSession.ConnectAsync(IscsiUrl.Parse(endpoint.Url()), options);
        Assert.Equal(endpoint.Iqn, session.TargetName);
        Assert.True(session.IsConnected);
        Assert.Equal(digests, session.Parameters.HeaderDigestCrc32C);
        Assert.Equal(digests, session.Parameters.DataDigestCrc32C);
        var lun = await IscsiLun.OpenAsync(session, endpoint.Lun);

        // Identity: INQUIRY, VPD, READ CAPACITY, TEST UNIT READY, REPORT LUNS.
        var inq = await lun.InquiryAsync();
        Assert.Equal(0, inq.PeripheralQualifier);
        Assert.Equal(0, inq.DeviceType);
        var pages = await lun.SupportedVpdPagesAsync();
        Assert.Contains((byte)0x80, pages);
        Assert.Contains((byte)0x83, pages);
        Assert.NotEmpty(Designator.ParsePage(await lun.InquiryAsync(0x83)));
        var capacity = await lun.ReadCapacityAsync();
        Assert.Equal(bytes, capacity.Bytes);
        Assert.Equal(bytes, lun.SizeBytes);
        int bs = lun.BlockSize;
        await lun.TestUnitReadyAsync();
        Assert.Contains(endpoint.Lun, await lun.ReportLunsAsync());
        Assert.Equal(await lun.ReportLunsAsync(), await IscsiLun.ReportLunsAsync(session));
        var lbp = pages.Contains((byte)0xB2) ? LogicalBlockProvisioning.Parse(await lun.InquiryAsync(0xB2)) : null;

        // READ and WRITE (FUA too), one buffer and a scatter-gather list.
        var rng = new Random(kind.Length * 2 + (digests ? 1 : 0));
        var data = new byte[256 * 1024];
        rng.NextBytes(data);
        const long lba = 2048;
        long blocks = data.Length / bs;
        await lun.WriteAsync(lba, data.AsMemory(0, data.Length / 2));
        await lun.WriteAsync(lba + (blocks / 2), data.AsMemory(data.Length / 2), fua: true);
        var back = new byte[data.Length];
        await lun.ReadAsync(lba, back);
        Assert.True(data.AsSpan().SequenceEqual(back), why);
        var a = new byte[1000];
        var b = new byte[data.Length - 1000 - 5000];
        var c = new byte[5000];
        await lun.ReadAsync(lba, new Memory<byte>[] { a, b, c });
        Assert.True(data.AsSpan(0, 1000).SequenceEqual(a) && data.AsSpan(1000, b.Length).SequenceEqual(b) && data.AsSpan(data.Length - 5000).SequenceEqual(c), why);

        // SYNCHRONIZE CACHE, whole unit and a range.
        await lun.SynchronizeCacheAsync();
        await lun.SynchronizeCacheAsync(lba, (int)blocks);

        // WRITE SAME.
        var pattern = new byte[bs];
        pattern.AsSpan().Fill(0x5A);
        await lun.WriteSameAsync(lba, 32, pattern);
        var same = new byte[32 * bs];
        await lun.ReadAsync(lba, same);
        Assert.All(same, x => Assert.Equal(0x5A, x));

        // COMPARE AND WRITE: GOOD when the blocks match, false (MISCOMPARE) when they don't.
        var next = new byte[bs];
        next.AsSpan().Fill(0xC3);
        try
        {
            Assert.True(await lun.CompareAndWriteAsync(lba, pattern, next), why);
            Assert.False(await lun.CompareAndWriteAsync(lba, pattern, next), why);
            var one = new byte[bs];
            await lun.ReadAsync(lba, one);
            Assert.All(one, x => Assert.Equal(0xC3, x));
        }
        catch (ScsiCommandException e)
        {
            AssertUnsupported(e, why);
        }

        // UNMAP and WRITE SAME with UNMAP: done, zeros after when LBPRZ, or ILLEGAL REQUEST.
        await lun.WriteAsync(lba, data);
        bool unmapped = await Try(() => lun.UnmapAsync([new BlockRange(lba, 64), new BlockRange(lba + 128, 64)]), lbp?.Unmap == true, why);
        if (unmapped && capacity.ReadsZerosAfterUnmap)
        {
            var z = new byte[64 * bs];
            await lun.ReadAsync(lba + 128, z);
            Assert.True(!z.AsSpan().ContainsAnyExcept((byte)0), $"{why}: unmapped blocks of an LBPRZ unit did not read zeros");
            await lun.ReadAsync(lba + 64, z);
            Assert.True(data.AsSpan(64 * bs, z.Length).SequenceEqual(z), $"{why}: UNMAP touched blocks between the ranges");
        }

        bool wsUnmapped = await Try(() => lun.WriteSameAsync(lba + 256, 128, new byte[bs], unmap: true), lbp?.WriteSame16Unmap == true, why);
        if (wsUnmapped)
        {
            var z = new byte[128 * bs];
            await lun.ReadAsync(lba + 256, z);
            Assert.True(!z.AsSpan().ContainsAnyExcept((byte)0), $"{why}: WRITE SAME of zeros with UNMAP did not read zeros");
        }

        // GET LBA STATUS: on a thin unit the unmapped range is deallocated, the written one mapped.
        try
        {
            var status = await lun.GetLbaStatusAsync(lba + 128);
            Assert.NotEmpty(status);
            Assert.Equal(lba + 128, status[0].Lba);
            if (kind == "thin")
            {
                // The sparse-file LUNs punch holes; a memory LUN may keep an unmapped block mapped (SBC-3 §4.7.3.1).
                Assert.True(status[0].Deallocated, $"{why}: {status[0]}");
                var mapped = await lun.GetLbaStatusAsync(lba + 64);
                Assert.Equal(0, mapped[0].ProvisioningStatus);
            }
        }
        catch (ScsiCommandException e) when (!capacity.ThinProvisioned)
        {
            AssertUnsupported(e, why);
        }

        // The raw CDB escape hatch: on the LUN, on the session, into a scatter-gather list.
        var cdb = new byte[10];
        cdb[0] = 0x28;
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), (uint)(lba + 64));
        cdb[8] = 2;
        var raw = new byte[2 * bs];
        var r = await session.ExecuteAsync(endpoint.Lun, cdb, default, raw);
        Assert.True(r.IsGood, why);
        Assert.True(data.AsSpan(64 * bs, raw.Length).SequenceEqual(raw), why);
        var s1 = new byte[bs - 12];
        var s2 = new byte[bs + 12];
        r = await session.ExecuteReadAsync(endpoint.Lun, cdb, new Memory<byte>[] { s1, s2 });
        Assert.True(r.IsGood && raw.AsSpan(0, s1.Length).SequenceEqual(s1) && raw.AsSpan(s1.Length).SequenceEqual(s2), why);
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), (uint)lun.BlockCount);
        r = await lun.ExecuteAsync(cdb, default, raw);
        Assert.Equal(ScsiStatus.CheckCondition, r.Status);
        var error = new ScsiCommandException(0x28, r);
        Assert.Equal(SenseKey.IllegalRequest, error.SenseKey);
        Assert.Equal(0x21, error.Asc); // LOGICAL BLOCK ADDRESS OUT OF RANGE
        Assert.Contains("out of range", error.Message, StringComparison.Ordinal);

        // The Stream adapter: unaligned writes and reads, seeking, flush, fixed length.
        await using (var stream = lun.AsStream())
        {
            var text = new byte[3001];
            rng.NextBytes(text);
            long at = (lba * bs) + 777;
            stream.Position = at;
            await stream.WriteAsync(text);
            await stream.FlushAsync();
            Assert.Equal(at + text.Length, stream.Position);
            stream.Seek(at, SeekOrigin.Begin);
            var readBack = new byte[text.Length];
            await stream.ReadExactlyAsync(readBack);
            Assert.True(text.AsSpan().SequenceEqual(readBack), why);
            Assert.Equal(bytes, stream.Seek(0, SeekOrigin.End));
            Assert.Equal(0, await stream.ReadAsync(new byte[10]));
            Assert.Throws<NotSupportedException>(() => stream.SetLength(1));
        }

        // Cancellation leaves the session usable.
        using (var cts = new CancellationTokenSource())
        {
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => lun.ReadAsync(0, new byte[bs], cts.Token).AsTask());
        }

        await lun.TestUnitReadyAsync();
        await lun.DisposeAsync(); // the session is the test's: still connected
        Assert.True(session.IsConnected);
        var counters = session.Counters;
        Assert.NotNull(counters);
        Assert.True(counters.BytesReceived > data.Length, why);
        Assert.Equal(0, counters.HeaderDigestErrors);
        Assert.Equal(0, counters.DataDigestErrors);
        Assert.Equal(0, session.Reconnects);

        // The other ways in: a LUN that owns its session (URL), a session by host, port and name.
        await using (var own = await IscsiLun.OpenAsync(IscsiUrl.Parse(endpoint.Url()), options))
        {
            Assert.Equal(bytes, own.SizeBytes);
            Assert.Equal(endpoint.Lun, own.Lun);
            await own.TestUnitReadyAsync();
        }

        await using (var byName = await IscsiSession.ConnectAsync(endpoint.Host, endpoint.Port, endpoint.Iqn, options))
        {
            Assert.Equal(endpoint.Iqn, byName.TargetName);
            var again = await IscsiLun.OpenAsync(byName, endpoint.Lun);
            var one = new byte[bs];
            await again.ReadAsync(lba + 64, one);
            Assert.True(data.AsSpan(64 * bs, bs).SequenceEqual(one), why);
        }
    }

    /// <summary>Runs an optional command: true when it worked; when it didn't, it must be ILLEGAL REQUEST and not advertised.</summary>
    private static async Task<bool> Try(Func<Task> command, bool advertised, string why)
    {
        try
        {
            await command();
            return true;
        }
        catch (ScsiCommandException e) when (!advertised)
        {
            AssertUnsupported(e, why);
            return false;
        }
    }

    private static void AssertUnsupported(ScsiCommandException e, string why)
    {
        Assert.True(e.SenseKey == SenseKey.IllegalRequest, $"{why}: {e.Message}");
        // INVALID COMMAND OPERATION CODE or INVALID FIELD IN CDB
        Assert.True(e.Asc is 0x20 or 0x24, $"{why}: {e.Message}");
        Assert.False(string.IsNullOrEmpty(e.Description), why);
    }
}

[Collection(TgtCollection.Name)]
public sealed class TgtLibraryTests(TgtTargetFixture target) : LibraryTests<TgtTargetFixture>(target);

[Collection(SluiceCollection.Name)]
public sealed class SluiceLibraryTests(SluiceTargetFixture target) : LibraryTests<SluiceTargetFixture>(target);
