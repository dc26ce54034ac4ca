using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Sluice.Initiator;

namespace Sluice.Benchmarks;

/// <summary>
/// The initiator's read path in steady state (issue 5: a 1 MiB read at QD8 allocates nothing per
/// I/O). The target is a <c>sluice serve</c> child process (or SLUICE_BENCH_URL), so the memory
/// diagnoser, which counts the whole process, sees only the initiator. One operation is one read;
/// QD workers each issue <see cref="ReadsPerWorker"/> reads per invocation.
/// </summary>
[MemoryDiagnoser]
public class InitiatorReadBenchmarks
{
    private const int ReadsPerWorker = 64;

    private ServeProcess? _server;
    private IscsiLun _lun = null!;
    private byte[][] _small = [];
    private byte[][] _large = [];
    private ValueTask[] _workers = [];

    [GlobalSetup]
    public void Setup()
    {
        string? url = Environment.GetEnvironmentVariable("SLUICE_BENCH_URL");
        if (url is null)
        {
            _server = ServeProcess.Start();
            url = _server.Url;
        }

        _lun = IscsiLun.OpenAsync(IscsiUrl.Parse(url), new IscsiClientOptions { NopInterval = TimeSpan.Zero, QueueDepth = 40 }).GetAwaiter().GetResult();
        _small = Enumerable.Range(0, 32).Select(_ => GC.AllocateUninitializedArray<byte>(4096, pinned: true)).ToArray();
        _large = Enumerable.Range(0, 8).Select(_ => GC.AllocateUninitializedArray<byte>(1 << 20, pinned: true)).ToArray();
        _workers = new ValueTask[32];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _lun.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _server?.Dispose();
    }

    [Benchmark(OperationsPerInvoke = ReadsPerWorker * 32)]
    public Task Read4KiB_QD32() => RunAsync(_small);

    [Benchmark(OperationsPerInvoke = ReadsPerWorker * 8)]
    public Task Read1MiB_QD8() => RunAsync(_large);

    private async Task RunAsync(byte[][] buffers)
    {
        for (int w = 0; w < buffers.Length; w++)
        {
            _workers[w] = WorkerAsync(buffers[w], w);
        }

        for (int w = 0; w < buffers.Length; w++)
        {
            await _workers[w].ConfigureAwait(false);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WorkerAsync(byte[] buffer, int w)
    {
        long blocks = buffer.Length / _lun.BlockSize;
        long span = _lun.BlockCount / blocks;
        for (int i = 0; i < ReadsPerWorker; i++)
        {
            await _lun.ReadAsync((((w * 7919L) + i) % span) * blocks, buffer).ConfigureAwait(false);
        }
    }
}
