using System.Security.Cryptography;
using Sluice.Iscsi.Login;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Chap;

/// <summary>
/// Target side of the CHAP exchange (RFC 7143 §12.1.3):
/// <code>
/// I-> CHAP_A=&lt;A1,A2,...&gt;
/// T-> CHAP_A=&lt;A&gt; CHAP_I=&lt;I&gt; CHAP_C=&lt;C&gt;
/// I-> CHAP_N=&lt;N&gt; CHAP_R=&lt;R&gt;                       (one-way)
/// I-> CHAP_N=&lt;N&gt; CHAP_R=&lt;R&gt; CHAP_I=&lt;I&gt; CHAP_C=&lt;C&gt;  (mutual)
/// T-> CHAP_N=&lt;N&gt; CHAP_R=&lt;R&gt;                       (mutual)
/// </code>
/// Every failure is an authentication failure (0x0201): the exchange has one outcome and a peer
/// that gets it wrong learns nothing more.
/// </summary>
internal sealed class ChapTargetAuthenticator
{
    private enum State
    {
        AwaitAlgorithm,
        AwaitResponse,
        Complete,
    }

    private readonly ChapSecret _credential;
    private readonly ChapSecret? _mutual;
    private readonly byte _identifier;
    private readonly byte[] _challenge;
    private State _state;

    public ChapTargetAuthenticator(ChapSecret credential, ChapSecret? mutual)
        : this(credential, mutual, (byte)RandomNumberGenerator.GetInt32(256), RandomNumberGenerator.GetBytes(ChapMd5.ChallengeLength))
    {
    }

    /// <summary>For tests: a fixed identifier and challenge.</summary>
    internal ChapTargetAuthenticator(ChapSecret credential, ChapSecret? mutual, byte identifier, byte[] challenge)
    {
        _credential = credential;
        _mutual = mutual;
        _identifier = identifier;
        _challenge = challenge;
    }

    public bool IsComplete => _state == State.Complete;

    /// <summary>True once the algorithm is agreed and the challenge sent.</summary>
    public bool ChallengeSent => _state != State.AwaitAlgorithm;

    /// <summary>The first step: pick MD5 from the CHAP_A list and send CHAP_I and CHAP_C.</summary>
    public LoginFailure? ProcessAlgorithms(string list, List<TextPair> response)
    {
        if (_state != State.AwaitAlgorithm)
        {
            return Fail("CHAP_A sent twice");
        }

        if (!ChapMd5.OffersMd5(list))
        {
            // §12.1.3: MD5 (5) is the only algorithm we implement; without it CHAP cannot proceed.
            return Fail($"CHAP_A={list} does not offer MD5 (5)");
        }

        _state = State.AwaitResponse;
        response.Add(new TextPair(NegotiationKeys.ChapA, ChapMd5.Algorithm));
        // Decimal CHAP_I and hex CHAP_C: libiscsi parses CHAP_I with atoi and accepts CHAP_C only as 0x.
        response.Add(new TextPair(NegotiationKeys.ChapI, TextValue.FormatNumber(_identifier)));
        response.Add(new TextPair(NegotiationKeys.ChapC, TextValue.FormatHex(_challenge)));
        return null;
    }

    /// <summary>The second step: check CHAP_N/CHAP_R and, if asked, answer the initiator's challenge.</summary>
    public LoginFailure? ProcessResponse(string? chapN, string? chapR, string? chapI, string? chapC, List<TextPair> response)
    {
        if (_state != State.AwaitResponse)
        {
            return Fail("CHAP response before CHAP_A");
        }

        if (chapN is null || chapR is null)
        {
            return Fail("CHAP_N or CHAP_R missing");
        }

        // Check the digest even when the name is wrong so both failures take the same time.
        bool digestOk = ChapMd5.Verify(_identifier, _credential.Secret, _challenge, chapR);
        if (!digestOk || !string.Equals(chapN, _credential.User, StringComparison.Ordinal))
        {
            return Fail("CHAP_N/CHAP_R do not match");
        }

        if (chapI is null && chapC is null)
        {
            _state = State.Complete;
            return null;
        }

        if (_mutual is null)
        {
            return Fail("initiator asked for mutual CHAP but the target has no mutual credential");
        }

        if (!ChapMd5.TryParseIdentifier(chapI, out byte theirId) || !ChapMd5.TryParseChallenge(chapC, out var theirChallenge))
        {
            return Fail("CHAP_I/CHAP_C malformed");
        }

        // §12.1.3: a challenge that reflects ours would let an attacker use us as an oracle for our own response.
        if (CryptographicOperations.FixedTimeEquals(theirChallenge, _challenge))
        {
            return Fail("initiator reflected the target's CHAP_C");
        }

        // §12.1.3: a secret used to authenticate initiators MUST NOT authenticate targets.
        if (string.Equals(_mutual.Secret, _credential.Secret, StringComparison.Ordinal))
        {
            return Fail("mutual CHAP secret equals the initiator secret");
        }

        response.Add(new TextPair(NegotiationKeys.ChapN, _mutual.User));
        response.Add(new TextPair(NegotiationKeys.ChapR, TextValue.FormatHex(ChapMd5.Response(theirId, _mutual.Secret, theirChallenge))));
        _state = State.Complete;
        return null;
    }

    private static LoginFailure Fail(string reason) => new(LoginStatus.AuthenticationFailure, "CHAP: " + reason);
}
