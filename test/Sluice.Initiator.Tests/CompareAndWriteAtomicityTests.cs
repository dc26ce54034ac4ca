using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Target;
using Sluice.Target.Configuration;
using Xunit.Abstractions;

namespace Sluice.Initiator.Tests;

/// <summary>
/// Issue 3: COMPARE AND WRITE is atomic (SBC-3 §5.2: the compare and the write are one
/// operation that no other command on those blocks can get between). Two initiators, each with
/// its own session, use one block as a test-and-set lock the way VMware's ATS does: each round
/// both try to swap "free" for their own owner record at the same time, and exactly one may get
/// GOOD; the other must get MISCOMPARE. The winner then releases with a second COMPARE AND WRITE
/// (its own record back to "free"), which only succeeds if its record is what the block holds.
/// </summary>
[Collection("Serial")]
public sealed class CompareAndWriteAtomicityTests : IAsyncLifetime
{
    private const string Target = "iqn.2026-11.dev.sluice:ats";
    private const int Rounds = 10_000;
    private const long LockLba = 7;
    private readonly ITestOutputHelper _output;
    private TargetServer _server = null!;
    private string _dir = null!;

    public CompareAndWriteAtomicityTests(ITestOutputHelper output) => _output = output;

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("sluice-ats-tests").FullName;
        _server = new TargetServer(
            new ServerConfig
            {
                DataDir = _dir,
                Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
                Targets = [new TargetConfig { Name = Target, Luns = [new LunConfig { Number = 0, Backend = "memory:16MiB" }] }],
            },
            NullLoggerFactory.Instance);
        await _server.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private Task<IscsiLun> OpenAsync(string initiator) =>
        IscsiLun.OpenAsync(
            IscsiUrl.Parse($"iscsi://127.0.0.1:{_server.LocalEndpoints[0].Port}/{Target}/0"),
            new IscsiClientOptions { InitiatorName = initiator });

    /// <summary>A lock record: the owner's id in every byte but the first, so no two owners' records are equal.</summary>
    private static byte[] Record(int blockSize, byte owner)
    {
        var block = new byte[blockSize];
        block.AsSpan().Fill(owner);
        block[0] = 0x4c; // 'L': a taken lock; a free lock is all zeros
        return block;
    }

    [Fact]
    public async Task TwoInitiators_RaceTenThousandTestAndSets_ExactlyOneWinsEachRound()
    {
        await using var a = await OpenAsync("iqn.2026-11.dev.sluice:ats-host-a");
        await using var b = await OpenAsync("iqn.2026-11.dev.sluice:ats-host-b");
        int bs = a.BlockSize;
        var free = new byte[bs];
        var mineA = Record(bs, 0xaa);
        var mineB = Record(bs, 0xbb);
        await a.WriteAsync(LockLba, free);

        int winsA = 0, winsB = 0;
        var clock = Stopwatch.StartNew();
        for (int round = 0; round < Rounds; round++)
        {
            // Both commands leave from two thread-pool threads released together, so which
            // reaches the target first is up to the scheduler and the network stack.
            var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var tryA = Task.Run(async () => { await go.Task; return await a.CompareAndWriteAsync(LockLba, free, mineA); });
            var tryB = Task.Run(async () => { await go.Task; return await b.CompareAndWriteAsync(LockLba, free, mineB); });
            go.SetResult();
            bool wonA = await tryA;
            bool wonB = await tryB;
            Assert.True(wonA ^ wonB, $"round {round}: A {(wonA ? "won" : "lost")}, B {(wonB ? "won" : "lost")}; exactly one must win");

            // Release: only the holder's record may be swapped back, and only by the holder.
            var (winner, loser, record, other) = wonA ? (a, b, mineA, mineB) : (b, a, mineB, mineA);
            Assert.False(await loser.CompareAndWriteAsync(LockLba, other, free), $"round {round}: the loser released a lock it does not hold");
            Assert.True(await winner.CompareAndWriteAsync(LockLba, record, free), $"round {round}: the winner could not release its lock");
            if (wonA)
            {
                winsA++;
            }
            else
            {
                winsB++;
            }
        }

        clock.Stop();
        _output.WriteLine($"{Rounds} rounds in {clock.Elapsed.TotalSeconds:F1} s: A won {winsA}, B won {winsB}");
        Assert.Equal(Rounds, winsA + winsB);
        var back = new byte[bs];
        await a.ReadAsync(LockLba, back);
        Assert.Equal(free, back);
        // Not a fairness requirement, but a sign both really raced: each side won some rounds.
        Assert.True(winsA > 0 && winsB > 0, $"A won {winsA}, B won {winsB} of {Rounds} rounds in {clock.Elapsed.TotalSeconds:F1} s");
    }
}
