using Sluice.Iscsi.Chap;
using Sluice.Iscsi.Login;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Tests;

public class NegotiationInitiatorTests
{
    private const string Iqn = "iqn.2024-01.com.example:host";
    private const string Tgt = "iqn.2024-01.com.example:disk";

    private sealed class Host(ChapSecret? chap = null, ChapSecret? mutual = null) : ITargetLoginHost
    {
        public TargetLoginDecision ResolveTarget(string? targetName, string initiatorName, bool discovery) =>
            new() { Exists = true, Allowed = true, Chap = chap, MutualChap = mutual };
    }

    private static InitiatorNegotiator Create(SessionType type = SessionType.Normal, bool digests = false) =>
        new(new InitiatorNegotiationSettings
        {
            InitiatorName = Iqn, TargetName = type == SessionType.Normal ? Tgt : null, SessionType = type,
            HeaderDigestCrc32C = digests, DataDigestCrc32C = digests,
        });

    private static LoginRequestInfo Req(int csg, int nsg, bool transit, IEnumerable<TextPair> pairs) =>
        new(transit, false, csg, nsg, 0, 0, 0x400001370000, 0, 1, 0, 1, 0, TextCodec.Encode(pairs));

    private static IReadOnlyList<TextPair> Parse(LoginReply reply)
    {
        Assert.True(TextCodec.TryParse(reply.Data, false, out var pairs, out _));
        return pairs;
    }

    [Fact]
    public void CreateLoginKeys_Normal_NamesAndSessionType()
    {
        var keys = Create().CreateLoginKeys();
        Assert.Equal([new("InitiatorName", Iqn), new("TargetName", Tgt), new("SessionType", "Normal")], keys);
    }

    [Fact]
    public void Constructor_NormalWithoutTargetName_Throws()
    {
        Assert.Throws<ArgumentException>(() => new InitiatorNegotiator(new InitiatorNegotiationSettings { InitiatorName = Iqn }));
    }

    [Fact]
    public void CreateOperationalOffer_Discovery_OnlyRelevantKeys()
    {
        var keys = Create(SessionType.Discovery).CreateOperationalOffer().Select(p => p.Key);
        Assert.Equal(["HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength"], keys);
    }

    [Fact]
    public void Login_AgainstTargetStateMachine_ParametersAgree()
    {
        var initiator = Create(digests: true);
        var target = new TargetLoginStateMachine(new TargetNegotiationSettings { AllowDigests = true, MaxBurstLength = 65536 }, new Host(), 7);
        var reply = target.Process(Req(1, 3, true, [.. initiator.CreateLoginKeys(), .. initiator.CreateOperationalOffer()]));
        var answers = new List<TextPair>();
        Assert.True(initiator.TryApplyResponse(Parse(reply), answers, out var error), error);
        Assert.Empty(answers);
        Assert.True(reply.LoginComplete);
        Assert.False(initiator.AwaitingAnswers);

        var i = initiator.BuildParameters();
        var t = target.Parameters;
        Assert.True(i.HeaderDigestCrc32C);
        Assert.Equal(t.HeaderDigestCrc32C, i.HeaderDigestCrc32C);
        Assert.Equal(t.DataDigestCrc32C, i.DataDigestCrc32C);
        Assert.Equal(65536, i.MaxBurstLength);
        Assert.Equal(t.MaxBurstLength, i.MaxBurstLength);
        Assert.Equal(t.FirstBurstLength, i.FirstBurstLength);
        Assert.Equal(t.InitialR2T, i.InitialR2T);
        Assert.Equal(t.ImmediateData, i.ImmediateData);
        Assert.Equal(t.DefaultTime2Wait, i.DefaultTime2Wait);
        Assert.Equal(t.DefaultTime2Retain, i.DefaultTime2Retain);
        Assert.Equal(t.InitiatorMaxRecvDataSegmentLength, i.InitiatorMaxRecvDataSegmentLength);
        Assert.Equal(t.TargetMaxRecvDataSegmentLength, i.TargetMaxRecvDataSegmentLength);
        Assert.Equal((ushort)7, i.TargetPortalGroupTag);
    }

    [Fact]
    public void Login_TargetOriginatesKey_InitiatorAnswers()
    {
        var initiator = new InitiatorNegotiator(new InitiatorNegotiationSettings { InitiatorName = Iqn, TargetName = Tgt });
        var target = new TargetLoginStateMachine(new TargetNegotiationSettings { DefaultTime2Wait = 5 }, new Host(), 1);
        // A minimal initiator that sends only its names, accepting defaults.
        var r1 = target.Process(Req(1, 3, true, initiator.CreateLoginKeys()));
        Assert.False(r1.Transit);
        var answers = new List<TextPair>();
        Assert.True(initiator.TryApplyResponse(Parse(r1), answers, out var error), error);
        Assert.Equal([new TextPair("DefaultTime2Wait", "5")], answers);
        var r2 = target.Process(Req(1, 3, true, answers));
        Assert.True(r2.LoginComplete);
        Assert.Equal(5, target.Parameters.DefaultTime2Wait);
    }

    [Fact]
    public void Login_ChapThroughTargetStateMachine_Completes()
    {
        var cred = new ChapSecret("u", "initiatorsecret");
        var mutual = new ChapSecret("t", "targetsecret");
        var target = new TargetLoginStateMachine(new TargetNegotiationSettings(), new Host(cred, mutual), 1);
        var initiator = Create();
        var chap = new ChapInitiator(cred, mutual);

        var r1 = target.Process(Req(0, 1, true, [.. initiator.CreateLoginKeys(), new("AuthMethod", "CHAP,None")]));
        Assert.Contains(new TextPair("AuthMethod", "CHAP"), Parse(r1));
        var r2 = Parse(target.Process(Req(0, 1, false, [new("CHAP_A", ChapInitiator.AlgorithmOffer)]))).ToDictionary(p => p.Key, p => p.Value);
        Assert.True(chap.TryRespond(r2["CHAP_A"], r2["CHAP_I"], r2["CHAP_C"], out var response));
        var r3 = target.Process(Req(0, 1, true, response));
        Assert.True(r3.Transit);
        var m = Parse(r3).ToDictionary(p => p.Key, p => p.Value);
        Assert.True(chap.VerifyTarget(m["CHAP_N"], m["CHAP_R"]));
        var r4 = target.Process(Req(1, 3, true, initiator.CreateOperationalOffer()));
        Assert.True(initiator.TryApplyResponse(Parse(r4), [], out _));
        Assert.True(r4.LoginComplete);
    }

    [Theory]
    [InlineData("MaxBurstLength", "524288")]     // above our offer: Minimum cannot produce it
    [InlineData("MaxBurstLength", "100")]        // below the legal range
    [InlineData("DefaultTime2Wait", "1")]        // below our offer: Maximum cannot produce it
    [InlineData("ImmediateData", "maybe")]
    [InlineData("InitialR2T", "No")]             // we offered Yes (OR)
    [InlineData("HeaderDigest", "CRC32C")]       // not in our list
    [InlineData("HeaderDigest", "None,CRC32C")]  // a list is not an answer
    public void TryApplyResponse_AnswerNotFromResultFunction_Fails(string key, string answer)
    {
        var initiator = new InitiatorNegotiator(new InitiatorNegotiationSettings
        {
            InitiatorName = Iqn, TargetName = Tgt, InitialR2T = true, DefaultTime2Wait = 2,
        });
        initiator.CreateOperationalOffer();
        Assert.False(initiator.TryApplyResponse([new TextPair(key, answer)], [], out var error));
        Assert.NotNull(error);
    }

    [Theory]
    [InlineData("MaxBurstLength", "Reject", 262144)]
    [InlineData("MaxBurstLength", "Irrelevant", 262144)]
    [InlineData("MaxBurstLength", "4096", 4096)]
    public void TryApplyResponse_SpecialOrSmallerAnswer_Accepted(string key, string answer, int expected)
    {
        var initiator = Create();
        initiator.CreateOperationalOffer();
        Assert.True(initiator.TryApplyResponse([new TextPair(key, answer)], [], out _));
        Assert.Equal(expected, initiator.BuildParameters().MaxBurstLength);
    }

    [Fact]
    public void TryApplyResponse_AnsweredTwice_Fails()
    {
        var initiator = Create();
        initiator.CreateOperationalOffer();
        Assert.True(initiator.TryApplyResponse([new TextPair("MaxBurstLength", "4096")], [], out _));
        Assert.False(initiator.TryApplyResponse([new TextPair("MaxBurstLength", "4096")], [], out _));
    }

    [Theory]
    [InlineData("MaxRecvDataSegmentLength", "100")]
    [InlineData("TargetPortalGroupTag", "70000")]
    [InlineData("InitiatorName", "x")]
    public void TryApplyResponse_BadTargetDeclaration_Fails(string key, string value)
    {
        Assert.False(Create().TryApplyResponse([new TextPair(key, value)], [], out _));
    }

    [Fact]
    public void TryApplyResponse_UnknownAndExtensionKeys_AnsweredNotUnderstood()
    {
        var reply = new List<TextPair>();
        Assert.True(Create().TryApplyResponse([new("X-vendor.Key", "1"), new("NewKey", "2"), new("TargetAddress", "10.0.0.1:3260,1")], reply, out _));
        Assert.Equal([new("X-vendor.Key", "NotUnderstood"), new("NewKey", "NotUnderstood")], reply);
    }

    [Fact]
    public void TryApplyResponse_TargetDeclarations_Recorded()
    {
        var initiator = Create();
        Assert.True(initiator.TryApplyResponse(
            [new("MaxRecvDataSegmentLength", "65536"), new("TargetAlias", "disk0"), new("TargetPortalGroupTag", "3"), new("TargetAddress", "10.0.0.2:3260,3")],
            [], out _));
        var p = initiator.BuildParameters();
        Assert.Equal(65536, p.TargetMaxRecvDataSegmentLength);
        Assert.Equal("disk0", p.TargetAlias);
        Assert.Equal((ushort)3, p.TargetPortalGroupTag);
        Assert.Equal(["10.0.0.2:3260,3"], initiator.TargetAddresses);
    }
}
