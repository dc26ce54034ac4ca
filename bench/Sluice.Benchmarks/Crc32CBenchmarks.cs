using BenchmarkDotNet.Attributes;
using Sluice.Offload;

namespace Sluice.Benchmarks;

/// <summary>
/// Every CRC32C kernel this CPU supports, plus the dispatched public entry point, over PDU-sized
/// and bulk buffers. (System.IO.Hashing 10 has CRC-32 and CRC-64 but no CRC-32C, so it is not here.)
/// </summary>
[MemoryDiagnoser]
public class Crc32CBenchmarks
{
    private byte[] _data = [];
    private Crc32CKernel _kernel;

    [Params(512, 4096, 65536, 1048576)]
    public int Size { get; set; }

    [ParamsSource(nameof(Kernels))]
    public string Kernel { get; set; } = "";

    public static IEnumerable<string> Kernels() =>
        Enum.GetValues<Crc32CKernel>().Where(Crc32C.IsSupported).Select(k => k.ToString());

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Random(3720).NextBytes(_data);
        _kernel = Enum.Parse<Crc32CKernel>(Kernel);
    }

    [Benchmark]
    public uint Append() => Crc32C.Append(_kernel, 0, _data);
}

/// <summary>The public, dispatched API, as the offload engine calls it.</summary>
[MemoryDiagnoser]
public class Crc32CComputeBenchmarks
{
    private byte[] _data = [];

    [Params(48, 512, 4096, 65536, 1048576)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Random(3720).NextBytes(_data);
    }

    [Benchmark]
    public uint Compute() => Crc32C.Compute(_data);
}
