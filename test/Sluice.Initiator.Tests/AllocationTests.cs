namespace Sluice.Initiator.Tests;

[CollectionDefinition("Serial", DisableParallelization = true)]
public sealed class SerialCollection
{
}

/// <summary>
/// DESIGN.md: hot paths allocate nothing in steady state. Per-command state, completions, Data-In
/// placement and the send/receive loops of the initiator allocate nothing (checked with GC
/// allocation-tick sampling); what remains is PduTransport's async slow paths (FillAsync,
/// ReceiveDataSlowAsync, SendAsync box a state machine each time they wait on the socket) — the
/// bounds below are theirs until those use a pooling builder. Runs alone: the allocation counter is
/// process-wide.
/// </summary>
[Collection("Serial")]
public sealed class AllocationTests(TgtdFixture tgt) : IClassFixture<TgtdFixture>
{
    private static async Task<double> BytesPerReadAsync(IscsiLun lun, int size, int depth, int count)
    {
        var buffers = Enumerable.Range(0, depth).Select(_ => new byte[size]).ToArray();
        long blocksPer = size / lun.BlockSize;

        async Task Worker(int w, int n)
        {
            long lba = w * blocksPer;
            for (int i = 0; i < n; i++)
            {
                await lun.ReadAsync(lba, buffers[w]);
            }
        }

        // Warm up pools, the JIT and the socket's cached event args.
        await Task.WhenAll(Enumerable.Range(0, depth).Select(w => Worker(w, 50)));
        long before = GC.GetTotalAllocatedBytes(precise: true);
        await Task.WhenAll(Enumerable.Range(0, depth).Select(w => Worker(w, count / depth)));
        long after = GC.GetTotalAllocatedBytes(precise: true);
        return (after - before) / (double)count;
    }

    [SkippableFact]
    public async Task Read1MiB_QD8_SteadyState_AllocatesAlmostNothingPerIo()
    {
        Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
        await using var lun = await IscsiLun.OpenAsync(tgt.Url(), new IscsiClientOptions { NopInterval = TimeSpan.Zero });
        double perIo = await BytesPerReadAsync(lun, 1 << 20, 8, 800);
        Assert.True(perIo < 4096, $"{perIo:0} bytes allocated per 1 MiB read");
    }

    [SkippableFact]
    public async Task Read4KiB_QD32_SteadyState_AllocatesAlmostNothingPerIo()
    {
        Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
        await using var lun = await IscsiLun.OpenAsync(tgt.Url(), new IscsiClientOptions { NopInterval = TimeSpan.Zero });
        double perIo = await BytesPerReadAsync(lun, 4096, 32, 20000);
        Assert.True(perIo < 1024, $"{perIo:0} bytes allocated per 4 KiB read");
    }
}
