using System.Buffers.Binary;

namespace Sluice.Initiator.Tests;

/// <summary>
/// <see cref="IscsiClientOptions.InlineCompletions"/>: continuations run on the receive loop, the
/// commands they issue are queued until the loop has handled the PDUs at hand, and the send loop
/// puts them on the wire together (PduTransport.TryAppend). Against real peers (a `sluice serve`
/// process and tgtd), with and without digests: every write must land where and as it was sent
/// (a batch that lost, reordered or mis-digested a PDU shows up as a wrong block or a digest
/// error), and at queue depth 32 there must be fewer socket sends than PDUs.
/// </summary>
[Collection("Serial")]
public sealed class InlineCompletionTests(ServeProcessFixture serve, TgtdFixture tgt) : IClassFixture<ServeProcessFixture>, IClassFixture<TgtdFixture>
{
    private const int Depth = 32;
    private const int Slots = 4096; // 4 KiB each: 16 MiB, or the whole LUN if smaller

    [SkippableTheory]
    [InlineData("sluice", false)]
    [InlineData("sluice", true)]
    [InlineData("tgtd", false)]
    [InlineData("tgtd", true)]
    public async Task Qd32_StampedWritesThenReads_RoundTripAndBatch(string peer, bool digests)
    {
        IscsiUrl url;
        if (peer == "tgtd")
        {
            Skip.If(tgt.SkipReason is not null, tgt.SkipReason);
            url = digests ? tgt.Url(TgtdFixture.DigestTarget) : tgt.Url();
        }
        else
        {
            url = serve.Url;
        }

        var preference = digests ? DigestPreference.Crc32C : DigestPreference.None;
        await using var lun = await IscsiLun.OpenAsync(url, new IscsiClientOptions
        {
            InlineCompletions = true,
            QueueDepth = Depth + 8,
            HeaderDigest = preference,
            DataDigest = preference,
        });
        Assert.Equal(digests, lun.Session.Parameters.DataDigestCrc32C);
        int slotBlocks = 4096 / lun.BlockSize;
        long slots = Math.Min(Slots, lun.BlockCount / slotBlocks);
        long run = Environment.TickCount64;

        // Every slot is written once, by QD32 workers on the receive loop, with a stamp naming it.
        long next = -1;
        await RunWorkersAsync(async buffer =>
        {
            long slot;
            while ((slot = Interlocked.Increment(ref next)) < slots)
            {
                Stamp(buffer, run, slot);
                await lun.WriteAsync(slot * slotBlocks, buffer);
            }
        });

        var counters = lun.Session.Counters!;
        long pdus = counters.PdusSent;
        long sends = counters.SendCalls;

        // Then read back in a different order; each slot must hold exactly its own stamp.
        long bad = 0;
        next = -1;
        await RunWorkersAsync(async buffer =>
        {
            long i;
            while ((i = Interlocked.Increment(ref next)) < slots)
            {
                long slot = (i * 7919) % slots;
                await lun.ReadAsync(slot * slotBlocks, buffer);
                if (!IsStamp(buffer, run, slot))
                {
                    Interlocked.Increment(ref bad);
                }
            }
        });

        Assert.Equal(0, bad);
        Assert.Equal(0, counters.HeaderDigestErrors);
        Assert.Equal(0, counters.DataDigestErrors);
        long readPdus = counters.PdusSent - pdus;
        long readSends = counters.SendCalls - sends;
        Assert.True(readPdus >= slots, $"{readPdus} PDUs sent for {slots} reads");
        Assert.True(readSends < readPdus * 0.9,
            $"{readSends} socket sends for {readPdus} PDUs at QD{Depth}: commands issued on the receive loop were not batched");
    }

    [SkippableFact]
    public async Task InlineCompletion_ContinuationRunsBeforeTheNextPduIsRead()
    {
        // The continuation of a completed command runs on the receive loop: by the time the
        // await returns, the caller is on the thread that will read the next PDU, and a command
        // it issues from there completes normally (no deadlock with the deferred send).
        await using var lun = await IscsiLun.OpenAsync(serve.Url, new IscsiClientOptions { InlineCompletions = true });
        var buffer = new byte[lun.BlockSize];
        for (int i = 0; i < 200; i++)
        {
            await lun.ReadAsync(i, buffer);
            await lun.WriteAsync(i, buffer);
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await lun.SynchronizeCacheAsync(cancellationToken: cts.Token);
    }

    private static async Task RunWorkersAsync(Func<byte[], Task> worker)
    {
        var tasks = new Task[Depth];
        for (int w = 0; w < Depth; w++)
        {
            var buffer = GC.AllocateUninitializedArray<byte>(4096, pinned: true);
            tasks[w] = worker(buffer);
        }

        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
    }

    private static void Stamp(byte[] buffer, long run, long slot)
    {
        for (int o = 0; o < buffer.Length; o += 16)
        {
            BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(o), run);
            BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(o + 8), (slot << 12) | (uint)o);
        }
    }

    private static bool IsStamp(byte[] buffer, long run, long slot)
    {
        for (int o = 0; o < buffer.Length; o += 16)
        {
            if (BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(o)) != run ||
                BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(o + 8)) != ((slot << 12) | (uint)o))
            {
                return false;
            }
        }

        return true;
    }
}
