namespace Sluice.Iscsi.Login;

/// <summary>
/// What the target is willing to accept in operational negotiation (RFC 7143 §13). Each value
/// is the target's side of the key's result function.
/// </summary>
public sealed class TargetNegotiationSettings
{
    /// <summary>Declared MaxRecvDataSegmentLength: the largest data segment we receive (512..2^24-1).</summary>
    public int MaxRecvDataSegmentLength { get; init; } = 262144;
    /// <summary>Our MaxBurstLength (Minimum function, 512..2^24-1).</summary>
    public int MaxBurstLength { get; init; } = 1048576;
    /// <summary>Our FirstBurstLength (Minimum function, 512..2^24-1).</summary>
    public int FirstBurstLength { get; init; } = 65536;
    /// <summary>Our MaxOutstandingR2T (Minimum function, 1..65535).</summary>
    public int MaxOutstandingR2T { get; init; } = 1;
    /// <summary>Our InitialR2T (OR function).</summary>
    public bool InitialR2T { get; init; }
    /// <summary>Our ImmediateData (AND function).</summary>
    public bool ImmediateData { get; init; } = true;
    /// <summary>Highest ErrorRecoveryLevel we implement (Minimum function, 0..2).</summary>
    public int MaxErrorRecoveryLevel { get; init; }
    /// <summary>Our DefaultTime2Wait (Maximum function, 0..3600).</summary>
    public int DefaultTime2Wait { get; init; } = 2;
    /// <summary>Our DefaultTime2Retain (Minimum function, 0..3600).</summary>
    public int DefaultTime2Retain { get; init; } = 20;
    /// <summary>Our MaxConnections (Minimum function, 1..65535).</summary>
    public int MaxConnections { get; init; } = 1;
    /// <summary>When true, HeaderDigest/DataDigest may be answered CRC32C (the first of the initiator's list we support).</summary>
    public bool AllowDigests { get; init; }
    /// <summary>TargetAlias to declare, unless the host supplies one per target.</summary>
    public string? TargetAlias { get; init; }

    /// <summary>Throws when a value is outside its key's legal range.</summary>
    public void Validate()
    {
        static void Range(int value, int min, int max, string name)
        {
            if (value < min || value > max)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be within {min}..{max} (RFC 7143 §13).");
            }
        }

        Range(MaxRecvDataSegmentLength, SessionParameters.MinDataLength, SessionParameters.MaxDataLength, nameof(MaxRecvDataSegmentLength));
        Range(MaxBurstLength, SessionParameters.MinDataLength, SessionParameters.MaxDataLength, nameof(MaxBurstLength));
        Range(FirstBurstLength, SessionParameters.MinDataLength, SessionParameters.MaxDataLength, nameof(FirstBurstLength));
        Range(MaxOutstandingR2T, 1, 65535, nameof(MaxOutstandingR2T));
        Range(MaxErrorRecoveryLevel, 0, 2, nameof(MaxErrorRecoveryLevel));
        Range(DefaultTime2Wait, 0, 3600, nameof(DefaultTime2Wait));
        Range(DefaultTime2Retain, 0, 3600, nameof(DefaultTime2Retain));
        Range(MaxConnections, 1, 65535, nameof(MaxConnections));
    }
}
