using BenchmarkDotNet.Running;
using Sluice.Qos.Benchmarks;

// BenchmarkDotNet builds a child project, so run it from bench/Sluice.Qos.Benchmarks, or pass
// --inProcess when the binary lives in a private artifacts path:
//   dotnet build bench/Sluice.Qos.Benchmarks -c Release --artifacts-path /tmp/art-qos
//   dotnet /tmp/art-qos/bin/Sluice.Qos.Benchmarks/release/Sluice.Qos.Benchmarks.dll --filter '*' --job short --inProcess
BenchmarkSwitcher.FromAssembly(typeof(SchedulerBenchmarks).Assembly).Run(args);
