using System.Text;
using Sluice.Iscsi.Chap;
using Sluice.Iscsi.Login;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Tests;

public class LoginTargetStateMachineTests
{
    private const string Iqn = "iqn.2024-01.com.example:host";
    private const string Tgt = "iqn.2024-01.com.example:disk";
    private static readonly ChapSecret InitiatorChap = new("chapuser", "chapsecret12");
    private static readonly ChapSecret TargetChap = new("targetuser", "targetsecret");

    private sealed class FakeHost : ITargetLoginHost
    {
        public bool Exists { get; init; } = true;
        public bool Allowed { get; init; } = true;
        public ChapSecret? Chap { get; init; }
        public ChapSecret? Mutual { get; init; }
        public List<(string? Target, string Initiator, bool Discovery)> Calls { get; } = [];

        public TargetLoginDecision ResolveTarget(string? targetName, string initiatorName, bool discovery)
        {
            Calls.Add((targetName, initiatorName, discovery));
            return new TargetLoginDecision { Exists = Exists, Allowed = Allowed, Chap = Chap, MutualChap = Mutual, Alias = discovery ? null : "disk0" };
        }
    }

    private static LoginRequestInfo Req(int csg, int nsg, bool transit, params (string Key, string Value)[] pairs) =>
        Req(csg, nsg, transit, cont: false, TextCodec.Encode(pairs.Select(p => new TextPair(p.Key, p.Value))));

    private static LoginRequestInfo Req(int csg, int nsg, bool transit, bool cont, byte[] data,
        byte versionMin = 0, ulong isid = 0x400001370000, ushort tsih = 0, ushort cid = 0) =>
        new(transit, cont, csg, nsg, 0, versionMin, isid, tsih, 0x1234, cid, 1, 0, data);

    private static Dictionary<string, string> Pairs(LoginReply reply)
    {
        Assert.True(TextCodec.TryParse(reply.Data, false, out var pairs, out var error), error.ToString());
        return pairs.ToDictionary(p => p.Key, p => p.Value);
    }

    private static TargetLoginStateMachine Machine(FakeHost? host = null, TargetNegotiationSettings? settings = null) =>
        new(settings ?? new TargetNegotiationSettings(), host ?? new FakeHost(), 1);

    private static readonly (string, string)[] LibiscsiOperational =
    [
        ("HeaderDigest", "None,CRC32C"), ("DataDigest", "None"), ("InitialR2T", "No"), ("ImmediateData", "Yes"),
        ("MaxBurstLength", "262144"), ("FirstBurstLength", "262144"), ("DefaultTime2Wait", "2"), ("DefaultTime2Retain", "0"),
        ("MaxOutstandingR2T", "1"), ("ErrorRecoveryLevel", "0"), ("IFMarker", "No"), ("OFMarker", "No"),
        ("MaxConnections", "1"), ("MaxRecvDataSegmentLength", "262144"), ("DataPDUInOrder", "Yes"), ("DataSequenceInOrder", "Yes"),
    ];

    private static (string, string)[] Names(string sessionType = "Normal") =>
        sessionType == "Normal"
            ? [("InitiatorName", Iqn), ("InitiatorAlias", "host"), ("TargetName", Tgt), ("SessionType", sessionType)]
            : [("InitiatorName", Iqn), ("SessionType", sessionType)];

    private static void AssertReject(LoginReply reply, ushort status)
    {
        Assert.True(reply.Failed);
        Assert.Equal(status, reply.Status);
        Assert.False(reply.Transit);
        Assert.Empty(reply.Data);
        Assert.NotNull(reply.FailureReason);
    }

    private static string Md5Hex(string chapI, string chapC, string secret)
    {
        Assert.True(TextValue.TryParseBinary(chapC, out var challenge));
        return TextValue.FormatHex(ChapMd5.Response(byte.Parse(chapI, System.Globalization.CultureInfo.InvariantCulture), secret, challenge));
    }

    [Fact]
    public void Login_NoAuthOperationalOnly_CompletesInOnePdu()
    {
        var host = new FakeHost();
        var sm = Machine(host);
        var reply = sm.Process(Req(1, 3, true, [.. Names(), .. LibiscsiOperational]));

        Assert.False(reply.Failed);
        Assert.Equal(LoginStatus.Success, reply.Status);
        Assert.True(reply.Transit);
        Assert.True(reply.LoginComplete);
        Assert.Equal(1, reply.CurrentStage);
        Assert.Equal(3, reply.NextStage);
        var pairs = Pairs(reply);
        Assert.Equal("1", pairs["TargetPortalGroupTag"]);
        Assert.Equal("disk0", pairs["TargetAlias"]);
        Assert.Equal("262144", pairs["MaxRecvDataSegmentLength"]);
        Assert.Equal("None", pairs["HeaderDigest"]);
        Assert.Equal("65536", pairs["FirstBurstLength"]);
        Assert.False(pairs.ContainsKey("InitiatorName"));

        Assert.True(sm.IsComplete);
        Assert.Equal(Iqn, sm.InitiatorName);
        Assert.Equal(Tgt, sm.TargetName);
        Assert.False(sm.IsDiscovery);
        Assert.Equal(Iqn, sm.Parameters.InitiatorName);
        Assert.Equal("host", sm.Parameters.InitiatorAlias);
        Assert.Equal((ushort)1, sm.Parameters.TargetPortalGroupTag);
        Assert.False(sm.Parameters.InitialR2T);
        Assert.Equal(262144, sm.Parameters.InitiatorMaxRecvDataSegmentLength);
        Assert.Equal(262144, sm.Parameters.TargetMaxRecvDataSegmentLength);
        Assert.Equal([(Tgt, Iqn, false)], host.Calls);
    }

    [Fact]
    public void Login_NoAuthThroughSecurityStage_Completes()
    {
        var sm = Machine();
        var r1 = sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "None")]));
        Assert.True(r1.Transit);
        Assert.Equal(0, r1.CurrentStage);
        Assert.Equal(1, r1.NextStage);
        Assert.False(r1.LoginComplete);
        Assert.Equal("None", Pairs(r1)["AuthMethod"]);
        Assert.Equal("1", Pairs(r1)["TargetPortalGroupTag"]);

        var r2 = sm.Process(Req(1, 3, true, LibiscsiOperational));
        Assert.True(r2.LoginComplete);
        Assert.False(Pairs(r2).ContainsKey("TargetPortalGroupTag"));
    }

    [Fact]
    public void Login_SecurityStraightToFullFeature_TargetSelectsOperationalStage()
    {
        var sm = Machine();
        var r1 = sm.Process(Req(0, 3, true, [.. Names(), ("AuthMethod", "None")]));
        Assert.True(r1.Transit);
        Assert.Equal(1, r1.NextStage);
        Assert.True(sm.Process(Req(1, 3, true)).LoginComplete);
        Assert.Equal(262144, sm.Parameters.TargetMaxRecvDataSegmentLength);
    }

    [Fact]
    public void Login_SecurityStraightToFullFeatureNothingToSay_Completes()
    {
        var sm = Machine(settings: new TargetNegotiationSettings { MaxRecvDataSegmentLength = 8192 });
        var r1 = sm.Process(Req(0, 3, true, [.. Names(), ("AuthMethod", "None")]));
        Assert.True(r1.LoginComplete);
        Assert.Equal(3, r1.NextStage);
        Assert.Equal(8192, sm.Parameters.TargetMaxRecvDataSegmentLength);
    }

    [Fact]
    public void Login_LibiscsiChapConversation_Completes()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap });

        var r1 = sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "CHAP,None")]));
        Assert.False(r1.Transit);
        Assert.Equal("CHAP", Pairs(r1)["AuthMethod"]);

        var r2 = sm.Process(Req(0, 1, false, ("CHAP_A", "5")));
        Assert.False(r2.Transit);
        var c = Pairs(r2);
        Assert.Equal("5", c["CHAP_A"]);

        var r3 = sm.Process(Req(0, 1, true, ("CHAP_N", "chapuser"), ("CHAP_R", Md5Hex(c["CHAP_I"], c["CHAP_C"], "chapsecret12"))));
        Assert.False(r3.Failed);
        Assert.True(r3.Transit);
        Assert.Equal(1, r3.NextStage);
        Assert.Empty(r3.Data);

        // libiscsi repeats the names in its first operational PDU.
        var r4 = sm.Process(Req(1, 3, true, [.. Names(), .. LibiscsiOperational]));
        Assert.True(r4.LoginComplete);
        Assert.Equal(Iqn, sm.Parameters.InitiatorName);
    }

    [Fact]
    public void Login_MutualChap_TargetAnswersInFinalSecurityResponse()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap, Mutual = TargetChap });
        sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "CHAP,None")]));
        var c = Pairs(sm.Process(Req(0, 1, false, ("CHAP_A", "5"))));
        var initiatorChallenge = "0x" + new string('5', 64);
        var r3 = sm.Process(Req(0, 1, true,
            ("CHAP_N", "chapuser"), ("CHAP_R", Md5Hex(c["CHAP_I"], c["CHAP_C"], "chapsecret12")),
            ("CHAP_I", "9"), ("CHAP_C", initiatorChallenge)));
        Assert.True(r3.Transit);
        var m = Pairs(r3);
        Assert.Equal("targetuser", m["CHAP_N"]);
        Assert.Equal(Md5Hex("9", initiatorChallenge, "targetsecret"), m["CHAP_R"]);
        Assert.True(sm.Process(Req(1, 3, true, LibiscsiOperational)).LoginComplete);
    }

    [Fact]
    public void Login_ChapWithInitiatorFlowUsingChapInitiator_Completes()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap, Mutual = TargetChap });
        var initiator = new ChapInitiator(InitiatorChap, TargetChap);
        sm.Process(Req(0, 1, false, [.. Names(), ("AuthMethod", "CHAP")]));
        var c = Pairs(sm.Process(Req(0, 1, false, ("CHAP_A", ChapInitiator.AlgorithmOffer))));
        Assert.True(initiator.TryRespond(c["CHAP_A"], c["CHAP_I"], c["CHAP_C"], out var reply));
        var r3 = sm.Process(Req(0, 1, false, reply.Select(p => (p.Key, p.Value)).ToArray()));
        Assert.False(r3.Transit);
        var m = Pairs(r3);
        Assert.True(initiator.VerifyTarget(m["CHAP_N"], m["CHAP_R"]));
        var r4 = sm.Process(Req(0, 1, true));
        Assert.True(r4.Transit);
        Assert.True(sm.Process(Req(1, 3, true)).LoginComplete);
    }

    [Fact]
    public void Login_ReflectedChallenge_AuthenticationFailure()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap, Mutual = TargetChap });
        sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "CHAP,None")]));
        var c = Pairs(sm.Process(Req(0, 1, false, ("CHAP_A", "5"))));
        var r = sm.Process(Req(0, 1, true,
            ("CHAP_N", "chapuser"), ("CHAP_R", Md5Hex(c["CHAP_I"], c["CHAP_C"], "chapsecret12")),
            ("CHAP_I", c["CHAP_I"]), ("CHAP_C", c["CHAP_C"])));
        AssertReject(r, LoginStatus.AuthenticationFailure);
    }

    [Fact]
    public void Login_WrongChapSecret_AuthenticationFailure()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap });
        sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "CHAP,None")]));
        var c = Pairs(sm.Process(Req(0, 1, false, ("CHAP_A", "5"))));
        var r = sm.Process(Req(0, 1, true, ("CHAP_N", "chapuser"), ("CHAP_R", Md5Hex(c["CHAP_I"], c["CHAP_C"], "wrongsecret"))));
        AssertReject(r, LoginStatus.AuthenticationFailure);
        Assert.True(sm.IsFailed);
        AssertReject(sm.Process(Req(0, 1, true)), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_ChapTargetOfferedOnlyNone_AuthenticationFailure()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap });
        AssertReject(sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "None")])), LoginStatus.AuthenticationFailure);
    }

    [Fact]
    public void Login_ChapTargetSkipsSecurityStage_AuthenticationFailure()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap });
        AssertReject(sm.Process(Req(1, 3, true, [.. Names(), .. LibiscsiOperational])), LoginStatus.AuthenticationFailure);
    }

    [Fact]
    public void Login_ChapTargetTransitWithoutAuthMethod_AuthenticationFailure()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap });
        AssertReject(sm.Process(Req(0, 1, true, Names())), LoginStatus.AuthenticationFailure);
    }

    [Fact]
    public void Login_ChapTransitBeforeResponse_StaysInSecurity()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap });
        sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "CHAP")]));
        var r = sm.Process(Req(0, 1, true, ("CHAP_A", "5")));
        Assert.False(r.Transit);
        Assert.False(r.Failed);
    }

    [Fact]
    public void Login_ChapAlgorithmNotMd5_AuthenticationFailure()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap });
        sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "CHAP")]));
        AssertReject(sm.Process(Req(0, 1, false, ("CHAP_A", "6,7"))), LoginStatus.AuthenticationFailure);
    }

    [Fact]
    public void Login_ChapKeysWithoutAuthMethod_AuthenticationFailure()
    {
        var sm = Machine();
        AssertReject(sm.Process(Req(0, 1, false, [.. Names(), ("CHAP_A", "5")])), LoginStatus.AuthenticationFailure);
    }

    [Fact]
    public void Login_OpenTargetOfferedOnlyChap_AnswersRejectAndContinues()
    {
        var sm = Machine();
        var r = sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "CHAP")]));
        Assert.Equal("Reject", Pairs(r)["AuthMethod"]);
        Assert.True(r.Transit);
    }

    [Fact]
    public void Login_DiscoveryNoAuth_Completes()
    {
        var host = new FakeHost();
        var sm = Machine(host);
        var reply = sm.Process(Req(1, 3, true, [.. Names("Discovery"), .. LibiscsiOperational]));
        Assert.True(reply.LoginComplete);
        Assert.False(Pairs(reply).ContainsKey("TargetPortalGroupTag"));
        Assert.True(sm.IsDiscovery);
        Assert.Null(sm.TargetName);
        Assert.Equal(SessionType.Discovery, sm.Parameters.SessionType);
        Assert.Null(sm.Parameters.TargetPortalGroupTag);
        Assert.Equal([(null, Iqn, true)], host.Calls);
    }

    [Fact]
    public void Login_DiscoveryWithChap_Completes()
    {
        var sm = Machine(new FakeHost { Chap = InitiatorChap });
        sm.Process(Req(0, 1, true, [.. Names("Discovery"), ("AuthMethod", "CHAP,None")]));
        var c = Pairs(sm.Process(Req(0, 1, false, ("CHAP_A", "5"))));
        var r3 = sm.Process(Req(0, 1, true, ("CHAP_N", "chapuser"), ("CHAP_R", Md5Hex(c["CHAP_I"], c["CHAP_C"], "chapsecret12"))));
        Assert.True(r3.Transit);
        Assert.True(sm.Process(Req(1, 3, true, [.. Names("Discovery"), .. LibiscsiOperational])).LoginComplete);
        Assert.True(sm.IsDiscovery);
    }

    [Fact]
    public void Login_TargetOriginatesKeys_WaitsForAnswersBeforeTransit()
    {
        var sm = Machine(settings: new TargetNegotiationSettings { MaxBurstLength = 65536, FirstBurstLength = 16384 });
        var r1 = sm.Process(Req(1, 3, true, [.. Names(), ("MaxRecvDataSegmentLength", "65536")]));
        Assert.False(r1.Transit);
        var p = Pairs(r1);
        Assert.Equal("65536", p["MaxBurstLength"]);
        Assert.Equal("16384", p["FirstBurstLength"]);

        var r2 = sm.Process(Req(1, 3, true, ("MaxBurstLength", "65536"), ("FirstBurstLength", "8192")));
        Assert.True(r2.LoginComplete);
        Assert.Empty(r2.Data);
        Assert.Equal(65536, sm.Parameters.MaxBurstLength);
        Assert.Equal(8192, sm.Parameters.FirstBurstLength);
    }

    [Fact]
    public void Login_OperationalWithoutTransit_AnswersAndStays()
    {
        var sm = Machine();
        var r1 = sm.Process(Req(1, 0, false, [.. Names(), ("MaxBurstLength", "4096")]));
        Assert.False(r1.Transit);
        Assert.Equal("4096", Pairs(r1)["MaxBurstLength"]);
        // FirstBurstLength's default (65536) would now exceed MaxBurstLength, so the target offers it (§13.14).
        var r2 = sm.Process(Req(1, 3, true));
        Assert.False(r2.Transit);
        Assert.Equal("4096", Pairs(r2)["FirstBurstLength"]);
        var r3 = sm.Process(Req(1, 3, true, ("FirstBurstLength", "4096")));
        Assert.True(r3.LoginComplete);
        Assert.Equal(4096, sm.Parameters.MaxBurstLength);
        Assert.Equal(4096, sm.Parameters.FirstBurstLength);
    }

    [Fact]
    public void Login_RequestSplitOverContinuedPdus_AnsweredAfterFinal()
    {
        var text = TextCodec.Encode([.. Names().Select(p => new TextPair(p.Item1, p.Item2)), .. LibiscsiOperational.Select(p => new TextPair(p.Item1, p.Item2))]);
        var sm = Machine();
        int cut1 = 17, cut2 = 200;
        var r1 = sm.Process(Req(1, 3, false, cont: true, text[..cut1]));
        Assert.False(r1.Failed);
        Assert.False(r1.Transit);
        Assert.Empty(r1.Data);
        var r2 = sm.Process(Req(1, 3, false, cont: true, text[cut1..cut2]));
        Assert.Empty(r2.Data);
        var r3 = sm.Process(Req(1, 3, true, cont: false, text[cut2..]));
        Assert.True(r3.LoginComplete);
        Assert.Equal("1", Pairs(r3)["TargetPortalGroupTag"]);
    }

    [Fact]
    public void Login_ResponseLongerThan8192_SentWithContinueAndPulled()
    {
        var extensions = Enumerable.Range(0, 500).Select(i => ($"X-com.example.k{i:D4}", "v")).ToArray();
        var sm = Machine();
        var chunks = new List<LoginReply> { sm.Process(Req(1, 3, true, [.. Names(), .. extensions])) };
        Assert.False(chunks[0].Failed, chunks[0].FailureReason);
        Assert.False(sm.IsComplete);
        while (chunks[^1].Continue)
        {
            Assert.False(chunks[^1].Transit);
            Assert.InRange(chunks[^1].Data.Length, 1, 8192);
            chunks.Add(sm.Process(Req(1, 3, true, cont: false, [])));
        }

        Assert.True(chunks.Count >= 2);
        Assert.True(chunks[^1].LoginComplete);
        Assert.True(sm.IsComplete);
        var acc = new TextAccumulator();
        for (int i = 0; i < chunks.Count; i++)
        {
            acc.Append(chunks[i].Data, final: i == chunks.Count - 1);
        }

        Assert.Equal(500, acc.Pairs.Count(p => p.Value == "NotUnderstood"));
    }

    [Fact]
    public void Login_DataWhileResponsePending_InitiatorError()
    {
        var extensions = Enumerable.Range(0, 500).Select(i => ($"X-com.example.k{i:D4}", "v")).ToArray();
        var sm = Machine();
        Assert.True(sm.Process(Req(1, 3, true, [.. Names(), .. extensions])).Continue);
        AssertReject(sm.Process(Req(1, 3, true, ("MaxBurstLength", "512"))), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_MissingInitiatorName_MissingParameter()
    {
        AssertReject(Machine().Process(Req(1, 3, true, ("TargetName", Tgt))), LoginStatus.MissingParameter);
    }

    [Fact]
    public void Login_NormalWithoutTargetName_MissingParameter()
    {
        AssertReject(Machine().Process(Req(1, 3, true, ("InitiatorName", Iqn))), LoginStatus.MissingParameter);
    }

    [Fact]
    public void Login_UnknownSessionType_SessionTypeNotSupported()
    {
        AssertReject(Machine().Process(Req(1, 3, true, ("InitiatorName", Iqn), ("SessionType", "Bogus"))), LoginStatus.SessionTypeNotSupported);
    }

    [Fact]
    public void Login_UnknownTarget_NotFound()
    {
        AssertReject(Machine(new FakeHost { Exists = false }).Process(Req(1, 3, true, Names())), LoginStatus.NotFound);
    }

    [Fact]
    public void Login_AclRefuses_AuthorizationFailure()
    {
        AssertReject(Machine(new FakeHost { Allowed = false }).Process(Req(1, 3, true, Names())), LoginStatus.AuthorizationFailure);
    }

    [Fact]
    public void Login_VersionMinAboveZero_UnsupportedVersion()
    {
        AssertReject(Machine().Process(Req(1, 3, true, cont: false, TextCodec.Encode([new TextPair("InitiatorName", Iqn)]), versionMin: 1)),
            LoginStatus.UnsupportedVersion);
    }

    [Theory]
    [InlineData(0, 1, true, true)]   // T and C both set
    [InlineData(0, 2, true, false)]  // NSG reserved value
    [InlineData(1, 1, true, false)]  // no transition to the same stage
    [InlineData(1, 0, true, false)]  // no way back to security
    [InlineData(2, 3, true, false)]  // CSG reserved value
    [InlineData(3, 3, true, false)]  // full feature phase is not a login stage
    public void Login_InvalidStageFlags_InitiatorError(int csg, int nsg, bool transit, bool cont)
    {
        var reply = Machine().Process(Req(csg, nsg, transit, cont, TextCodec.Encode([.. Names().Select(p => new TextPair(p.Item1, p.Item2))])));
        AssertReject(reply, LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_CsgNotCurrentStage_InitiatorError()
    {
        var sm = Machine();
        sm.Process(Req(0, 1, false, [.. Names(), ("AuthMethod", "None")]));
        AssertReject(sm.Process(Req(1, 3, true)), LoginStatus.InitiatorError);
    }

    [Theory]
    [InlineData(0x400001370001UL, (ushort)0, (ushort)0)]
    [InlineData(0x400001370000UL, (ushort)5, (ushort)0)]
    [InlineData(0x400001370000UL, (ushort)0, (ushort)1)]
    public void Login_IdsChangeMidLogin_InitiatorError(ulong isid, ushort tsih, ushort cid)
    {
        var sm = Machine();
        sm.Process(Req(0, 1, false, [.. Names(), ("AuthMethod", "None")]));
        AssertReject(sm.Process(Req(0, 1, true, cont: false, [], isid: isid, tsih: tsih, cid: cid)), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_OperationalKeyInSecurityStage_InitiatorError()
    {
        AssertReject(Machine().Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "None"), ("MaxBurstLength", "4096")])), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_SecurityKeyInOperationalStage_InitiatorError()
    {
        AssertReject(Machine().Process(Req(1, 3, true, [.. Names(), ("AuthMethod", "None")])), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_KeyRenegotiated_InitiatorError()
    {
        var sm = Machine();
        sm.Process(Req(1, 3, false, [.. Names(), ("MaxBurstLength", "4096")]));
        AssertReject(sm.Process(Req(1, 3, true, ("MaxBurstLength", "4096"))), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_AuthMethodRenegotiated_InitiatorError()
    {
        var sm = Machine();
        sm.Process(Req(0, 1, false, [.. Names(), ("AuthMethod", "None")]));
        AssertReject(sm.Process(Req(0, 1, true, ("AuthMethod", "None"))), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_InitiatorNameChanged_InitiatorError()
    {
        var sm = Machine();
        sm.Process(Req(0, 1, true, [.. Names(), ("AuthMethod", "None")]));
        AssertReject(sm.Process(Req(1, 3, true, ("InitiatorName", "iqn.other"))), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_DuplicateKeyInOneRequest_InitiatorError()
    {
        var data = Encoding.ASCII.GetBytes($"InitiatorName={Iqn}\0TargetName={Tgt}\0MaxBurstLength=512\0MaxBurstLength=1024\0");
        AssertReject(Machine().Process(Req(1, 3, true, cont: false, data)), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_MalformedText_InitiatorError()
    {
        var data = Encoding.ASCII.GetBytes($"InitiatorName={Iqn}\0garbage");
        AssertReject(Machine().Process(Req(1, 3, true, cont: false, data)), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_RequestAfterCompletion_InitiatorError()
    {
        var sm = Machine();
        Assert.True(sm.Process(Req(1, 3, true, Names())).LoginComplete);
        AssertReject(sm.Process(Req(1, 3, true)), LoginStatus.InitiatorError);
    }

    [Fact]
    public void Login_EndlessEmptyRequests_FailsAfterLimit()
    {
        var sm = Machine();
        sm.Process(Req(0, 1, false, [.. Names(), ("AuthMethod", "None")]));
        LoginReply reply;
        int count = 1;
        do
        {
            reply = sm.Process(Req(0, 1, false, cont: false, []));
            count++;
        }
        while (!reply.Failed && count < 1000);
        Assert.Equal(TargetLoginStateMachine.MaxLoginRequests + 1, count);
        AssertReject(reply, LoginStatus.InitiatorError);
    }

    [Fact]
    public void Parameters_BeforeCompletion_Throws()
    {
        Assert.Throws<InvalidOperationException>(() => Machine().Parameters);
    }
}
