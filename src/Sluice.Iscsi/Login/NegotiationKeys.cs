using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Login;

/// <summary>How the two offers of a key combine (RFC 7143 §6.2.1, §6.2.2).</summary>
internal enum ResultFunction
{
    /// <summary>Declarative: the sender states a value; no answer is due.</summary>
    Declarative,
    /// <summary>Numerical, result is the smaller value.</summary>
    Minimum,
    /// <summary>Numerical, result is the larger value.</summary>
    Maximum,
    /// <summary>Boolean AND.</summary>
    And,
    /// <summary>Boolean OR.</summary>
    Or,
    /// <summary>List: the acceptor picks the first value of the offer that it supports.</summary>
    List,
}

/// <summary>When a key may be sent (RFC 7143 §6.3 stage rules, §13 "Use").</summary>
internal enum KeyCategory
{
    /// <summary>SecurityNegotiation stage only (§12).</summary>
    Security,
    /// <summary>LoginOperationalNegotiation stage (§13).</summary>
    Operational,
    /// <summary>Names, aliases, session type, portal group: any login stage (§6.3.1).</summary>
    Naming,
    /// <summary>Full Feature Phase only (SendTargets, §13.3).</summary>
    FullFeatureOnly,
    /// <summary>Markers, removed by RFC 7143 (§13.25).</summary>
    Obsolete,
}

/// <summary>Which side may originate a key (§13 "Senders").</summary>
[Flags]
internal enum KeySenders
{
    Initiator = 1,
    Target = 2,
    Both = Initiator | Target,
}

internal sealed record KeyDefinition(
    string Name,
    ResultFunction Function,
    KeyCategory Category,
    KeySenders Senders,
    long Min = 0,
    long Max = 0,
    string Default = "",
    bool LeadingOnly = false);

/// <summary>The key registry: names, types, ranges and defaults of RFC 7143 §12 and §13.</summary>
internal static class NegotiationKeys
{
    public const string AuthMethod = "AuthMethod";
    public const string ChapA = "CHAP_A";
    public const string ChapI = "CHAP_I";
    public const string ChapC = "CHAP_C";
    public const string ChapN = "CHAP_N";
    public const string ChapR = "CHAP_R";
    public const string HeaderDigest = "HeaderDigest";
    public const string DataDigest = "DataDigest";
    public const string MaxConnections = "MaxConnections";
    public const string SendTargets = "SendTargets";
    public const string TargetName = "TargetName";
    public const string InitiatorName = "InitiatorName";
    public const string TargetAlias = "TargetAlias";
    public const string InitiatorAlias = "InitiatorAlias";
    public const string TargetAddress = "TargetAddress";
    public const string TargetPortalGroupTag = "TargetPortalGroupTag";
    public const string InitialR2T = "InitialR2T";
    public const string ImmediateData = "ImmediateData";
    public const string MaxRecvDataSegmentLength = "MaxRecvDataSegmentLength";
    public const string MaxBurstLength = "MaxBurstLength";
    public const string FirstBurstLength = "FirstBurstLength";
    public const string DefaultTime2Wait = "DefaultTime2Wait";
    public const string DefaultTime2Retain = "DefaultTime2Retain";
    public const string MaxOutstandingR2T = "MaxOutstandingR2T";
    public const string DataPduInOrder = "DataPDUInOrder";
    public const string DataSequenceInOrder = "DataSequenceInOrder";
    public const string ErrorRecoveryLevel = "ErrorRecoveryLevel";
    public const string SessionType = "SessionType";
    public const string TaskReporting = "TaskReporting";
    public const string ProtocolLevel = "iSCSIProtocolLevel";
    public const string IFMarker = "IFMarker";
    public const string OFMarker = "OFMarker";
    public const string IFMarkInt = "IFMarkInt";
    public const string OFMarkInt = "OFMarkInt";

    public const string Crc32C = "CRC32C";
    public const string Rfc3720 = "RFC3720";

    /// <summary>iSCSIProtocolLevel this implementation claims: 1 = RFC 7143 (RFC 7144 §2.1).</summary>
    public const int OurProtocolLevel = 1;

    private const long DataMax = SessionParameters.MaxDataLength;
    private const long DataMin = SessionParameters.MinDataLength;

    private static readonly Dictionary<string, KeyDefinition> Table = Build();

    /// <summary>
    /// Whether <paramref name="answer"/> is a legal result of the result function of
    /// <paramref name="key"/> applied to <paramref name="ourOffer"/> (RFC 7143 §6.2.1, §6.2.2):
    /// in range and not beyond our offer for min/max, no upgrade for AND/OR, one of our listed
    /// values for a list. Used by whichever side made the offer.
    /// </summary>
    public static bool AnswerFollowsFromOffer(string key, string ourOffer, string answer)
    {
        TryGet(key, out var def);
        switch (def.Function)
        {
            case ResultFunction.Minimum or ResultFunction.Maximum:
                TextValue.TryParseNumber(ourOffer, out ulong offered);
                return TextValue.TryParseNumber(answer, out ulong got) && got >= (ulong)def.Min && got <= (ulong)def.Max &&
                       (def.Function == ResultFunction.Minimum ? got <= offered : got >= offered);
            case ResultFunction.And:
                return TextValue.TryParseBoolean(answer, out bool andResult) && (ourOffer == TextValue.Yes || !andResult);
            case ResultFunction.Or:
                return TextValue.TryParseBoolean(answer, out bool orResult) && (ourOffer == TextValue.No || orResult);
            case ResultFunction.List:
                return !answer.Contains(',', StringComparison.Ordinal) && ourOffer.Split(',').Contains(answer, StringComparer.Ordinal);
            default:
                return false;
        }
    }

    public static bool TryGet(string key, out KeyDefinition definition) =>
        Table.TryGetValue(key, out definition!);

    /// <summary>§13.22: "X-" and "X#" keys are private or public extensions.</summary>
    public static bool IsExtension(string key) =>
        key.StartsWith("X-", StringComparison.Ordinal) || key.StartsWith("X#", StringComparison.Ordinal);

    /// <summary>Security keys (§12), including the unsupported SRP and Kerberos exchanges.</summary>
    public static bool IsSecurityKey(string key) =>
        key == AuthMethod || key.StartsWith("CHAP_", StringComparison.Ordinal) ||
        key.StartsWith("SRP_", StringComparison.Ordinal) || key.StartsWith("KRB_", StringComparison.Ordinal);

    private static Dictionary<string, KeyDefinition> Build()
    {
        KeyDefinition[] keys =
        [
            // §12.1: security keys; the login state machine handles them, the table only classifies.
            new(AuthMethod, ResultFunction.List, KeyCategory.Security, KeySenders.Both, Default: TextValueNone),
            new(ChapA, ResultFunction.List, KeyCategory.Security, KeySenders.Both),
            new(ChapI, ResultFunction.Declarative, KeyCategory.Security, KeySenders.Both),
            new(ChapC, ResultFunction.Declarative, KeyCategory.Security, KeySenders.Both),
            new(ChapN, ResultFunction.Declarative, KeyCategory.Security, KeySenders.Both),
            new(ChapR, ResultFunction.Declarative, KeyCategory.Security, KeySenders.Both),

            // §13.1 - §13.24
            new(HeaderDigest, ResultFunction.List, KeyCategory.Operational, KeySenders.Both, Default: TextValueNone),
            new(DataDigest, ResultFunction.List, KeyCategory.Operational, KeySenders.Both, Default: TextValueNone),
            new(MaxConnections, ResultFunction.Minimum, KeyCategory.Operational, KeySenders.Both, 1, 65535, "1", LeadingOnly: true),
            new(SendTargets, ResultFunction.Declarative, KeyCategory.FullFeatureOnly, KeySenders.Initiator),
            new(TargetName, ResultFunction.Declarative, KeyCategory.Naming, KeySenders.Both),
            new(InitiatorName, ResultFunction.Declarative, KeyCategory.Naming, KeySenders.Initiator),
            new(TargetAlias, ResultFunction.Declarative, KeyCategory.Naming, KeySenders.Target),
            new(InitiatorAlias, ResultFunction.Declarative, KeyCategory.Naming, KeySenders.Initiator),
            new(TargetAddress, ResultFunction.Declarative, KeyCategory.Naming, KeySenders.Target),
            new(TargetPortalGroupTag, ResultFunction.Declarative, KeyCategory.Naming, KeySenders.Target, 0, 65535),
            new(InitialR2T, ResultFunction.Or, KeyCategory.Operational, KeySenders.Both, Default: "Yes", LeadingOnly: true),
            new(ImmediateData, ResultFunction.And, KeyCategory.Operational, KeySenders.Both, Default: "Yes", LeadingOnly: true),
            new(MaxRecvDataSegmentLength, ResultFunction.Declarative, KeyCategory.Operational, KeySenders.Both, DataMin, DataMax, "8192"),
            new(MaxBurstLength, ResultFunction.Minimum, KeyCategory.Operational, KeySenders.Both, DataMin, DataMax, "262144", LeadingOnly: true),
            new(FirstBurstLength, ResultFunction.Minimum, KeyCategory.Operational, KeySenders.Both, DataMin, DataMax, "65536", LeadingOnly: true),
            new(DefaultTime2Wait, ResultFunction.Maximum, KeyCategory.Operational, KeySenders.Both, 0, 3600, "2", LeadingOnly: true),
            new(DefaultTime2Retain, ResultFunction.Minimum, KeyCategory.Operational, KeySenders.Both, 0, 3600, "20", LeadingOnly: true),
            new(MaxOutstandingR2T, ResultFunction.Minimum, KeyCategory.Operational, KeySenders.Both, 1, 65535, "1", LeadingOnly: true),
            new(DataPduInOrder, ResultFunction.Or, KeyCategory.Operational, KeySenders.Both, Default: "Yes", LeadingOnly: true),
            new(DataSequenceInOrder, ResultFunction.Or, KeyCategory.Operational, KeySenders.Both, Default: "Yes", LeadingOnly: true),
            new(ErrorRecoveryLevel, ResultFunction.Minimum, KeyCategory.Operational, KeySenders.Both, 0, 2, "0", LeadingOnly: true),
            new(SessionType, ResultFunction.Declarative, KeyCategory.Naming, KeySenders.Initiator, Default: "Normal", LeadingOnly: true),
            new(TaskReporting, ResultFunction.List, KeyCategory.Operational, KeySenders.Both, Default: Rfc3720, LeadingOnly: true),
            new(ProtocolLevel, ResultFunction.Minimum, KeyCategory.Operational, KeySenders.Both, 0, 31, "1", LeadingOnly: true),

            // §13.25: obsoleted by RFC 7143 but still sent by RFC 3720-era initiators (libiscsi sends
            // IFMarker=No and OFMarker=No).
            new(IFMarker, ResultFunction.And, KeyCategory.Obsolete, KeySenders.Both, Default: "No"),
            new(OFMarker, ResultFunction.And, KeyCategory.Obsolete, KeySenders.Both, Default: "No"),
            new(IFMarkInt, ResultFunction.Declarative, KeyCategory.Obsolete, KeySenders.Both),
            new(OFMarkInt, ResultFunction.Declarative, KeyCategory.Obsolete, KeySenders.Both),
        ];

        var table = new Dictionary<string, KeyDefinition>(StringComparer.Ordinal);
        foreach (var k in keys)
        {
            table.Add(k.Name, k);
        }

        return table;
    }

    private const string TextValueNone = "None";
}

/// <summary>Why a login must fail: the status to send and a reason for the log.</summary>
internal readonly record struct LoginFailure(ushort Status, string Reason);
