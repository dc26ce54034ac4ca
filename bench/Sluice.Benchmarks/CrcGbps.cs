using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Sluice.Offload;

namespace Sluice.Benchmarks;

/// <summary>
/// <c>crc-gbps [--kernel NAME] &lt;sizes...&gt;</c>: GB/s (10^9 bytes/s) of one CRC32C kernel per buffer
/// size, the median of 7 runs of about 100 ms each. Output is one line per size,
/// <c>size median min max run1..run7</c>, so a script can put it next to another library's numbers.
/// </summary>
internal static class CrcGbps
{
    private const int Runs = 7;
    private static readonly TimeSpan s_runTime = TimeSpan.FromMilliseconds(100);
    private static uint s_sink;

    public static int Run(string[] args)
    {
        var kernel = Crc32C.Selected;
        var sizes = new List<int>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--kernel" && i + 1 < args.Length)
            {
                kernel = Enum.Parse<Crc32CKernel>(args[++i], ignoreCase: true);
            }
            else if (int.TryParse(args[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out var size) && size > 0)
            {
                sizes.Add(size);
            }
            else
            {
                Console.Error.WriteLine("usage: crc-gbps [--kernel Portable|Sse42|Pclmul128|Vpclmul512|Arm64] <sizes...>");
                return 2;
            }
        }

        if (sizes.Count == 0 || !Crc32C.IsSupported(kernel))
        {
            Console.Error.WriteLine(sizes.Count == 0 ? "crc-gbps: no sizes given" : $"crc-gbps: {kernel} not supported here");
            return 2;
        }

        Console.WriteLine($"# sluice kernel={kernel} selected={Crc32C.KernelName}");
        var warmUp = TimeSpan.FromMilliseconds(600);
        foreach (var size in sizes)
        {
            var data = GC.AllocateUninitializedArray<byte>(size, pinned: true);
            new Random(size).NextBytes(data);

            // Warm up past tiered compilation (tier 1 folds the start-up kernel choice away); the first
            // size gets longer because on a busy machine the background tier-1 compile comes late.
            var iterations = Math.Max(1, (int)(1_000_000L / size));
            var warmEnd = Stopwatch.GetTimestamp() + (long)(warmUp.TotalSeconds * Stopwatch.Frequency);
            warmUp = TimeSpan.FromMilliseconds(200);
            while (Stopwatch.GetTimestamp() < warmEnd)
            {
                Loop(kernel, data, iterations);
            }

            // Size one run to about 100 ms.
            var probe = Stopwatch.GetTimestamp();
            Loop(kernel, data, iterations);
            var probeSeconds = Stopwatch.GetElapsedTime(probe).TotalSeconds;
            iterations = (int)Math.Clamp(iterations * s_runTime.TotalSeconds / Math.Max(probeSeconds, 1e-6), 1, int.MaxValue);

            var gbps = new double[Runs];
            for (var r = 0; r < Runs; r++)
            {
                var start = Stopwatch.GetTimestamp();
                Loop(kernel, data, iterations);
                var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                gbps[r] = (double)size * iterations / seconds / 1e9;
            }

            var sorted = (double[])gbps.Clone();
            Array.Sort(sorted);
            Console.WriteLine(string.Join(' ', new[] { size.ToString(CultureInfo.InvariantCulture) }
                .Concat(new[] { sorted[Runs / 2], sorted[0], sorted[^1] }.Concat(gbps)
                .Select(v => v.ToString("F2", CultureInfo.InvariantCulture)))));
        }

        GC.KeepAlive(s_sink);
        return 0;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Loop(Crc32CKernel kernel, byte[] data, int iterations)
    {
        uint crc = 0;
        if (kernel == Crc32C.Selected)
        {
            for (var i = 0; i < iterations; i++)
            {
                crc ^= Crc32C.Compute(data);
            }
        }
        else
        {
            for (var i = 0; i < iterations; i++)
            {
                crc ^= Crc32C.Append(kernel, 0, data);
            }
        }

        s_sink ^= crc;
    }
}
