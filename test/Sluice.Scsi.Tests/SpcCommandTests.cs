using System.Buffers.Binary;

namespace Sluice.Scsi.Tests;

public class UnitAttentionTests
{
    [Fact]
    public void FirstCommand_NewNexus_ReportsPowerOnThenClears()
    {
        var h = new Harness();
        var r = h.Run(Cdb.TestUnitReady());
        Assert.Equal(ScsiStatus.CheckCondition, r.Status);
        Assert.Equal(SenseKey.UnitAttention, r.Key);
        Assert.Equal(Asc.PowerOnResetOrBusDeviceReset, r.AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.TestUnitReady()).Status);
    }

    [Fact]
    public void Inquiry_PendingUnitAttention_NotBlockedNorConsumed()
    {
        var h = new Harness();
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Inquiry(), 255).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.ReportLuns(), 256).Status);
        Assert.Equal(SenseKey.UnitAttention, h.Run(Cdb.TestUnitReady()).Key);
    }

    [Fact]
    public void RequestSense_PendingUnitAttention_ReturnsAndConsumesIt()
    {
        var h = new Harness();
        var r = h.Run(Cdb.RequestSense(), 252);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(0x70, r.Data[0]);
        Assert.Equal(SenseKey.UnitAttention, SenseBuilder.Parse(r.Data).Key);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.TestUnitReady()).Status);
        var none = h.Run(Cdb.RequestSense(desc: true), 252);
        Assert.Equal(0x72, none.Data[0]);
        Assert.Equal(SenseKey.NoSense, SenseBuilder.Parse(none.Data).Key);
    }

    [Fact]
    public void ResetLogicalUnit_AllNexuses_GetBusDeviceResetAndPreventCleared()
    {
        var h = new Harness(options: new LogicalUnitOptions { Removable = true }).Ready().Ready(Harness.NexusB);
        h.Run(Cdb.PreventAllow(1));
        h.Target.ResetLogicalUnit(0);
        Assert.Equal(Asc.BusDeviceResetFunctionOccurred, h.Run(Cdb.TestUnitReady()).AscAscq);
        Assert.Equal(Asc.BusDeviceResetFunctionOccurred, h.Run(Cdb.TestUnitReady(), nexus: Harness.NexusB).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.StartStop(start: false, loej: true)).Status);
    }

    [Fact]
    public void ResetTarget_ColdAndWarm_UsePowerOnAndBusReset()
    {
        var h = new Harness().Ready();
        h.Target.ResetTarget(cold: true);
        Assert.Equal(Asc.PowerOnOccurred, h.Run(Cdb.TestUnitReady()).AscAscq);
        h.Target.ResetTarget(cold: false);
        Assert.Equal(Asc.ScsiBusResetOccurred, h.Run(Cdb.TestUnitReady()).AscAscq);
    }

    [Fact]
    public void ClearTaskSet_OtherNexus_GetsCommandsCleared()
    {
        var h = new Harness().Ready().Ready(Harness.NexusB);
        h.Target.ClearTaskSet(0, Harness.NexusA);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.TestUnitReady()).Status);
        Assert.Equal(Asc.CommandsClearedByAnotherInitiator, h.Run(Cdb.TestUnitReady(), nexus: Harness.NexusB).AscAscq);
    }

    [Fact]
    public void NexusLost_Reconnect_PowerOnAgainAndPreventCleared()
    {
        var h = new Harness(options: new LogicalUnitOptions { Removable = true }).Ready().Ready(Harness.NexusB);
        h.Run(Cdb.PreventAllow(1), nexus: Harness.NexusB);
        Assert.Equal(Asc.MediumRemovalPrevented, h.Run(Cdb.StartStop(false, true)).AscAscq);
        h.Target.NexusLost(Harness.NexusB);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.StartStop(false, true)).Status);
        Assert.Equal(SenseKey.UnitAttention, h.Run(Cdb.TestUnitReady(), nexus: Harness.NexusB).Key);
    }
}

public class LunTests
{
    [Fact]
    public void Inquiry_UnknownLun_PeripheralQualifier3()
    {
        var h = new Harness();
        var r = h.Run(Cdb.Inquiry(), 96, lunField: LunAddressing.Encode(5));
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(0x7F, r.Data[0]);
    }

    [Fact]
    public void Read_UnknownLun_LogicalUnitNotSupported()
    {
        var h = new Harness();
        var r = h.Run(Cdb.Rw10(0x28, 0, 1), 512, lunField: LunAddressing.Encode(7));
        Assert.Equal(SenseKey.IllegalRequest, r.Key);
        Assert.Equal(Asc.LogicalUnitNotSupported, r.AscAscq);
        var sense = h.Run(Cdb.RequestSense(), 252, lunField: LunAddressing.Encode(7));
        Assert.Equal(Asc.LogicalUnitNotSupported, SenseBuilder.Parse(sense.Data).AscAscq);
    }

    [Theory]
    [InlineData(0x0000_0000_0000_0000UL, 0UL)]
    [InlineData(0x0005_0000_0000_0000UL, 5UL)]
    [InlineData(0x4105_0000_0000_0000UL, 0x105UL)]
    [InlineData(0x4005_0000_0000_0000UL, 5UL)]
    [InlineData(0x0105_0000_0000_0000UL, LunAddressing.Invalid)]
    [InlineData(0x0005_0001_0000_0000UL, LunAddressing.Invalid)]
    [InlineData(0x8005_0000_0000_0000UL, LunAddressing.Invalid)]
    public void Decode_LunField_PeripheralAndFlat(ulong field, ulong expected) =>
        Assert.Equal(expected, LunAddressing.Decode(field));

    [Fact]
    public void ReportLuns_SmallAndLargeLuns_PeripheralAndFlatEncoding()
    {
        var h = new Harness(16, null, false, 3, 300);
        var r = h.Run(Cdb.ReportLuns(), 64);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(32, r.Data.Length);
        Assert.Equal(24u, BinaryPrimitives.ReadUInt32BigEndian(r.Data));
        Assert.Equal(0x0000_0000_0000_0000UL, BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(8)));
        Assert.Equal(0x0003_0000_0000_0000UL, BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(16)));
        Assert.Equal(0x412C_0000_0000_0000UL, BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(24)));
        Assert.Equal(300UL, LunAddressing.Decode(BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(24))));
        Assert.Same(h.Target.Luns, h.Target.Luns);
        Assert.Equal(new ulong[] { 0, 3, 300 }, h.Target.Luns);
    }

    [Fact]
    public void ReportLuns_AllocationBelow16_InvalidField()
    {
        var r = new Harness().Run(Cdb.ReportLuns(alloc: 15), 64);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(6, r.Sense[17]);
    }

    [Fact]
    public void ReportLuns_WellKnownOnly_EmptyList()
    {
        var r = new Harness().Run(Cdb.ReportLuns(select: 1), 64);
        Assert.Equal(8, r.Data.Length);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(r.Data));
        Assert.Equal(Asc.InvalidFieldInCdb, new Harness().Run(Cdb.ReportLuns(select: 3), 64).AscAscq);
    }
}

public class InquiryTests
{
    [Fact]
    public void Standard_Fields_MatchSpc4()
    {
        var r = new Harness(options: new LogicalUnitOptions { Removable = true }).Run(Cdb.Inquiry(alloc: 260), 260);
        Assert.Equal(96, r.Data.Length);
        Assert.Equal(0x00, r.Data[0]);
        Assert.Equal(0x80, r.Data[1]);
        Assert.Equal(0x06, r.Data[2]);
        Assert.Equal(0x12, r.Data[3]);
        Assert.Equal(r.Data.Length - 5, r.Data[4]);
        Assert.Equal(0x02, r.Data[7]);
        Assert.Equal("SLUICE  ", System.Text.Encoding.ASCII.GetString(r.Data, 8, 8));
        Assert.Equal(0x04C0, BinaryPrimitives.ReadUInt16BigEndian(r.Data.AsSpan(64)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(36)]
    public void Standard_AllocationLength_Truncates(int alloc)
    {
        var r = new Harness().Run(Cdb.Inquiry(alloc: (ushort)alloc), 260);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(alloc, r.Data.Length);
    }

    [Fact]
    public void PageCodeWithoutEvpd_InvalidFieldInCdb()
    {
        var r = new Harness().Run(Cdb.Inquiry(false, 0x80), 255);
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(0x80 | 0x40, r.Sense[15]);
        Assert.Equal(2, r.Sense[17]);
    }

    [Fact]
    public void SupportedPages_EachListedPage_Readable()
    {
        var h = new Harness();
        var list = h.Run(Cdb.Inquiry(true, 0), 255).Data;
        int n = BinaryPrimitives.ReadUInt16BigEndian(list.AsSpan(2));
        Assert.Equal(7, n); // 00h 80h 83h 8Fh B0h B1h B2h
        for (int i = 0; i < n; i++)
        {
            var page = h.Run(Cdb.Inquiry(true, list[4 + i]), 255);
            Assert.Equal(ScsiStatus.Good, page.Status);
            Assert.Equal(list[4 + i], page.Data[1]);
            Assert.Equal(page.Data.Length - 4, BinaryPrimitives.ReadUInt16BigEndian(page.Data.AsSpan(2)));
        }
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb.Inquiry(true, 0x99), 255).AscAscq);
    }

    [Fact]
    public void BlockLimits_Alloc64_PageLength3CAndMaxTransfer()
    {
        var h = new Harness(options: new LogicalUnitOptions { MaxTransferLengthBytes = 1024 * 1024 });
        var r = h.Run(Cdb.Inquiry(true, 0xB0, 64), 64);
        Assert.Equal(64, r.Data.Length);
        Assert.Equal(0x3C, r.Data[3]);
        Assert.Equal(2048u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(8)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(20)));
    }

    [Fact]
    public void DeviceIdentification_Designators_NaaPortsAndNames()
    {
        var h = new Harness(options: new LogicalUnitOptions { NaaIdentifier = 0x0123456789ABCDEF });
        var d = h.Run(Cdb.Inquiry(true, 0x83), 1024).Data;
        var types = new List<(int Assoc, int Type)>();
        int p = 4;
        while (p < d.Length)
        {
            types.Add(((d[p + 1] >> 4) & 3, d[p + 1] & 0xF));
            if ((d[p + 1] & 0xF) == 3)
            {
                Assert.Equal(0x6, d[p + 4] >> 4);
                Assert.Equal(0x0123456789ABCDEFUL, BinaryPrimitives.ReadUInt64BigEndian(d.AsSpan(p + 12)));
            }
            if ((d[p + 1] & 0xF) == 8)
            {
                string name = System.Text.Encoding.UTF8.GetString(d, p + 4, d[p + 3]).TrimEnd('\0');
                Assert.Equal(((d[p + 1] >> 4) & 3) == 1 ? Harness.NexusA.TargetPortName : Harness.TargetName, name);
                Assert.Equal(0, d[p + 3] % 4);
            }
            p += 4 + d[p + 3];
        }
        Assert.Equal(d.Length, p);
        Assert.Equal([(0, 3), (0, 1), (1, 4), (1, 5), (1, 8), (2, 8)], types);
    }
}

public class ModePageTests
{
    [Fact]
    public void ModeSense6_AllPages_HeaderBlockDescriptorAndPages()
    {
        var h = new Harness(blocks: 2048).Ready();
        var r = h.Run(Cdb.ModeSense6(0x3F), 255);
        Assert.Equal(ScsiStatus.Good, r.Status);
        Assert.Equal(r.Data.Length - 1, r.Data[0]);
        Assert.Equal(0x10, r.Data[2]); // DPOFUA, not write protected
        Assert.Equal(8, r.Data[3]);
        Assert.Equal(2048u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(4)));
        Assert.Equal(512u, BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(8)));
        Assert.Equal(ModePages.CachingCode, r.Data[12]);
        Assert.Equal(0x04, r.Data[14]); // WCE
        Assert.Equal(4 + 8 + 20 + 12 + 12, r.Data.Length);
    }

    [Fact]
    public void ModeSense6_AllocationLength4_Truncated()
    {
        var r = new Harness().Ready().Run(Cdb.ModeSense6(0x3F, alloc: 4), 4);
        Assert.Equal(4, r.Data.Length);
    }

    [Fact]
    public void ModeSense10_Llbaa_LongDescriptor()
    {
        var r = new Harness().Ready().Run(Cdb.ModeSense10(ModePages.ControlCode, llbaa: true), 512);
        Assert.Equal(0x01, r.Data[4]);
        Assert.Equal(16, BinaryPrimitives.ReadUInt16BigEndian(r.Data.AsSpan(6)));
        Assert.Equal(1024UL, BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(8)));
        Assert.Equal(ModePages.ControlCode, r.Data[24]);
        Assert.Equal(r.Data.Length - 2, BinaryPrimitives.ReadUInt16BigEndian(r.Data));
    }

    [Fact]
    public void ModeSense_SavedValues_SavingParametersNotSupported()
    {
        var r = new Harness().Ready().Run(Cdb.ModeSense6(0x08, pc: 3), 255);
        Assert.Equal(Asc.SavingParametersNotSupported, r.AscAscq);
    }

    [Fact]
    public void ModeSense_UnknownPageOrSubpage_InvalidField()
    {
        var h = new Harness().Ready();
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb.ModeSense6(0x19), 255).AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb.ModeSense6(0x08, subpage: 1), 255).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.ModeSense6(0x3F, subpage: 0xFF), 255).Status);
    }

    [Fact]
    public void ModeSense_Changeable_ReportsWceDSenseSwp()
    {
        var r = new Harness().Ready().Run(Cdb.ModeSense6(0x3F, pc: 1, dbd: true), 255);
        Assert.Equal(0, r.Data[3]);
        Assert.Equal(0x04, r.Data[4 + 2]);
        Assert.Equal(0x04, r.Data[4 + 20 + 2]);
        Assert.Equal(0x08, r.Data[4 + 20 + 4]);
    }

    private static byte[] ControlPageSelect(Harness h, Action<byte[]> edit)
    {
        var page = h.Run(Cdb.ModeSense6(ModePages.ControlCode, dbd: true), 255).Data[4..];
        edit(page);
        var list = new byte[4 + page.Length];
        page.CopyTo(list, 4);
        return list;
    }

    [Fact]
    public void ModeSelect_DSense_DescriptorSenseAndUaToOthers()
    {
        var h = new Harness().Ready().Ready(Harness.NexusB);
        var list = ControlPageSelect(h, p => p[2] |= 0x04);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.ModeSelect6(list.Length), dataOut: list).Status);
        var oob = h.Run(Cdb.Rw16(0x88, ulong.MaxValue, 1), 512);
        Assert.Equal(0x72, oob.Sense[0]);
        Assert.Equal(Asc.LbaOutOfRange, oob.AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.TestUnitReady()).Status);
        Assert.Equal(Asc.ModeParametersChanged, h.Run(Cdb.TestUnitReady(), nexus: Harness.NexusB).AscAscq);
        var back = h.Run(Cdb.ModeSense6(ModePages.ControlCode, dbd: true), 255).Data;
        Assert.Equal(0x04, back[6] & 0x04);
    }

    [Fact]
    public void ModeSelect_Swp_WritesRefused()
    {
        var h = new Harness().Ready();
        var list = ControlPageSelect(h, p => p[4] |= 0x08);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.ModeSelect6(list.Length), dataOut: list).Status);
        Assert.Equal(0x80, h.Run(Cdb.ModeSense6(0x3F), 255).Data[2] & 0x80);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Rw10(0x28, 0, 1), 512).Status);
        var w = h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512]);
        Assert.Equal(SenseKey.DataProtect, w.Key);
        Assert.Equal(Asc.SoftwareWriteProtected, w.AscAscq);
    }

    [Fact]
    public void ModeSelect_Wce_ClearedMakesWritesFua()
    {
        var h = new Harness().Ready();
        var page = h.Run(Cdb.ModeSense6(ModePages.CachingCode, dbd: true), 255).Data[4..];
        page[2] &= unchecked((byte)~0x04);
        var list = new byte[4 + page.Length];
        page.CopyTo(list, 4);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.ModeSelect6(list.Length), dataOut: list).Status);
        h.Run(Cdb.Rw10(0x2A, 0, 1), dataOut: new byte[512]);
        Assert.Equal(1, h.Device.FuaWrites);
    }

    [Fact]
    public void ModeSelect_NonChangeableBit_InvalidFieldInParameterListCd0()
    {
        var h = new Harness().Ready();
        var list = ControlPageSelect(h, p => p[2] |= 0x80); // TST
        var r = h.Run(Cdb.ModeSelect6(list.Length), dataOut: list);
        Assert.Equal(Asc.InvalidFieldInParameterList, r.AscAscq);
        Assert.Equal(0x80 | 0x08 | 7, r.Sense[15]); // SKSV, C/D=0, BPV, bit 7
        Assert.Equal(6, r.Sense[17]);
    }

    [Fact]
    public void ModeSelect_ShortList_ParameterListLengthError()
    {
        var h = new Harness().Ready();
        var list = ControlPageSelect(h, _ => { });
        var r = h.Run(Cdb.ModeSelect6(list.Length - 2), dataOut: list[..^2]);
        Assert.Equal(Asc.ParameterListLengthError, r.AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb.ModeSelect6(list.Length, sp: true), dataOut: list).AscAscq);
    }
}

public class MediumTests
{
    private static Harness Removable() => new Harness(options: new LogicalUnitOptions { Removable = true }).Ready();

    [Fact]
    public void Eject_ThenMediumCommands_NotReadyMediumNotPresent()
    {
        var h = Removable();
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.StartStop(start: false, loej: true, immed: true)).Status);
        Assert.Equal(1, h.Device.Flushes);
        foreach (var cdb in new[] { Cdb.TestUnitReady(), Cdb.Rw10(0x28, 0, 1), Cdb.ReadCapacity10(), Cdb.ReadCapacity16(), Cdb.Rw10(0x35, 0, 1), Cdb.Rw10(0x34, 0, 1), Cdb.Rw10(0x2F, 0, 1, 0x02) })
        {
            var r = h.Run(cdb, 512, new byte[512]);
            Assert.Equal(SenseKey.NotReady, r.Key);
            Assert.Equal(Asc.MediumNotPresent, r.AscAscq);
        }
        Assert.Equal(Asc.InvalidCommandOperationCode, h.Run([0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0]).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.Inquiry(), 96).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.StartStop(start: true, loej: true)).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.TestUnitReady()).Status);
    }

    [Fact]
    public void StopWithoutLoej_UnitStaysReady()
    {
        var h = Removable();
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.StartStop(start: false, loej: false)).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.TestUnitReady()).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.StartStop(start: false, loej: false, noFlush: true)).Status);
        Assert.Equal(1, h.Device.Flushes);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(15)]
    public void PowerCondition_NonZero_LoejIgnored(int pc)
    {
        var h = Removable();
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.StartStop(start: false, loej: true, powerCondition: pc)).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.TestUnitReady()).Status);
    }

    [Fact]
    public void Eject_NotRemovable_InvalidField()
    {
        var r = new Harness().Ready().Run(Cdb.StartStop(false, true));
        Assert.Equal(Asc.InvalidFieldInCdb, r.AscAscq);
        Assert.Equal(4, r.Sense[17]);
    }

    [Fact]
    public void Prevent_EjectAndLoad_MediumRemovalPrevented()
    {
        var h = Removable().Ready(Harness.NexusB);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.PreventAllow(1)).Status);
        var r = h.Run(Cdb.StartStop(false, true));
        Assert.Equal(SenseKey.IllegalRequest, r.Key);
        Assert.Equal(Asc.MediumRemovalPrevented, r.AscAscq);
        Assert.Equal(Asc.MediumRemovalPrevented, h.Run(Cdb.StartStop(false, true), nexus: Harness.NexusB).AscAscq);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.TestUnitReady()).Status);
        h.Run(Cdb.PreventAllow(0));
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.StartStop(false, true)).Status);
        Assert.Equal(ScsiStatus.Good, h.Run(Cdb.PreventAllow(1)).Status);
        Assert.Equal(Asc.MediumRemovalPrevented, h.Run(Cdb.StartStop(true, true)).AscAscq);
        Assert.Equal(Asc.InvalidFieldInCdb, h.Run(Cdb.PreventAllow(2)).AscAscq);
    }
}
