using System.Security.Cryptography;
using System.Text;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Chap;

/// <summary>CHAP with MD5 (CHAP_A=5): RFC 1994 §4.1 as used by RFC 7143 §12.1.3.</summary>
internal static class ChapMd5
{
    /// <summary>The CHAP_A value for MD5 (IANA PPP authentication algorithm 5).</summary>
    public const string Algorithm = "5";

    /// <summary>MD5 digest length, the only legal CHAP_R length for CHAP_A=5.</summary>
    public const int ResponseLength = 16;

    /// <summary>Length of the challenges we generate. RFC 7143 §12.1.3 asks for unpredictable challenges; 16 bytes matches the digest.</summary>
    public const int ChallengeLength = 16;

    /// <summary>RFC 1994 §4.1: Response = MD5(Identifier || secret || Challenge).</summary>
    public static byte[] Response(byte identifier, string secret, ReadOnlySpan<byte> challenge)
    {
        int secretLength = Encoding.UTF8.GetByteCount(secret);
        var buffer = new byte[1 + secretLength + challenge.Length];
        buffer[0] = identifier;
        Encoding.UTF8.GetBytes(secret, buffer.AsSpan(1));
        challenge.CopyTo(buffer.AsSpan(1 + secretLength));
#pragma warning disable CA5351 // MD5 is what CHAP_A=5 is; RFC 7143 §12.1.3 makes it mandatory to implement.
        var digest = MD5.HashData(buffer);
#pragma warning restore CA5351
        CryptographicOperations.ZeroMemory(buffer);
        return digest;
    }

    /// <summary>Constant-time check of a CHAP_R value against the expected digest.</summary>
    public static bool Verify(byte identifier, string secret, ReadOnlySpan<byte> challenge, string chapR)
    {
        if (!TextValue.TryParseBinary(chapR, out var got) || got.Length != ResponseLength)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(Response(identifier, secret, challenge), got);
    }

    /// <summary>True when a CHAP_A list (§12.1.3: "CHAP_A=&lt;A1,A2,...&gt;") contains MD5.</summary>
    public static bool OffersMd5(string list)
    {
        foreach (var item in list.Split(','))
        {
            if (item == Algorithm)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>CHAP_I: "I is the identifier ... a number 0..255" (§12.1.3), in any numeric encoding.</summary>
    public static bool TryParseIdentifier(string? value, out byte identifier)
    {
        identifier = 0;
        if (value is null || !TextValue.TryParseNumber(value, out ulong n) || n > 255)
        {
            return false;
        }

        identifier = (byte)n;
        return true;
    }

    /// <summary>CHAP_C: a large-binary-value of 1..1024 bytes (§6.1, §12.1.3).</summary>
    public static bool TryParseChallenge(string? value, out byte[] challenge)
    {
        challenge = [];
        return value is not null && TextValue.TryParseBinary(value, out challenge) &&
               challenge.Length is > 0 and <= TextValue.MaxLargeBinaryLength;
    }
}
