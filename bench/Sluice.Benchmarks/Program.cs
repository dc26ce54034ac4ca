using BenchmarkDotNet.Running;
using Sluice.Benchmarks;

// `crc-gbps <sizes...>` is a quick mode without BenchmarkDotNet for bench/crc32c-vs-isal.sh;
// anything else goes to BenchmarkDotNet, which finds every benchmark class in this assembly.
// BenchmarkDotNet builds a child project, so run it from bench/Sluice.Benchmarks, or pass --inProcess
// when the binary lives in a private artifacts path:
//   dotnet /tmp/art-crc/bin/Sluice.Benchmarks/release/Sluice.Benchmarks.dll --filter '*Crc32C*' --inProcess
if (args.Length > 0 && args[0] == "crc-gbps")
{
    return CrcGbps.Run(args[1..]);
}

// `target-alloc [count]`: managed bytes per 4 KiB I/O of an in-process target (no BenchmarkDotNet).
if (args.Length > 0 && args[0] == "target-alloc")
{
    return TargetAllocation.Run(args[1..]);
}

// `initiator-alloc [URL]`: bytes allocated per read and the allocating types, against a
// `sluice serve` child process (or URL).
if (args.Length > 0 && args[0] == "initiator-alloc")
{
    return InitiatorAlloc.Run(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(CrcGbps).Assembly).Run(args);
return 0;
