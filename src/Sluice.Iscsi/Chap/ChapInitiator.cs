using System.Security.Cryptography;
using Sluice.Iscsi.Login;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Chap;

/// <summary>
/// Initiator side of CHAP (RFC 7143 §12.1.3): offers MD5, answers the target's challenge and, for
/// mutual CHAP, challenges the target and checks its answer.
/// </summary>
public sealed class ChapInitiator
{
    private readonly ChapSecret _credential;
    private readonly ChapSecret? _target;
    private byte _ourIdentifier;
    private byte[]? _ourChallenge;

    /// <summary>
    /// Creates the initiator side. <paramref name="targetCredential"/>, when given, turns on mutual
    /// CHAP: the target must prove it knows that secret under that name.
    /// </summary>
    public ChapInitiator(ChapSecret credential, ChapSecret? targetCredential = null)
    {
        ArgumentNullException.ThrowIfNull(credential);
        _credential = credential;
        _target = targetCredential;
    }

    /// <summary>The CHAP_A value to offer: MD5 only.</summary>
    public static string AlgorithmOffer => ChapMd5.Algorithm;

    /// <summary>True when the target is challenged too.</summary>
    public bool IsMutual => _target is not null;

    /// <summary>
    /// Answers the target's CHAP_A/CHAP_I/CHAP_C with CHAP_N and CHAP_R, plus CHAP_I and CHAP_C when
    /// mutual. False when the target chose another algorithm or sent a malformed challenge.
    /// </summary>
    public bool TryRespond(string? chapA, string? chapI, string? chapC, out IReadOnlyList<TextPair> reply)
    {
        reply = [];
        if (chapA != ChapMd5.Algorithm || !ChapMd5.TryParseIdentifier(chapI, out byte id) ||
            !ChapMd5.TryParseChallenge(chapC, out var challenge))
        {
            return false;
        }

        var list = new List<TextPair>
        {
            new(NegotiationKeys.ChapN, _credential.User),
            new(NegotiationKeys.ChapR, TextValue.FormatHex(ChapMd5.Response(id, _credential.Secret, challenge))),
        };

        if (_target is not null)
        {
            _ourIdentifier = (byte)RandomNumberGenerator.GetInt32(256);
            do
            {
                _ourChallenge = RandomNumberGenerator.GetBytes(ChapMd5.ChallengeLength);
            }
            while (_ourChallenge.AsSpan().SequenceEqual(challenge));

            list.Add(new TextPair(NegotiationKeys.ChapI, TextValue.FormatNumber(_ourIdentifier)));
            list.Add(new TextPair(NegotiationKeys.ChapC, TextValue.FormatHex(_ourChallenge)));
        }

        reply = list;
        return true;
    }

    /// <summary>Checks the target's CHAP_N/CHAP_R in mutual CHAP. Always false before <see cref="TryRespond"/>.</summary>
    public bool VerifyTarget(string? chapN, string? chapR)
    {
        if (_target is null || _ourChallenge is null || chapN is null || chapR is null)
        {
            return false;
        }

        bool digestOk = ChapMd5.Verify(_ourIdentifier, _target.Secret, _ourChallenge, chapR);
        return digestOk && string.Equals(chapN, _target.User, StringComparison.Ordinal);
    }
}
