using System.Buffers.Binary;
using Sluice.Storage;

namespace Sluice.Scsi.Tests;

public class ReservationTests
{
    private static byte[] PrIn(int sa, ushort alloc = 1024) => [0x5E, (byte)sa, 0, 0, 0, 0, 0, (byte)(alloc >> 8), (byte)alloc, 0];

    private static byte[] PrOut(int sa, byte type = 0) => [0x5F, (byte)sa, type, 0, 0, 0, 0, 0, 24, 0];

    private static byte[] Params(ulong key, ulong saKey, bool aptpl = false)
    {
        var p = new byte[24];
        BinaryPrimitives.WriteUInt64BigEndian(p, key);
        BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(8), saKey);
        p[20] = (byte)(aptpl ? 1 : 0);
        return p;
    }

    private static Harness Two() => new Harness().Ready().Ready(Harness.NexusB);

    [Fact]
    public void Register_ReadKeys_GenerationAdvances()
    {
        var h = Two();
        Assert.Equal(ScsiStatus.Good, h.Run(PrOut(0), dataOut: Params(0, 0xA)).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(PrOut(0), dataOut: Params(0, 0xB), nexus: Harness.NexusB).Status);
        var keys = h.Run(PrIn(0), 1024).Data;
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(keys));
        Assert.Equal(16u, BinaryPrimitives.ReadUInt32BigEndian(keys.AsSpan(4)));
        Assert.Equal(0xAul, BinaryPrimitives.ReadUInt64BigEndian(keys.AsSpan(8)));
        // Wrong key from a registered nexus: RESERVATION CONFLICT.
        Assert.Equal(ScsiStatus.ReservationConflict, h.Run(PrOut(0), dataOut: Params(0x99, 0xC)).Status);
        // REGISTER AND IGNORE EXISTING KEY replaces it.
        Assert.Equal(ScsiStatus.Good, h.Run(PrOut(6), dataOut: Params(0, 0xC)).Status);
    }

    [Theory]
    [InlineData(1, true, false)]  // WRITE EXCLUSIVE: other may read, not write
    [InlineData(3, false, false)] // EXCLUSIVE ACCESS: neither
    [InlineData(5, true, true)]   // WE REGISTRANTS ONLY: a registered other may write
    [InlineData(8, true, true)]   // EA ALL REGISTRANTS
    public void Reserve_OtherNexus_ConflictRules(byte type, bool otherReads, bool otherWrites)
    {
        var h = Two();
        h.Run(PrOut(0), dataOut: Params(0, 0xA));
        h.Run(PrOut(0), dataOut: Params(0, 0xB), nexus: Harness.NexusB);
        Assert.Equal(ScsiStatus.Good, h.Run(PrOut(1, type), dataOut: Params(0xA, 0)).Status);
        var read = h.Run(Cdb.Rw10(0x28, 0, 1), 512, nexus: Harness.NexusB);
        var write = h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512], nexus: Harness.NexusB);
        Assert.Equal(otherReads ? ScsiStatus.Good : ScsiStatus.ReservationConflict, read.Status);
        Assert.Equal(otherWrites ? ScsiStatus.Good : ScsiStatus.ReservationConflict, write.Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512]).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Inquiry(), 96, nexus: Harness.NexusB).Status);
        var resv = h.Run(PrIn(1), 1024).Data;
        Assert.Equal(16u, BinaryPrimitives.ReadUInt32BigEndian(resv.AsSpan(4)));
        Assert.Equal(type, resv[21] & 0x0F);
    }

    [Fact]
    public void Release_RoType_RaisesReservationsReleasedForOthers()
    {
        var h = Two();
        h.Run(PrOut(0), dataOut: Params(0, 0xA));
        h.Run(PrOut(0), dataOut: Params(0, 0xB), nexus: Harness.NexusB);
        h.Run(PrOut(1, 5), dataOut: Params(0xA, 0));
        Assert.Equal(Asc.InvalidReleaseOfPersistentReservation, h.Run(PrOut(2, 1), dataOut: Params(0xA, 0)).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(PrOut(2, 5), dataOut: Params(0xA, 0)).Status);
        Assert.Equal(Asc.ReservationsReleased, h.Run(Cdb.TestUnitReady(), nexus: Harness.NexusB).AscAscq);
    }

    [Fact]
    public void PreemptAndAbort_RemovesRegistration_RaisesUaAndAbortEvent()
    {
        var h = Two();
        var aborted = new List<(ITNexus, ulong)>();
        h.Target.TasksAbortRequested += (n, lun) => aborted.Add((n, lun));
        h.Run(PrOut(0), dataOut: Params(0, 0xA));
        h.Run(PrOut(0), dataOut: Params(0, 0xB), nexus: Harness.NexusB);
        h.Run(PrOut(1, 3), dataOut: Params(0xB, 0), nexus: Harness.NexusB);
        Assert.Equal(ScsiStatus.Good, h.Run(PrOut(5, 1), dataOut: Params(0xA, 0xB)).Status);
        Assert.Single(aborted);
        Assert.Equal(Harness.NexusB, aborted[0].Item1);
        Assert.Equal(Asc.RegistrationsPreempted, h.Run(Cdb.TestUnitReady(), nexus: Harness.NexusB).AscAscq);
        var resv = h.Run(PrIn(1), 1024).Data;
        Assert.Equal(0xAul, BinaryPrimitives.ReadUInt64BigEndian(resv.AsSpan(8)));
        Assert.Equal(1, resv[21] & 0x0F);
    }

    [Fact]
    public void Clear_RemovesEverything_RaisesReservationsPreempted()
    {
        var h = Two();
        h.Run(PrOut(0), dataOut: Params(0, 0xA));
        h.Run(PrOut(0), dataOut: Params(0, 0xB), nexus: Harness.NexusB);
        h.Run(PrOut(1, 1), dataOut: Params(0xA, 0));
        Assert.Equal(ScsiStatus.Good, h.Run(PrOut(3), dataOut: Params(0xA, 0)).Status);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(h.Run(PrIn(0), 1024).Data.AsSpan(4)));
        Assert.Equal(Asc.ReservationsPreempted, h.Run(Cdb.TestUnitReady(), nexus: Harness.NexusB).AscAscq);
    }

    [Fact]
    public void ReadFullStatus_ListsTransportIds()
    {
        var h = Two();
        h.Run(PrOut(0), dataOut: Params(0, 0xA));
        h.Run(PrOut(1, 1), dataOut: Params(0xA, 0));
        var d = h.Run(PrIn(3), 1024).Data;
        Assert.Equal((uint)(d.Length - 8), BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(4)));
        Assert.Equal(0xAul, BinaryPrimitives.ReadUInt64BigEndian(d.AsSpan(8)));
        Assert.Equal(1, d[20] & 1); // R_HOLDER
        Assert.Equal(0x45, d[32]);   // iSCSI, initiator port format
        Assert.StartsWith(Harness.NexusA.InitiatorPortName, System.Text.Encoding.UTF8.GetString(d, 36, d.Length - 36));
    }

    [Fact]
    public void Aptpl_StateSurvivesRestart()
    {
        string dir = Directory.CreateTempSubdirectory("sluice-pr").FullName;
        try
        {
            var options = new LogicalUnitOptions { StateDirectory = dir };
            var h = new Harness(options: options).Ready();
            var caps = h.Run(PrIn(2), 1024).Data;
            Assert.Equal(1, caps[2] & 0x01); // PTPL_C
            Assert.Equal(ScsiStatus.Good, h.Run(PrOut(0), dataOut: Params(0, 0xA, aptpl: true)).Status);
            Assert.Equal(ScsiStatus.Good, h.Run(PrOut(1, 1), dataOut: Params(0xA, 0)).Status);
            Assert.True(File.Exists(Path.Combine(dir, "pr-lun0.json")));

            var restarted = new Harness(options: new LogicalUnitOptions { StateDirectory = dir }).Ready();
            var resv = restarted.Run(PrIn(1), 1024).Data;
            Assert.Equal(0xAul, BinaryPrimitives.ReadUInt64BigEndian(resv.AsSpan(8)));
            Assert.Equal(ScsiStatus.ReservationConflict, restarted.Ready(Harness.NexusB).Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512], nexus: Harness.NexusB).Status);
            // APTPL=0 on a later REGISTER drops the persisted state.
            Assert.Equal(ScsiStatus.Good, restarted.Run(PrOut(0), dataOut: Params(0xA, 0xA)).Status);
            Assert.False(File.Exists(Path.Combine(dir, "pr-lun0.json")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Aptpl_WithoutStateDirectory_InvalidField()
    {
        var h = new Harness().Ready();
        Assert.Equal(Asc.InvalidFieldInParameterList, h.Run(PrOut(0), dataOut: Params(0, 0xA, aptpl: true)).AscAscq);
    }

    [Fact]
    public void Reserve6_OtherNexusConflicts_UntilReleaseOrNexusLoss()
    {
        var h = Two();
        Assert.Equal(ScsiStatus.Good, h.Run([0x16, 0, 0, 0, 0, 0]).Status);
        Assert.Equal(ScsiStatus.ReservationConflict, h.Run(Cdb.Rw10(0x28, 0, 1), 512, nexus: Harness.NexusB).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Inquiry(), 96, nexus: Harness.NexusB).Status);
        h.Target.NexusLost(Harness.NexusA);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x28, 0, 1), 512, nexus: Harness.NexusB).Status);
    }
}
