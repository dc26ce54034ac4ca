using Sluice.Iscsi.Login;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Tests;

public class NegotiationTargetTests
{
    private static TargetNegotiator Create(TargetNegotiationSettings? settings = null, bool leading = true) =>
        new(settings ?? new TargetNegotiationSettings(), leading);

    private static (List<TextPair> Response, LoginFailure? Failure) Offer(TargetNegotiator n, params (string Key, string Value)[] offers)
    {
        var response = new List<TextPair>();
        var failure = n.Process(offers.Select(o => new TextPair(o.Key, o.Value)).ToList(), response);
        return (response, failure);
    }

    private static string? Answer(TargetNegotiationSettings? settings, string key, string value)
    {
        var (response, failure) = Offer(Create(settings), (key, value));
        Assert.Null(failure);
        return response.SingleOrDefault(p => p.Key == key).Value;
    }

    [Theory]
    [InlineData("None", "None")]
    [InlineData("CRC32C,None", "None")]
    [InlineData("CRC32C", "Reject")]
    [InlineData("Foo,None", "None")]
    [InlineData("None,,CRC32C", "Reject")]
    public void Digest_DigestsNotAllowed_AnswersNoneOrReject(string offer, string expected)
    {
        Assert.Equal(expected, Answer(null, "HeaderDigest", offer));
        Assert.Equal(expected, Answer(null, "DataDigest", offer));
    }

    [Theory]
    [InlineData("CRC32C,None", "CRC32C")]
    [InlineData("None,CRC32C", "None")]
    [InlineData("CRC32C", "CRC32C")]
    public void Digest_DigestsAllowed_AnswersFirstSupported(string offer, string expected)
    {
        Assert.Equal(expected, Answer(new TargetNegotiationSettings { AllowDigests = true }, "HeaderDigest", offer));
    }

    [Fact]
    public void Digest_Crc32CAgreed_ReflectedInParameters()
    {
        var n = Create(new TargetNegotiationSettings { AllowDigests = true });
        Offer(n, ("HeaderDigest", "CRC32C,None"), ("DataDigest", "None"));
        var p = n.Build("i", null, "t", null, null);
        Assert.True(p.HeaderDigestCrc32C);
        Assert.False(p.DataDigestCrc32C);
    }

    [Theory]
    [InlineData("MaxConnections", "4", "1")]
    [InlineData("MaxConnections", "0", "Reject")]
    [InlineData("MaxConnections", "65536", "Reject")]
    [InlineData("MaxBurstLength", "262144", "262144")]
    [InlineData("MaxBurstLength", "16777215", "1048576")]
    [InlineData("MaxBurstLength", "512", "512")]
    [InlineData("MaxBurstLength", "511", "Reject")]
    [InlineData("MaxBurstLength", "16777216", "Reject")]
    [InlineData("MaxBurstLength", "0x40000", "262144")]
    [InlineData("MaxBurstLength", "abc", "Reject")]
    [InlineData("FirstBurstLength", "262144", "65536")]
    [InlineData("FirstBurstLength", "4096", "4096")]
    [InlineData("FirstBurstLength", "511", "Reject")]
    [InlineData("DefaultTime2Wait", "0", "2")]
    [InlineData("DefaultTime2Wait", "3600", "3600")]
    [InlineData("DefaultTime2Wait", "3601", "Reject")]
    [InlineData("DefaultTime2Retain", "0", "0")]
    [InlineData("DefaultTime2Retain", "3600", "20")]
    [InlineData("DefaultTime2Retain", "3601", "Reject")]
    [InlineData("MaxOutstandingR2T", "16", "1")]
    [InlineData("MaxOutstandingR2T", "0", "Reject")]
    [InlineData("MaxOutstandingR2T", "65536", "Reject")]
    [InlineData("ErrorRecoveryLevel", "2", "0")]
    [InlineData("ErrorRecoveryLevel", "3", "Reject")]
    [InlineData("iSCSIProtocolLevel", "2", "1")]
    [InlineData("iSCSIProtocolLevel", "0", "0")]
    [InlineData("iSCSIProtocolLevel", "32", "Reject")]
    public void Numeric_DefaultSettings_AnswersResultFunction(string key, string offer, string expected)
    {
        Assert.Equal(expected, Answer(null, key, offer));
    }

    [Fact]
    public void Numeric_TargetAllowsMore_MinimumAndMaximumUseTargetValues()
    {
        var s = new TargetNegotiationSettings { MaxConnections = 8, MaxOutstandingR2T = 4, MaxErrorRecoveryLevel = 2, DefaultTime2Wait = 10, DefaultTime2Retain = 60 };
        Assert.Equal("4", Answer(s, "MaxConnections", "4"));
        Assert.Equal("4", Answer(s, "MaxOutstandingR2T", "16"));
        Assert.Equal("1", Answer(s, "ErrorRecoveryLevel", "1"));
        Assert.Equal("10", Answer(s, "DefaultTime2Wait", "2"));
        Assert.Equal("20", Answer(s, "DefaultTime2Retain", "20"));
    }

    [Theory]
    [InlineData("InitialR2T", "Yes", "Yes")]
    [InlineData("InitialR2T", "No", "No")]
    [InlineData("ImmediateData", "Yes", "Yes")]
    [InlineData("ImmediateData", "No", "No")]
    [InlineData("DataPDUInOrder", "No", "Yes")]
    [InlineData("DataPDUInOrder", "Yes", "Yes")]
    [InlineData("DataSequenceInOrder", "No", "Yes")]
    [InlineData("InitialR2T", "yes", "Reject")]
    [InlineData("ImmediateData", "1", "Reject")]
    public void Boolean_DefaultSettings_AnswersResultFunction(string key, string offer, string expected)
    {
        Assert.Equal(expected, Answer(null, key, offer));
    }

    [Fact]
    public void Boolean_TargetWantsR2TAndNoImmediateData_OrAndAnd()
    {
        var s = new TargetNegotiationSettings { InitialR2T = true, ImmediateData = false };
        Assert.Equal("Yes", Answer(s, "InitialR2T", "No"));
        Assert.Equal("No", Answer(s, "ImmediateData", "Yes"));
    }

    [Theory]
    [InlineData("IFMarker", "No", "No")]
    [InlineData("OFMarker", "Yes", "No")]
    [InlineData("IFMarker", "Maybe", "Reject")]
    [InlineData("IFMarkInt", "2048~8192", "Reject")]
    [InlineData("OFMarkInt", "2048", "Reject")]
    [InlineData("X-com.example.Foo", "1", "NotUnderstood")]
    [InlineData("X#NodeArchitecture", "Sluice", "NotUnderstood")]
    [InlineData("FutureKey", "1", "NotUnderstood")]
    [InlineData("TaskReporting", "ResponseFence,RFC3720", "RFC3720")]
    [InlineData("TaskReporting", "FastAbort", "Reject")]
    [InlineData("SendTargets", "All", "Reject")]
    [InlineData("TargetAlias", "x", "Reject")]
    [InlineData("TargetPortalGroupTag", "1", "Reject")]
    public void OtherKeys_Offered_AnsweredPerRfc7143(string key, string offer, string expected)
    {
        Assert.Equal(expected, Answer(null, key, offer));
    }

    [Fact]
    public void MaxRecvDataSegmentLength_Declared_NoAnswerAndRecorded()
    {
        var n = Create();
        var (response, failure) = Offer(n, ("MaxRecvDataSegmentLength", "65536"));
        Assert.Null(failure);
        Assert.Empty(response);
        n.DeclareOnce(response);
        n.DeclareOnce(response);
        Assert.Equal([new TextPair("MaxRecvDataSegmentLength", "262144")], response);
        var p = n.Build("i", null, "t", null, null);
        Assert.Equal(65536, p.InitiatorMaxRecvDataSegmentLength);
        Assert.Equal(262144, p.TargetMaxRecvDataSegmentLength);
    }

    [Theory]
    [InlineData("511")]
    [InlineData("16777216")]
    [InlineData("lots")]
    public void MaxRecvDataSegmentLength_OutOfRange_FailsInitiatorError(string value)
    {
        var (_, failure) = Offer(Create(), ("MaxRecvDataSegmentLength", value));
        Assert.Equal(LoginStatus.InitiatorError, failure!.Value.Status);
    }

    [Fact]
    public void MaxRecvDataSegmentLength_Redeclared_LastWins()
    {
        var n = Create();
        Assert.Null(Offer(n, ("MaxRecvDataSegmentLength", "65536")).Failure);
        Assert.Null(Offer(n, ("MaxRecvDataSegmentLength", "8192")).Failure);
        Assert.Equal(8192, n.Build("i", null, "t", null, null).InitiatorMaxRecvDataSegmentLength);
    }

    [Fact]
    public void Renegotiation_SameKeyInLaterPdu_FailsInitiatorError()
    {
        var n = Create();
        Assert.Null(Offer(n, ("MaxBurstLength", "262144")).Failure);
        var (_, failure) = Offer(n, ("MaxBurstLength", "262144"));
        Assert.Equal(LoginStatus.InitiatorError, failure!.Value.Status);
    }

    [Fact]
    public void FirstBurstLength_AboveNegotiatedMaxBurst_ClampedToMaxBurst()
    {
        var n = Create(new TargetNegotiationSettings { FirstBurstLength = 262144 });
        var (response, _) = Offer(n, ("FirstBurstLength", "131072"), ("MaxBurstLength", "65536"));
        Assert.Contains(new TextPair("FirstBurstLength", "65536"), response);
        Assert.Contains(new TextPair("MaxBurstLength", "65536"), response);
        var p = n.Build("i", null, "t", null, null);
        Assert.Equal(65536, p.FirstBurstLength);
        Assert.Equal(65536, p.MaxBurstLength);
    }

    [Fact]
    public void FirstBurstLength_MaxBurstLowerInLaterPdu_ParametersClamped()
    {
        var n = Create(new TargetNegotiationSettings { FirstBurstLength = 262144 });
        Offer(n, ("FirstBurstLength", "131072"));
        Offer(n, ("MaxBurstLength", "4096"));
        var p = n.Build("i", null, "t", null, null);
        Assert.Equal(4096, p.MaxBurstLength);
        Assert.Equal(4096, p.FirstBurstLength);
    }

    [Fact]
    public void LibiscsiOffer_DefaultSettings_ExpectedAnswers()
    {
        var n = Create();
        var (response, failure) = Offer(n,
            ("HeaderDigest", "None,CRC32C"), ("DataDigest", "None"), ("InitialR2T", "No"), ("ImmediateData", "Yes"),
            ("MaxBurstLength", "262144"), ("FirstBurstLength", "262144"), ("DefaultTime2Wait", "2"),
            ("DefaultTime2Retain", "0"), ("MaxOutstandingR2T", "1"), ("ErrorRecoveryLevel", "0"),
            ("IFMarker", "No"), ("OFMarker", "No"), ("MaxConnections", "1"), ("MaxRecvDataSegmentLength", "262144"),
            ("DataPDUInOrder", "Yes"), ("DataSequenceInOrder", "Yes"));
        Assert.Null(failure);
        Assert.Equal(
            [
                new("HeaderDigest", "None"), new("DataDigest", "None"), new("InitialR2T", "No"), new("ImmediateData", "Yes"),
                new("MaxBurstLength", "262144"), new("FirstBurstLength", "65536"), new("DefaultTime2Wait", "2"),
                new("DefaultTime2Retain", "0"), new("MaxOutstandingR2T", "1"), new("ErrorRecoveryLevel", "0"),
                new("IFMarker", "No"), new("OFMarker", "No"), new("MaxConnections", "1"),
                new("DataPDUInOrder", "Yes"), new("DataSequenceInOrder", "Yes"),
            ],
            response);
        Assert.False(n.Originate(response));
        var p = n.Build("iqn.i", "alias", "iqn.t", null, 1);
        Assert.False(p.InitialR2T);
        Assert.True(p.ImmediateData);
        Assert.Equal(262144, p.MaxBurstLength);
        Assert.Equal(65536, p.FirstBurstLength);
        Assert.Equal(0, p.DefaultTime2Retain);
        Assert.Equal(262144, p.InitiatorMaxRecvDataSegmentLength);
    }

    [Fact]
    public void Build_NothingNegotiated_RfcDefaults()
    {
        var p = Create().Build("i", null, null, null, null);
        Assert.Equal(new SessionParameters { InitiatorName = "i" }, p);
        Assert.True(p.InitialR2T);
        Assert.Equal(8192, p.InitiatorMaxRecvDataSegmentLength);
        Assert.Equal(262144, p.MaxBurstLength);
    }

    [Fact]
    public void Originate_TargetLimitsBelowDefaults_OffersThem()
    {
        var n = Create(new TargetNegotiationSettings
        {
            MaxBurstLength = 65536, FirstBurstLength = 16384, ImmediateData = false, DefaultTime2Wait = 5, DefaultTime2Retain = 10,
        });
        var response = new List<TextPair>();
        Assert.True(n.WantsOperationalStage);
        Assert.True(n.Originate(response));
        Assert.True(n.AwaitingAnswers);
        Assert.Equal(
            [
                new("MaxBurstLength", "65536"), new("FirstBurstLength", "16384"), new("ImmediateData", "No"),
                new("DefaultTime2Wait", "5"), new("DefaultTime2Retain", "10"),
            ],
            response);

        var (answers, failure) = Offer(n, ("MaxBurstLength", "32768"), ("FirstBurstLength", "Reject"), ("ImmediateData", "No"),
            ("DefaultTime2Wait", "7"), ("DefaultTime2Retain", "10"));
        Assert.Null(failure);
        Assert.Empty(answers);
        Assert.False(n.AwaitingAnswers);
        var p = n.Build("i", null, "t", null, null);
        Assert.Equal(32768, p.MaxBurstLength);
        Assert.Equal(32768, p.FirstBurstLength); // default 65536 clamped to MaxBurstLength
        Assert.False(p.ImmediateData);
        Assert.Equal(7, p.DefaultTime2Wait);
        Assert.Equal(10, p.DefaultTime2Retain);
    }

    [Theory]
    [InlineData("MaxBurstLength", "131072")]
    [InlineData("ImmediateData", "Yes")]
    [InlineData("DefaultTime2Wait", "1")]
    [InlineData("MaxBurstLength", "junk")]
    public void Originate_AnswerNotFromResultFunction_FailsInitiatorError(string key, string answer)
    {
        var n = Create(new TargetNegotiationSettings { MaxBurstLength = 65536, ImmediateData = false, DefaultTime2Wait = 5 });
        n.Originate([]);
        var (_, failure) = Offer(n, (key, answer));
        Assert.Equal(LoginStatus.InitiatorError, failure!.Value.Status);
    }

    [Fact]
    public void Originate_KeyAlreadyOfferedByInitiator_NotOfferedAgain()
    {
        var n = Create(new TargetNegotiationSettings { MaxBurstLength = 65536 });
        Offer(n, ("MaxBurstLength", "262144"), ("FirstBurstLength", "65536"));
        Assert.False(n.Originate([]));
    }

    [Fact]
    public void Originate_DiscoverySession_NothingOffered()
    {
        var n = Create(new TargetNegotiationSettings { MaxBurstLength = 65536 });
        n.SessionType = SessionType.Discovery;
        Assert.False(n.Originate([]));
    }

    [Fact]
    public void LeadingOnlyKey_NonLeadingConnection_AnsweredIrrelevant()
    {
        var (response, _) = Offer(Create(leading: false), ("MaxBurstLength", "262144"), ("HeaderDigest", "None"));
        Assert.Equal([new("MaxBurstLength", "Irrelevant"), new("HeaderDigest", "None")], response);
    }

    [Fact]
    public void SecurityKey_InOperationalProcessing_FailsInitiatorError()
    {
        var (_, failure) = Offer(Create(), ("AuthMethod", "None"));
        Assert.Equal(LoginStatus.InitiatorError, failure!.Value.Status);
    }

    [Fact]
    public void Settings_OutOfRange_ValidateThrows()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TargetNegotiationSettings { MaxBurstLength = 100 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new TargetNegotiationSettings { MaxErrorRecoveryLevel = 3 }.Validate());
    }
}
