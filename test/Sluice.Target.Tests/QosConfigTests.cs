using Sluice.Target.Configuration;

namespace Sluice.Target.Tests;

public sealed class QosConfigTests
{
    private const string Gold = "iqn.2026-11.dev.sluice:gold";
    private const string Bulk = "iqn.2026-11.dev.sluice:bulk";

    internal static ServerConfig Valid() => new()
    {
        DataDir = Path.GetTempPath(),
        Portals = [new PortalConfig { Host = "127.0.0.1", Port = 0 }],
        Devices = [new DeviceConfig { Name = "pool", Backend = "model:64MiB:iops=2000" }],
        Targets =
        [
            new TargetConfig { Name = Gold, Luns = [new LunConfig { Number = 0, Backend = "device:pool:0:16MiB" }] },
            new TargetConfig { Name = Bulk, Luns = [new LunConfig { Number = 0, Backend = "device:pool:16MiB" }] },
        ],
        Functions =
        [
            new FunctionConfig { Name = "gold", Targets = [Gold], ReservationIops = 500, Priority = 1, LatencyTargetMs = 50 },
            new FunctionConfig { Name = "bulk", Targets = [Bulk], LimitIops = 300 },
        ],
    };

    [Fact]
    public void Validate_DevicesSlicesFunctions_Accepted()
    {
        ConfigValidator.Validate(Valid());
        var plan = SlicePlacement.Plan(Valid());
        Assert.Equal([0L, 16L << 20], plan.Select(p => p.Offset));
    }

    public static TheoryData<string, string> Broken() => new()
    {
        { "unknown device", "targets[0].luns[0].backend: unknown device 'nope'" },
        { "overlap", "targets[1].luns[0].backend: slice [8388608, 25165824) of device 'pool' overlaps targets[0].luns[0]" },
        { "too big", "targets[1].luns[0].backend: slice [16777216, 83886080) does not fit device 'pool'" },
        { "bad slice", "targets[0].luns[0].backend: invalid slice 'device:pool'" },
        { "unaligned", "targets[0].luns[0].backend: offset 100 and size 16777216 must be whole 512-byte blocks" },
        { "dup device", "devices[1].name: duplicate device 'pool'" },
        { "device slice", "devices[0].backend: a shared device cannot be a slice of another device" },
        { "bad device name", "devices[0].name: invalid name 'a b'" },
        { "two functions", "functions[1].targets[1]: 'iqn.2026-11.dev.sluice:gold' already belongs to function 'gold'" },
        { "unknown target", "functions[0].targets[0]: unknown target 'iqn.2026-11.dev.sluice:none'" },
        { "no targets", "functions[0].targets: at least one target is required" },
        { "dup function", "functions[1].name: duplicate function 'gold'" },
        { "negative", "functions[0].reservationIops: must be a number >= 0" },
        { "zero weight", "functions[0].weight: must be a number > 0 (got 0)" },
        { "limit below reservation", "functions[0].limitIops: must not be below reservationIops (100 < 500)" },
        { "limit mbps below reservation", "functions[0].limitMbps: must not be below reservationMbps (5 < 10)" },
        { "unscheduled user", "targets[1].luns[0].backend: device 'pool' is shared by function 'gold'" },
        { "mode", "qos.mode: must be mclock or fifo (got 'wfq')" },
        { "outstanding", "qos.maxOutstanding: must be between 1 and 65535 (got 0)" },
        { "tolerance", "qos.adaptiveLatencyTolerance: must be between 0.05 and 10 (got 0)" },
        { "headroom", "qos.reservationHeadroom: must be between 0 and 1 (got -0.1)" },
        { "split small", "qos.splitBytes: must be 0 (never split) or a multiple of 512 of at least 4096 (got 2048)" },
        { "split unaligned", "qos.splitBytes: must be 0 (never split) or a multiple of 512 of at least 4096 (got 5000)" },
        { "burst", "qos.reservationBurstMs: must be between 0 and 10000 (got -1)" },
    };

    [Theory]
    [MemberData(nameof(Broken))]
    public void Validate_BrokenQosConfig_NamesKeyPath(string change, string expected)
    {
        var c = Valid();
        switch (change)
        {
            case "unknown device": c.Targets[0].Luns[0].Backend = "device:nope:0:1MiB"; break;
            case "overlap": c.Targets[1].Luns[0].Backend = "device:pool:8MiB:16MiB"; break;
            case "too big": c.Targets[1].Luns[0].Backend = "device:pool:64MiB"; break;
            case "bad slice": c.Targets[0].Luns[0].Backend = "device:pool"; break;
            case "unaligned": c.Targets[0].Luns[0].Backend = "device:pool:100:16MiB"; break;
            case "dup device": c.Devices.Add(new DeviceConfig { Name = "pool", Backend = "memory:1MiB" }); break;
            case "device slice": c.Devices[0].Backend = "device:pool:1MiB"; break;
            case "bad device name": c.Devices[0].Name = "a b"; break;
            case "two functions": c.Functions[1].Targets.Add(Gold); break;
            case "unknown target": c.Functions[0].Targets[0] = "iqn.2026-11.dev.sluice:none"; break;
            case "no targets": c.Functions[0].Targets.Clear(); break;
            case "dup function": c.Functions[1].Name = "gold"; break;
            case "negative": c.Functions[0].ReservationIops = -1; break;
            case "zero weight": c.Functions[0].Weight = 0; break;
            case "limit below reservation": c.Functions[0].LimitIops = 100; break;
            case "limit mbps below reservation": c.Functions[0].ReservationMbps = 10; c.Functions[0].LimitMbps = 5; break;
            case "unscheduled user": c.Functions.RemoveAt(1); break;
            case "mode": c.Qos.Mode = "wfq"; break;
            case "outstanding": c.Qos.MaxOutstanding = 0; break;
            case "headroom": c.Qos.ReservationHeadroom = -0.1; break;
            case "split small": c.Qos.SplitBytes = 2048; break;
            case "split unaligned": c.Qos.SplitBytes = 5000; break;
            case "burst": c.Qos.ReservationBurstMs = -1; break;
            case "tolerance": c.Qos.AdaptiveOutstanding = true; c.Qos.AdaptiveLatencyTolerance = 0; break;
        }

        var e = Assert.Throws<ConfigException>(() => ConfigValidator.Validate(c));
        Assert.StartsWith(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Validate_PlainLunTargetInFunction_Accepted()
    {
        var c = Valid();
        c.Targets.Add(new TargetConfig { Name = "iqn.2026-11.dev.sluice:own", Luns = [new LunConfig { Backend = "memory:1MiB" }] });
        c.Functions[1].Targets.Add("iqn.2026-11.dev.sluice:own");
        c.Qos = new QosConfig { Mode = "fifo", MaxOutstanding = 4 };
        ConfigValidator.Validate(c);
    }

    [Fact]
    public void Validate_DeviceFileSharedWithLun_Refused()
    {
        var c = Valid();
        c.Devices.Add(new DeviceConfig { Name = "disk", Backend = "file:shared.img:1MiB" });
        c.Targets.Add(new TargetConfig { Name = "iqn.2026-11.dev.sluice:own", Luns = [new LunConfig { Backend = "file:shared.img:1MiB" }] });
        var e = Assert.Throws<ConfigException>(() => ConfigValidator.Validate(c));
        Assert.StartsWith("targets[2].luns[0].backend: '", e.Message);
        Assert.EndsWith("is already used by devices[1]", e.Message);
    }
}
