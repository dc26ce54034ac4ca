namespace Sluice.Initiator.Tests;

/// <summary>
/// HeaderDigest and DataDigest = CRC32C (RFC 7143 §13.1) negotiated with a real peer — tgtd, which
/// generates and checks digests itself, and a separate `sluice serve` process — then data written
/// and read back byte for byte with both offload engines, and no digest error counted.
/// </summary>
[Collection("Serial")]
public sealed class DigestInteropTests(ServeProcessFixture serve, TgtdFixture tgt) : IClassFixture<ServeProcessFixture>, IClassFixture<TgtdFixture>
{
    [SkippableTheory]
    [InlineData("tgt", Sluice.Offload.OffloadMode.Auto)]
    [InlineData("tgt", Sluice.Offload.OffloadMode.None)]
    [InlineData("sluice", Sluice.Offload.OffloadMode.Auto)]
    [InlineData("sluice", Sluice.Offload.OffloadMode.None)]
    public async Task BothDigests_WriteRead_RoundTrips(string peer, Sluice.Offload.OffloadMode offload)
    {
        IscsiUrl url;
        if (peer == "tgt")
        {
            Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
            url = tgt.Url(TgtdFixture.DigestTarget);
        }
        else
        {
            url = serve.Url;
        }

        var options = new IscsiClientOptions
        {
            HeaderDigest = DigestPreference.Crc32C,
            DataDigest = DigestPreference.Crc32C,
            Offload = offload,
        };
        await using var lun = await IscsiLun.OpenAsync(url, options);
        Assert.True(lun.Session.Parameters.HeaderDigestCrc32C, "HeaderDigest not negotiated to CRC32C");
        Assert.True(lun.Session.Parameters.DataDigestCrc32C, "DataDigest not negotiated to CRC32C");

        // Sizes that cross data segment boundaries and need padding (RFC 7143 §11.7: a digest
        // covers the padded segment): 1 MiB in several Data-In/Data-Out PDUs, and odd block counts.
        var rng = new Random(offload == Sluice.Offload.OffloadMode.Auto ? 7 : 11);
        long lba = 0;
        foreach (int blocks in new[] { 1, 7, 2048, 129 })
        {
            var data = new byte[blocks * lun.BlockSize];
            rng.NextBytes(data);
            await lun.WriteAsync(lba, data);
            var back = new byte[data.Length];
            await lun.ReadAsync(lba, back);
            Assert.True(data.AsSpan().SequenceEqual(back), $"{blocks} blocks at LBA {lba} differ");
            lba += blocks;
        }

        var counters = lun.Session.Counters;
        Assert.NotNull(counters);
        Assert.Equal(0, counters.HeaderDigestErrors);
        Assert.Equal(0, counters.DataDigestErrors);
        Assert.True(counters.BytesReceived > 1 << 20, "reads did not cross the connection");
    }
}
