using System.Text;
using Sluice.Interop.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Sluice.Interop.Tests;

/// <summary>
/// Hostile input on a raw TCP connection. Per RFC 7143 a bad login request earns a Login
/// Response with status class 2 (initiator error, §11.13.5), a bad PDU in full feature phase a
/// Reject (§11.17: 0x04 protocol error, 0x05 command not supported, 0x09 invalid PDU field)
/// or a dropped connection. Whatever the target picks, it must answer or close within 5 s,
/// and a well-behaved session opened before the attack, and a new one after it, keep working
/// (DESIGN.md: a bad PDU costs the sender its connection, never the server its other sessions).
/// </summary>
public abstract class MalformedInputTests<TFixture>(TFixture target, ITestOutputHelper output) : IAsyncLifetime where TFixture : TargetFixture
{
    private const string HostileInitiator = "iqn.2026-11.dev.sluice:hostile";
    private static readonly TimeSpan AnswerWithin = TimeSpan.FromSeconds(5);
    private RawConnection? _bystander;

    protected TFixture Target { get; } = target;

    public async Task InitializeAsync()
    {
        if (Target.SkipReason is not null)
            return;
        _bystander = await RawConnection.ConnectAsync(Target.Main);
        await _bystander.LoginAsync("iqn.2026-11.dev.sluice:bystander", Target.Main.Iqn);
    }

    public async Task DisposeAsync()
    {
        if (_bystander is not null)
            await _bystander.DisposeAsync();
    }

    private void SkipUnlessAvailable() => Skip.If(Target.SkipReason is not null, Target.SkipReason);

    /// <summary>The first answer that isn't a NOP-In or an Async Message, a close, or a timeout.</summary>
    private static async Task<Answer> VerdictAsync(RawConnection connection)
    {
        var deadline = DateTime.UtcNow + AnswerWithin;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                return new Answer(AnswerKind.Timeout, [], []);
            var answer = await connection.ReceiveAsync(left);
            if (answer.Kind == AnswerKind.Pdu && answer.Opcode is RawPdu.OpNopIn or RawPdu.OpAsyncMessage)
                continue;
            return answer;
        }
    }

    /// <summary>
    /// Where a peer is known to answer otherwise (tgt is the reference for the test logic, not
    /// for RFC strictness): the case key and what it does. The case still runs, the target must
    /// still serve afterwards, and then the test is reported as skipped with this reason.
    /// </summary>
    protected virtual string? KnownDeviation(string caseKey) => null;

    /// <summary>Asserts an acceptable answer or a close (never a hang), then that the target still serves.</summary>
    private async Task AssertAnsweredOrClosedAsync(Answer answer, string caseKey, string what, Func<Answer, bool> acceptable)
    {
        output.WriteLine($"{Target.Kind}: {what}: {answer}");
        string? problem = answer.Kind switch
        {
            AnswerKind.Timeout => $"{what}: neither an answer nor a close within {AnswerWithin.TotalSeconds}s (hang)",
            AnswerKind.Pdu when !acceptable(answer) => $"{what}: unexpected answer {answer}",
            _ => null,
        };
        await AssertTargetStillServesAsync();
        if (problem is not null && KnownDeviation(caseKey) is { } deviation)
            Skip.If(true, $"known {Target.Kind} deviation ({deviation}): {problem}");
        Assert.True(problem is null, $"{problem}\n--- {Target.Kind} server\n{Target.ServerLog}");
    }

    private static bool IsLoginInitiatorError(Answer a) => a.Opcode == RawPdu.OpLoginResponse && a.Bhs[36] == 0x02;

    private static bool IsReject(Answer a, params byte[] reasons) => a.Opcode == RawPdu.OpReject && reasons.Contains(a.Bhs[2]);

    /// <summary>The session opened before the attack still answers, and a new session can log in and read.</summary>
    private async Task AssertTargetStillServesAsync()
    {
        Assert.True(Target.IsRunning, $"the {Target.Kind} server died\n{Target.ServerLog}");
        Assert.Equal(0, await ReadCapacityPastUnitAttentionAsync(_bystander!));
        if (Tools.Find("iscsi-readcapacity16") is { } tool)
        {
            var r = await ProcessRunner.RunAsync(tool, ["-i", TargetFixture.InitiatorName, Target.Main.Url()], TimeSpan.FromSeconds(30));
            Assert.True(r.Succeeded, $"a new session after the attack failed\n{r}\n--- {Target.Kind} server\n{Target.ServerLog}");
            Assert.Contains($"Total size:{TargetFixture.MainLunBytes}", r.StdOut, StringComparison.Ordinal);
        }
        else
        {
            await using var fresh = await RawConnection.ConnectAsync(Target.Main);
            await fresh.LoginAsync("iqn.2026-11.dev.sluice:after", Target.Main.Iqn);
            Assert.Equal(0, await ReadCapacityPastUnitAttentionAsync(fresh));
        }
    }

    /// <summary>
    /// READ CAPACITY(10)'s status; a CHECK CONDITION is retried twice, since the first command
    /// of a new I_T nexus may see a unit attention (SAM-5 §5.14: power on, reset).
    /// </summary>
    private async Task<byte> ReadCapacityPastUnitAttentionAsync(RawConnection connection)
    {
        byte status = 0;
        for (int i = 0; i < 3; i++)
        {
            status = await connection.ReadCapacity10Async((ulong)Target.Main.Lun, TimeSpan.FromSeconds(10));
            if (status != 0x02)
                break;
        }
        return status;
    }

    [SkippableFact]
    public async Task GarbageBeforeLogin_AnswersOrCloses_NoHang()
    {
        SkipUnlessAvailable();
        await using var c = await RawConnection.ConnectAsync(Target.Main);
        // Someone speaking HTTP to port 3260: byte 0 is opcode 0x07 (not an initiator opcode),
        // the "length" fields claim AHS and megabytes of data that will never come.
        byte[] garbage = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: hostile\r\n\r\n");
        await c.SendAsync(garbage);
        var answer = await VerdictAsync(c);
        await AssertAnsweredOrClosedAsync(answer, "garbage", "HTTP request as the first PDU",
            a => IsReject(a, 0x04, 0x05, 0x09) || IsLoginInitiatorError(a));
    }

    [SkippableFact]
    public async Task TruncatedHeaderThenClose_TargetDropsConnection()
    {
        SkipUnlessAvailable();
        await using var c = await RawConnection.ConnectAsync(Target.Main);
        byte[] login = RawPdu.Login(0, 1, true, 1, 1, 0, 0, RawConnection.SecurityKeys(HostileInitiator, Target.Main.Iqn));
        await c.SendAsync(login[..30]);
        c.ShutdownSend();
        var answer = await VerdictAsync(c);
        await AssertAnsweredOrClosedAsync(answer, "truncated", "30 of 48 header bytes then EOF", _ => false);
    }

    [SkippableFact]
    public async Task LoginWithDataSegmentLength16MiB_RefusedWithoutWaitingForData()
    {
        SkipUnlessAvailable();
        await using var c = await RawConnection.ConnectAsync(Target.Main);
        byte[] login = RawPdu.Login(0, 1, true, 1, 1, 0, 0, RawConnection.SecurityKeys(HostileInitiator, Target.Main.Iqn));
        byte[] header = login[..RawPdu.BhsLength];
        // 2^24 - 1 bytes, the field's maximum: far beyond the 8192 bytes a login PDU may carry (§6.1).
        RawPdu.SetDataSegmentLength(header, 0xFFFFFF);
        await c.SendAsync(header);
        await c.SendAsync(login[RawPdu.BhsLength..]);
        var answer = await VerdictAsync(c);
        await AssertAnsweredOrClosedAsync(answer, "login-16MiB", "Login Request declaring 16 MiB of data",
            a => IsLoginInitiatorError(a) || IsReject(a, 0x04, 0x09));
    }

    [SkippableFact]
    public async Task UnknownOpcodeAfterLogin_RejectedOrClosed()
    {
        SkipUnlessAvailable();
        await using var c = await RawConnection.ConnectAsync(Target.Main);
        await c.LoginAsync(HostileInitiator, Target.Main.Iqn);
        // 0x0d is not an initiator opcode (§11.1.1: 0x00-0x06, 0x10, 0x1c-0x1e).
        byte[] bhs = RawPdu.Header(0x0d, 0x80, 0, c.NextItt());
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bhs.AsSpan(24), c.CmdSN);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bhs.AsSpan(28), c.ExpStatSN);
        await c.SendAsync(bhs);
        var answer = await VerdictAsync(c);
        await AssertAnsweredOrClosedAsync(answer, "unknown-opcode", "unknown opcode 0x0d in full feature phase", a => IsReject(a, 0x04, 0x05, 0x09));
    }

    /// <summary>Operational-stage keys the target must not accept as they are.</summary>
    public static TheoryData<string> BadOperationalKeys => new()
    {
        "MaxRecvDataSegmentLength=1",   // range 512..2^24-1 (§13.12)
        "HeaderDigest=Bogus",           // no acceptable value in the list (§6.2.1)
        "KeyWithoutEqualsSign",         // not key=value (§6.1)
    };

    [SkippableTheory]
    [MemberData(nameof(BadOperationalKeys))]
    public async Task LoginWithBadKey_InitiatorErrorRejectOrClose(string badKey)
    {
        SkipUnlessAvailable();
        await using var c = await RawConnection.ConnectAsync(Target.Main);
        await c.SecurityStageAsync(HostileInitiator, Target.Main.Iqn);
        string[] keys = [.. RawConnection.OperationalKeys().Where(k => !k.StartsWith(badKey.Split('=')[0] + "=", StringComparison.Ordinal)), badKey];
        var answer = await c.LoginStepAsync(1, 3, keys, AnswerWithin);
        if (answer.Kind == AnswerKind.Pdu && answer.Opcode is RawPdu.OpNopIn or RawPdu.OpAsyncMessage)
            answer = await VerdictAsync(c);
        string name = badKey.Split('=')[0];
        await AssertAnsweredOrClosedAsync(answer, $"key:{badKey}", $"operational key '{badKey}'", a =>
            IsLoginInitiatorError(a)
            // A successful Login Response is fine only when it answers the key with Reject (§6.2).
            || (a.Opcode == RawPdu.OpLoginResponse && a.Bhs[36] == 0
                && RawPdu.ParseText(a.Data).TryGetValue(name, out string? v) && v == "Reject"));
    }

    [SkippableFact]
    public async Task ScsiCommandWithDataBeyondMaxRecvDataSegmentLength_RejectedOrClosed()
    {
        SkipUnlessAvailable();
        await using var c = await RawConnection.ConnectAsync(Target.Main);
        await c.LoginAsync(HostileInitiator, Target.Main.Iqn);
        int length = ((c.TargetMaxRecvDataSegmentLength / 512) + 8) * 512;
        byte[] cdb = new byte[10];
        cdb[0] = 0x2a; // WRITE(10) at LBA 0
        cdb[7] = (byte)((length / 512) >> 8);
        cdb[8] = (byte)(length / 512);
        byte[] data = new byte[length];
        await c.SendAsync(RawPdu.ScsiCommand((ulong)Target.Main.Lun, c.NextItt(), c.CmdSN, c.ExpStatSN, cdb, (uint)length, read: false, write: true, data));
        var answer = await VerdictAsync(c);
        await AssertAnsweredOrClosedAsync(answer, "write-beyond-mrdsl", $"WRITE(10) with {length} bytes of immediate data, target MaxRecvDataSegmentLength {c.TargetMaxRecvDataSegmentLength}",
            a => IsReject(a, 0x04, 0x09)
                // or the command fails with CHECK CONDITION (status 0x02), as SAM allows for a bad transfer
                || (a.Opcode == RawPdu.OpScsiResponse && a.Bhs[3] == 0x02));
    }
}

[Collection(TgtCollection.Name)]
public sealed class TgtMalformedInputTests(TgtTargetFixture target, ITestOutputHelper output)
    : MalformedInputTests<TgtTargetFixture>(target, output)
{
    /// <summary>What tgt 1.0.85 does instead (docs/testing.md).</summary>
    protected override string? KnownDeviation(string caseKey) => caseKey switch
    {
        "garbage" => "tgt trusts the lengths of a header with an invalid opcode and waits for megabytes that never come",
        "key:KeyWithoutEqualsSign" => "tgt ignores a login key without '=' and completes the login",
        _ => null,
    };
}

[Collection(SluiceCollection.Name)]
public sealed class SluiceMalformedInputTests(SluiceTargetFixture target, ITestOutputHelper output)
    : MalformedInputTests<SluiceTargetFixture>(target, output)
{
    /// <summary>
    /// Open bugs, each reported as a skip until fixed; delete the line with the fix so the case
    /// fails again if it comes back.
    /// </summary>
    protected override string? KnownDeviation(string caseKey) => caseKey switch
    {
        _ => null,
    };
}
