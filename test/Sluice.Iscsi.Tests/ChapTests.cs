using System.Security.Cryptography;
using System.Text;
using Sluice.Iscsi.Chap;
using Sluice.Iscsi.Login;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Tests;

public class ChapTests
{
    private static readonly ChapSecret Initiator = new("iqn.i", "secretsecret");
    private static readonly ChapSecret Target = new("iqn.t", "targetsecret");
    private static readonly byte[] Challenge = Enumerable.Range(0, 16).Select(i => (byte)i).ToArray();

    private static ChapTargetAuthenticator NewTarget(ChapSecret? mutual = null) => new(Initiator, mutual, 0x2a, Challenge);

    private static string Value(List<TextPair> pairs, string key) => pairs.Single(p => p.Key == key).Value;

    [Fact]
    public void Md5Response_KnownVector_Matches()
    {
        // MD5(0x2a || "secretsecret" || 00 01 .. 0f), computed independently.
        Assert.Equal("54d49338a27b0c1dd5e935c21ab005a3", Convert.ToHexStringLower(ChapMd5.Response(0x2a, "secretsecret", Challenge)));
    }

    [Fact]
    public void Md5Response_MatchesHandBuiltConcatenation()
    {
        byte[] input = [7, .. Encoding.UTF8.GetBytes("targetsecret"), .. Enumerable.Repeat((byte)0xAA, 16)];
#pragma warning disable CA5351 // CHAP is MD5 by definition.
        Assert.Equal(MD5.HashData(input), ChapMd5.Response(7, "targetsecret", Enumerable.Repeat((byte)0xAA, 16).ToArray()));
#pragma warning restore CA5351
    }

    [Fact]
    public void Target_AlgorithmList_SendsMd5IdentifierAndChallenge()
    {
        var response = new List<TextPair>();
        Assert.Null(NewTarget().ProcessAlgorithms("7,5", response));
        Assert.Equal([new("CHAP_A", "5"), new("CHAP_I", "42"), new("CHAP_C", "0x000102030405060708090a0b0c0d0e0f")], response);
    }

    [Theory]
    [InlineData("6")]
    [InlineData("7,6")]
    [InlineData("")]
    public void Target_AlgorithmListWithoutMd5_AuthenticationFailure(string list)
    {
        var failure = NewTarget().ProcessAlgorithms(list, []);
        Assert.Equal(LoginStatus.AuthenticationFailure, failure!.Value.Status);
    }

    [Fact]
    public void Target_RandomChallenge_Is16BytesAndDiffers()
    {
        var a = new List<TextPair>();
        var b = new List<TextPair>();
        new ChapTargetAuthenticator(Initiator, null).ProcessAlgorithms("5", a);
        new ChapTargetAuthenticator(Initiator, null).ProcessAlgorithms("5", b);
        Assert.True(TextValue.TryParseBinary(Value(a, "CHAP_C"), out var ca));
        Assert.Equal(16, ca.Length);
        Assert.NotEqual(Value(a, "CHAP_C"), Value(b, "CHAP_C"));
    }

    [Theory]
    [InlineData("0x54d49338a27b0c1dd5e935c21ab005a3")]
    [InlineData("0x54D49338A27B0C1DD5E935C21AB005A3")]
    [InlineData("0bVNSTOKJ7DB3V6TXCGrAFow==")]
    public void Target_CorrectResponse_Completes(string chapR)
    {
        var chap = NewTarget();
        chap.ProcessAlgorithms("5", []);
        var response = new List<TextPair>();
        Assert.Null(chap.ProcessResponse("iqn.i", chapR, null, null, response));
        Assert.True(chap.IsComplete);
        Assert.Empty(response);
    }

    [Theory]
    [InlineData("iqn.i", "0x54d49338a27b0c1dd5e935c21ab005a4")]
    [InlineData("iqn.other", "0x54d49338a27b0c1dd5e935c21ab005a3")]
    [InlineData("iqn.i", "0x54d49338a27b0c1dd5e935c21ab005")]
    [InlineData("iqn.i", "not-hex")]
    [InlineData("iqn.i", null)]
    [InlineData(null, "0x54d49338a27b0c1dd5e935c21ab005a3")]
    public void Target_WrongResponse_AuthenticationFailure(string? chapN, string? chapR)
    {
        var chap = NewTarget();
        chap.ProcessAlgorithms("5", []);
        var failure = chap.ProcessResponse(chapN, chapR, null, null, []);
        Assert.Equal(LoginStatus.AuthenticationFailure, failure!.Value.Status);
        Assert.False(chap.IsComplete);
    }

    [Fact]
    public void Target_ResponseBeforeAlgorithm_AuthenticationFailure()
    {
        var failure = NewTarget().ProcessResponse("iqn.i", "0x54d49338a27b0c1dd5e935c21ab005a3", null, null, []);
        Assert.Equal(LoginStatus.AuthenticationFailure, failure!.Value.Status);
    }

    [Fact]
    public void Target_Mutual_AnswersInitiatorChallenge()
    {
        var chap = NewTarget(Target);
        chap.ProcessAlgorithms("5", []);
        var response = new List<TextPair>();
        Assert.Null(chap.ProcessResponse("iqn.i", "0x54d49338a27b0c1dd5e935c21ab005a3", "7", "0x" + new string('a', 32), response));
        Assert.Equal([new("CHAP_N", "iqn.t"), new("CHAP_R", "0xcd80a08b49be2b0fe16992c26f4c47f2")], response);
        Assert.True(chap.IsComplete);
    }

    [Fact]
    public void Target_ReflectedChallenge_AuthenticationFailure()
    {
        var chap = NewTarget(Target);
        chap.ProcessAlgorithms("5", []);
        var failure = chap.ProcessResponse("iqn.i", "0x54d49338a27b0c1dd5e935c21ab005a3", "42", TextValue.FormatHex(Challenge), []);
        Assert.Equal(LoginStatus.AuthenticationFailure, failure!.Value.Status);
    }

    [Fact]
    public void Target_MutualWithoutMutualCredential_AuthenticationFailure()
    {
        var chap = NewTarget();
        chap.ProcessAlgorithms("5", []);
        var failure = chap.ProcessResponse("iqn.i", "0x54d49338a27b0c1dd5e935c21ab005a3", "7", "0xaaaa", []);
        Assert.Equal(LoginStatus.AuthenticationFailure, failure!.Value.Status);
    }

    [Fact]
    public void Target_MutualSecretEqualsInitiatorSecret_AuthenticationFailure()
    {
        var chap = NewTarget(new ChapSecret("iqn.t", "secretsecret"));
        chap.ProcessAlgorithms("5", []);
        var failure = chap.ProcessResponse("iqn.i", "0x54d49338a27b0c1dd5e935c21ab005a3", "7", "0xaaaa", []);
        Assert.Equal(LoginStatus.AuthenticationFailure, failure!.Value.Status);
    }

    [Theory]
    [InlineData("256", "0xaa")]
    [InlineData("7", "0x")]
    [InlineData("7", "zz")]
    public void Target_MalformedMutualChallenge_AuthenticationFailure(string chapI, string chapC)
    {
        var chap = NewTarget(Target);
        chap.ProcessAlgorithms("5", []);
        var failure = chap.ProcessResponse("iqn.i", "0x54d49338a27b0c1dd5e935c21ab005a3", chapI, chapC, []);
        Assert.Equal(LoginStatus.AuthenticationFailure, failure!.Value.Status);
    }

    [Fact]
    public void Initiator_AgainstTarget_OneWaySucceeds()
    {
        var target = new ChapTargetAuthenticator(Initiator, null);
        var challenge = new List<TextPair>();
        target.ProcessAlgorithms(ChapInitiator.AlgorithmOffer, challenge);

        var initiator = new ChapInitiator(Initiator);
        Assert.True(initiator.TryRespond(Value(challenge, "CHAP_A"), Value(challenge, "CHAP_I"), Value(challenge, "CHAP_C"), out var reply));
        Assert.Equal(["CHAP_N", "CHAP_R"], reply.Select(p => p.Key));
        Assert.Null(target.ProcessResponse(reply[0].Value, reply[1].Value, null, null, []));
        Assert.True(target.IsComplete);
    }

    [Fact]
    public void Initiator_AgainstTarget_MutualSucceeds()
    {
        var target = new ChapTargetAuthenticator(Initiator, Target);
        var challenge = new List<TextPair>();
        target.ProcessAlgorithms("5", challenge);

        var initiator = new ChapInitiator(Initiator, Target);
        Assert.True(initiator.TryRespond("5", Value(challenge, "CHAP_I"), Value(challenge, "CHAP_C"), out var reply));
        var r = reply.ToList();
        var answer = new List<TextPair>();
        Assert.Null(target.ProcessResponse(Value(r, "CHAP_N"), Value(r, "CHAP_R"), Value(r, "CHAP_I"), Value(r, "CHAP_C"), answer));
        Assert.True(initiator.VerifyTarget(Value(answer, "CHAP_N"), Value(answer, "CHAP_R")));
    }

    [Fact]
    public void Initiator_TargetWithWrongMutualSecret_VerifyFails()
    {
        var target = new ChapTargetAuthenticator(Initiator, new ChapSecret("iqn.t", "wrongsecret!"));
        var challenge = new List<TextPair>();
        target.ProcessAlgorithms("5", challenge);
        var initiator = new ChapInitiator(Initiator, Target);
        initiator.TryRespond("5", Value(challenge, "CHAP_I"), Value(challenge, "CHAP_C"), out var reply);
        var r = reply.ToList();
        var answer = new List<TextPair>();
        target.ProcessResponse(Value(r, "CHAP_N"), Value(r, "CHAP_R"), Value(r, "CHAP_I"), Value(r, "CHAP_C"), answer);
        Assert.False(initiator.VerifyTarget(Value(answer, "CHAP_N"), Value(answer, "CHAP_R")));
        Assert.False(initiator.VerifyTarget("iqn.other", Value(answer, "CHAP_R")));
    }

    [Theory]
    [InlineData("6", "1", "0xaa")]
    [InlineData("5", "300", "0xaa")]
    [InlineData("5", "1", "0x")]
    [InlineData("5", null, "0xaa")]
    public void Initiator_BadChallenge_TryRespondFalse(string chapA, string? chapI, string chapC)
    {
        Assert.False(new ChapInitiator(Initiator).TryRespond(chapA, chapI, chapC, out _));
    }

    [Fact]
    public void Initiator_VerifyBeforeRespond_False()
    {
        Assert.False(new ChapInitiator(Initiator, Target).VerifyTarget("iqn.t", "0x00"));
    }

    [Fact]
    public void ChapSecret_ToString_HidesSecret()
    {
        Assert.DoesNotContain("secretsecret", Initiator.ToString(), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new ChapSecret("u", ""));
    }
}
