using Sluice.Iscsi.Chap;

namespace Sluice.Iscsi.Login;

/// <summary>
/// The fields of a Login Request PDU that the login state machine needs (RFC 7143 §11.12), as plain
/// values so that this layer does not depend on the PDU codec. <see cref="Data"/> is the data segment
/// without padding.
/// </summary>
public readonly record struct LoginRequestInfo(
    bool Transit,
    bool Continue,
    int CurrentStage,
    int NextStage,
    byte VersionMax,
    byte VersionMin,
    ulong Isid,
    ushort Tsih,
    uint InitiatorTaskTag,
    ushort Cid,
    uint CmdSN,
    uint ExpStatSN,
    ReadOnlyMemory<byte> Data);

/// <summary>
/// What to put in the Login Response (RFC 7143 §11.13). The caller adds what it owns: ISID, TSIH,
/// ITT, StatSN/ExpCmdSN/MaxCmdSN and the version fields (always 0x00: Version-max and Version-active,
/// §11.13.1/§11.13.2).
/// </summary>
public sealed class LoginReply
{
    /// <summary>T bit.</summary>
    public bool Transit { get; init; }
    /// <summary>C bit: more response text follows; the initiator pulls it with an empty Login Request.</summary>
    public bool Continue { get; init; }
    /// <summary>CSG.</summary>
    public int CurrentStage { get; init; }
    /// <summary>NSG (meaningful only when <see cref="Transit"/> is set).</summary>
    public int NextStage { get; init; }
    /// <summary>Status-Class (§11.13.5).</summary>
    public byte StatusClass { get; init; }
    /// <summary>Status-Detail (§11.13.5).</summary>
    public byte StatusDetail { get; init; }
    /// <summary>Data segment: key=value text, unpadded.</summary>
    public byte[] Data { get; init; } = [];
    /// <summary>True on the final response that moves the connection to Full Feature Phase.</summary>
    public bool LoginComplete { get; init; }
    /// <summary>True on a login reject: send this response, then close the connection (§6.3).</summary>
    public bool Failed { get; init; }
    /// <summary>Why the login failed, for the log; never sent on the wire.</summary>
    public string? FailureReason { get; init; }

    /// <summary>Status-Class and Status-Detail as one code (see <see cref="LoginStatus"/>).</summary>
    public ushort Status => (ushort)((StatusClass << 8) | StatusDetail);
}

/// <summary>What the target layer decides about an initiator's login to a target.</summary>
public sealed record TargetLoginDecision
{
    /// <summary>The target exists (always true for discovery).</summary>
    public bool Exists { get; init; }
    /// <summary>The initiator may log in (ACL).</summary>
    public bool Allowed { get; init; }
    /// <summary>When set, the initiator must authenticate with CHAP using this credential.</summary>
    public ChapSecret? Chap { get; init; }
    /// <summary>The credential the target answers with when the initiator asks for mutual CHAP.</summary>
    public ChapSecret? MutualChap { get; init; }
    /// <summary>TargetAlias to declare for this target, overriding the settings.</summary>
    public string? Alias { get; init; }
}

/// <summary>The target layer's side of a login: target lookup, ACL and credentials.</summary>
public interface ITargetLoginHost
{
    /// <summary>
    /// Called once per login with the names from the first Login Request. For discovery
    /// (<paramref name="discovery"/> true) <paramref name="targetName"/> is usually null, Exists
    /// should be true and Chap is the discovery CHAP credential, if any.
    /// </summary>
    TargetLoginDecision ResolveTarget(string? targetName, string initiatorName, bool discovery);
}
