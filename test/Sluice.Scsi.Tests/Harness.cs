using System.Buffers.Binary;
using Sluice.Storage;

namespace Sluice.Scsi.Tests;

/// <summary>In-memory block device with fault injection and FUA/flush counters.</summary>
internal sealed class MemoryDevice(long length, bool readOnly = false) : IBlockDevice
{
    public byte[] Data { get; } = new byte[length];
    public long Length => Data.Length;
    public bool IsReadOnly => readOnly;
    public bool SupportsUnmap => false;
    public int Flushes;
    public int FuaWrites;
    public int Writes;
    public bool FailReads;
    public bool FailWrites;

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (FailReads)
        {
            throw new IOException("injected read failure");
        }
        Data.AsSpan((int)offset, destination.Length).CopyTo(destination.Span);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool forceUnitAccess, CancellationToken cancellationToken = default)
    {
        if (FailWrites)
        {
            throw new IOException("injected write failure");
        }
        Writes++;
        if (forceUnitAccess)
        {
            FuaWrites++;
        }
        source.Span.CopyTo(Data.AsSpan((int)offset));
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        Flushes++;
        return ValueTask.CompletedTask;
    }

    public ValueTask UnmapAsync(long offset, long length, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

internal sealed record Result(byte Status, byte[] Data, byte[] Sense, long TransferLength)
{
    public byte Key => SenseBuilder.Parse(Sense).Key;
    public ushort AscAscq => SenseBuilder.Parse(Sense).AscAscq;
}

/// <summary>A target with one or more LUs and helpers that send CDBs the way the transport does.</summary>
internal sealed class Harness
{
    public const string TargetName = "iqn.2024-01.org.sluice:disk";
    public static readonly ITNexus NexusA = new("iqn.init-a", "iqn.init-a,i,0x000000000001", TargetName, TargetName + ",t,0x0001", 1, 1);
    public static readonly ITNexus NexusB = new("iqn.init-b", "iqn.init-b,i,0x000000000002", TargetName, TargetName + ",t,0x0001", 1, 1);

    public Harness(long blocks = 1024, LogicalUnitOptions? options = null, bool deviceReadOnly = false, params ulong[] extraLuns)
        : this(null, blocks, options, deviceReadOnly, extraLuns)
    {
    }

    /// <summary>A harness over a given back end (e.g. a thin <c>MemoryBlockDevice</c>).</summary>
    public Harness(IBlockDevice? backend, long blocks = 1024, LogicalUnitOptions? options = null, bool deviceReadOnly = false, params ulong[] extraLuns)
    {
        Options = options ?? new LogicalUnitOptions();
        Device = new MemoryDevice(blocks * Options.BlockSize, deviceReadOnly);
        Backend = backend ?? Device;
        Unit = new LogicalUnit(0, Backend, Options);
        var units = new List<LogicalUnit> { Unit };
        foreach (ulong lun in extraLuns)
        {
            units.Add(new LogicalUnit(lun, new MemoryDevice(blocks * Options.BlockSize), new LogicalUnitOptions()));
        }
        Target = new ScsiTargetDevice(TargetName, units);
    }

    public LogicalUnitOptions Options { get; }
    public MemoryDevice Device { get; }
    public IBlockDevice Backend { get; }
    public LogicalUnit Unit { get; }
    public ScsiTargetDevice Target { get; }
    public int BlockSize => Options.BlockSize;

    public Result Run(byte[] cdb, int dataInLength = 0, byte[]? dataOut = null, ITNexus? nexus = null, ulong lunField = 0)
    {
        var padded = new byte[Math.Max(16, cdb.Length)];
        cdb.CopyTo(padded, 0);
        var dataIn = new byte[dataInLength];
        var sense = new byte[252];
        var request = new ScsiRequest
        {
            Nexus = nexus ?? NexusA,
            Lun = lunField,
            Cdb = padded,
            DataIn = dataIn,
            DataOut = dataOut ?? [],
            ExpectedDataInLength = dataInLength,
            ExpectedDataOutLength = dataOut?.Length ?? 0,
            Sense = sense,
        };
        var response = Target.ExecuteAsync(request, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        return new Result(response.Status, dataIn[..response.DataInLength], sense[..response.SenseLength], response.TransferLength);
    }

    public Task<Result> RunAsync(byte[] cdb, int dataInLength = 0, byte[]? dataOut = null, ITNexus? nexus = null, ulong lunField = 0, CancellationToken cancellationToken = default)
    {
        var padded = new byte[Math.Max(16, cdb.Length)];
        cdb.CopyTo(padded, 0);
        var dataIn = new byte[dataInLength];
        var sense = new byte[252];
        var request = new ScsiRequest
        {
            Nexus = nexus ?? NexusA,
            Lun = lunField,
            Cdb = padded,
            DataIn = dataIn,
            DataOut = dataOut ?? [],
            ExpectedDataInLength = dataInLength,
            ExpectedDataOutLength = dataOut?.Length ?? 0,
            Sense = sense,
        };
        return Core();

        async Task<Result> Core()
        {
            var response = await Target.ExecuteAsync(request, cancellationToken);
            return new Result(response.Status, dataIn[..response.DataInLength], sense[..response.SenseLength], response.TransferLength);
        }
    }

    /// <summary>Consumes the POWER ON unit attention for a nexus (as initiators do after login).</summary>
    public Harness Ready(ITNexus? nexus = null)
    {
        while (Run(Cdb.TestUnitReady(), nexus: nexus).Key == SenseKey.UnitAttention)
        {
        }
        return this;
    }
}

internal static class Cdb
{
    public static byte[] TestUnitReady() => new byte[6];
    public static byte[] Inquiry(bool evpd = false, byte page = 0, ushort alloc = 255) => [0x12, (byte)(evpd ? 1 : 0), page, (byte)(alloc >> 8), (byte)alloc, 0];
    public static byte[] RequestSense(bool desc = false, byte alloc = 252) => [0x03, (byte)(desc ? 1 : 0), 0, 0, alloc, 0];
    public static byte[] ReportLuns(uint alloc = 4096, byte select = 0)
    {
        var c = new byte[12];
        c[0] = 0xA0;
        c[2] = select;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(6), alloc);
        return c;
    }

    public static byte[] Rw10(byte op, uint lba, ushort blocks, byte flags = 0)
    {
        var c = new byte[10];
        c[0] = op;
        c[1] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(7), blocks);
        return c;
    }

    public static byte[] Rw12(byte op, uint lba, uint blocks, byte flags = 0)
    {
        var c = new byte[12];
        c[0] = op;
        c[1] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(6), blocks);
        return c;
    }

    public static byte[] Rw16(byte op, ulong lba, uint blocks, byte flags = 0)
    {
        var c = new byte[16];
        c[0] = op;
        c[1] = flags;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(10), blocks);
        return c;
    }

    public static byte[] Rw6(byte op, uint lba, byte blocks) => [op, (byte)((lba >> 16) & 0x1F), (byte)(lba >> 8), (byte)lba, blocks, 0];
    public static byte[] ModeSense6(byte page, int pc = 0, bool dbd = false, byte subpage = 0, byte alloc = 255) => [0x1A, (byte)(dbd ? 0x08 : 0), (byte)((pc << 6) | page), subpage, alloc, 0];
    public static byte[] ModeSense10(byte page, int pc = 0, bool dbd = false, bool llbaa = false, ushort alloc = 512) => [0x5A, (byte)((dbd ? 0x08 : 0) | (llbaa ? 0x10 : 0)), (byte)((pc << 6) | page), 0, 0, 0, 0, (byte)(alloc >> 8), (byte)alloc, 0];
    public static byte[] ModeSelect6(int length, bool sp = false) => [0x15, (byte)(0x10 | (sp ? 1 : 0)), 0, 0, (byte)length, 0];
    public static byte[] StartStop(bool start, bool loej, bool immed = false, int powerCondition = 0, bool noFlush = false) =>
        [0x1B, (byte)(immed ? 1 : 0), 0, 0, (byte)((powerCondition << 4) | (noFlush ? 4 : 0) | (loej ? 2 : 0) | (start ? 1 : 0)), 0];
    public static byte[] PreventAllow(int prevent) => [0x1E, 0, 0, 0, (byte)prevent, 0];
    public static byte[] ReadCapacity10() => new byte[] { 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    public static byte[] ReadCapacity16(uint alloc = 32)
    {
        var c = new byte[16];
        c[0] = 0x9E;
        c[1] = 0x10;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(10), alloc);
        return c;
    }
}
