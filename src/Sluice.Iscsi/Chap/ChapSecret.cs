namespace Sluice.Iscsi.Chap;

/// <summary>
/// A CHAP identity: the name sent as CHAP_N and the shared secret (RFC 7143 §12.1.3). RFC 7143
/// recommends secrets of at least 12 bytes (§9.2.1); any non-empty secret is accepted because
/// test suites (libiscsi's among them) use shorter ones.
/// </summary>
public sealed record ChapSecret
{
    /// <summary>Creates a credential.</summary>
    public ChapSecret(string user, string secret)
    {
        ArgumentException.ThrowIfNullOrEmpty(user);
        ArgumentException.ThrowIfNullOrEmpty(secret);
        User = user;
        Secret = secret;
    }

    /// <summary>CHAP_N: the name of the party that proves knowledge of <see cref="Secret"/>.</summary>
    public string User { get; }

    /// <summary>The shared secret, used as its UTF-8 bytes.</summary>
    public string Secret { get; }

    /// <summary>Keeps the secret out of logs.</summary>
    public override string ToString() => $"ChapSecret {{ User = {User} }}";
}
