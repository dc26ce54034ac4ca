namespace Sluice.Iscsi.Login;

/// <summary>SessionType key values (RFC 7143 §13.21).</summary>
public enum SessionType
{
    /// <summary>Normal operational session.</summary>
    Normal,
    /// <summary>Discovery session: SendTargets only.</summary>
    Discovery,
}

/// <summary>
/// The outcome of a login: every negotiated operational value, starting from the RFC 7143 §13
/// defaults, which is what a key that was never negotiated is worth.
/// </summary>
public sealed record SessionParameters
{
    /// <summary>Default MaxRecvDataSegmentLength (§13.12); also the limit in force during login.</summary>
    public const int DefaultMaxRecvDataSegmentLength = 8192;
    /// <summary>Default MaxBurstLength (§13.13).</summary>
    public const int DefaultMaxBurstLength = 262144;
    /// <summary>Default FirstBurstLength (§13.14).</summary>
    public const int DefaultFirstBurstLength = 65536;
    /// <summary>Smallest legal data segment / burst length (§13.12–13.14).</summary>
    public const int MinDataLength = 512;
    /// <summary>Largest legal data segment / burst length, 2^24 - 1 (§13.12–13.14).</summary>
    public const int MaxDataLength = (1 << 24) - 1;

    /// <summary>HeaderDigest=CRC32C (§13.1).</summary>
    public bool HeaderDigestCrc32C { get; init; }
    /// <summary>DataDigest=CRC32C (§13.1).</summary>
    public bool DataDigestCrc32C { get; init; }
    /// <summary>MaxConnections (§13.2).</summary>
    public int MaxConnections { get; init; } = 1;
    /// <summary>InitialR2T (§13.10).</summary>
    public bool InitialR2T { get; init; } = true;
    /// <summary>ImmediateData (§13.11).</summary>
    public bool ImmediateData { get; init; } = true;
    /// <summary>MaxBurstLength (§13.13).</summary>
    public int MaxBurstLength { get; init; } = DefaultMaxBurstLength;
    /// <summary>FirstBurstLength (§13.14); never above <see cref="MaxBurstLength"/>.</summary>
    public int FirstBurstLength { get; init; } = DefaultFirstBurstLength;
    /// <summary>DefaultTime2Wait in seconds (§13.15).</summary>
    public int DefaultTime2Wait { get; init; } = 2;
    /// <summary>DefaultTime2Retain in seconds (§13.16).</summary>
    public int DefaultTime2Retain { get; init; } = 20;
    /// <summary>MaxOutstandingR2T (§13.17).</summary>
    public int MaxOutstandingR2T { get; init; } = 1;
    /// <summary>DataPDUInOrder (§13.18).</summary>
    public bool DataPduInOrder { get; init; } = true;
    /// <summary>DataSequenceInOrder (§13.19).</summary>
    public bool DataSequenceInOrder { get; init; } = true;
    /// <summary>ErrorRecoveryLevel (§13.20).</summary>
    public int ErrorRecoveryLevel { get; init; }

    /// <summary>
    /// The MaxRecvDataSegmentLength the initiator declared: the largest data segment the target
    /// may SEND to the initiator (§13.12).
    /// </summary>
    public int InitiatorMaxRecvDataSegmentLength { get; init; } = DefaultMaxRecvDataSegmentLength;

    /// <summary>
    /// The MaxRecvDataSegmentLength the target declared: the largest data segment the target
    /// RECEIVES (§13.12).
    /// </summary>
    public int TargetMaxRecvDataSegmentLength { get; init; } = DefaultMaxRecvDataSegmentLength;

    /// <summary>SessionType (§13.21).</summary>
    public SessionType SessionType { get; init; }
    /// <summary>InitiatorName (§13.5).</summary>
    public string InitiatorName { get; init; } = "";
    /// <summary>InitiatorAlias (§13.7), if declared.</summary>
    public string? InitiatorAlias { get; init; }
    /// <summary>TargetName (§13.4); null for a discovery session that did not name one.</summary>
    public string? TargetName { get; init; }
    /// <summary>TargetAlias (§13.6), if declared.</summary>
    public string? TargetAlias { get; init; }
    /// <summary>TargetPortalGroupTag (§13.9), if declared.</summary>
    public ushort? TargetPortalGroupTag { get; init; }
}
