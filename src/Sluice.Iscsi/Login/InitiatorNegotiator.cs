using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Login;

/// <summary>What the initiator offers in login (RFC 7143 §13). Defaults follow libiscsi's offer.</summary>
public sealed class InitiatorNegotiationSettings
{
    /// <summary>InitiatorName (§13.5), required.</summary>
    public required string InitiatorName { get; init; }
    /// <summary>InitiatorAlias (§13.7), optional.</summary>
    public string? InitiatorAlias { get; init; }
    /// <summary>TargetName (§13.4); required for a Normal session.</summary>
    public string? TargetName { get; init; }
    /// <summary>SessionType (§13.21).</summary>
    public SessionType SessionType { get; init; }
    /// <summary>Declared MaxRecvDataSegmentLength: the largest data segment we receive.</summary>
    public int MaxRecvDataSegmentLength { get; init; } = 262144;
    /// <summary>Offered MaxBurstLength.</summary>
    public int MaxBurstLength { get; init; } = 262144;
    /// <summary>Offered FirstBurstLength.</summary>
    public int FirstBurstLength { get; init; } = 262144;
    /// <summary>Offered InitialR2T.</summary>
    public bool InitialR2T { get; init; }
    /// <summary>Offered ImmediateData.</summary>
    public bool ImmediateData { get; init; } = true;
    /// <summary>Offered MaxOutstandingR2T.</summary>
    public int MaxOutstandingR2T { get; init; } = 1;
    /// <summary>Offered DefaultTime2Wait.</summary>
    public int DefaultTime2Wait { get; init; } = 2;
    /// <summary>Offered DefaultTime2Retain (0: nothing to retain at ErrorRecoveryLevel 0).</summary>
    public int DefaultTime2Retain { get; init; }
    /// <summary>Offered MaxConnections.</summary>
    public int MaxConnections { get; init; } = 1;
    /// <summary>Offered ErrorRecoveryLevel.</summary>
    public int ErrorRecoveryLevel { get; init; }
    /// <summary>Offer HeaderDigest=CRC32C,None instead of None.</summary>
    public bool HeaderDigestCrc32C { get; init; }
    /// <summary>Offer DataDigest=CRC32C,None instead of None.</summary>
    public bool DataDigestCrc32C { get; init; }
}

/// <summary>
/// Initiator side of login text negotiation (RFC 7143 §6.2, §13): builds the offer, checks each
/// answer against the key's result function, answers keys the target originates, and records the
/// target's declarations. An answer that the result function cannot produce is a negotiation
/// failure: the initiator drops the connection (§6.3).
/// </summary>
public sealed class InitiatorNegotiator
{
    private readonly InitiatorNegotiationSettings _settings;
    private readonly Dictionary<string, string> _offered = new(StringComparer.Ordinal);
    private readonly HashSet<string> _answered = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private bool _declaredMaxRecv;
    private string? _targetAlias;
    private ushort? _targetPortalGroupTag;
    private readonly List<string> _targetAddresses = [];

    /// <summary>Creates the negotiator.</summary>
    public InitiatorNegotiator(InitiatorNegotiationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentException.ThrowIfNullOrEmpty(settings.InitiatorName);
        if (settings.SessionType == SessionType.Normal && string.IsNullOrEmpty(settings.TargetName))
        {
            throw new ArgumentException("A Normal session needs a TargetName (RFC 7143 §6.3.1).", nameof(settings));
        }

        _settings = settings;
    }

    /// <summary>True while an offer of ours has no answer yet.</summary>
    public bool AwaitingAnswers => _offered.Keys.Any(k => !_answered.Contains(k));

    /// <summary>TargetAddress values the target declared (redirection, §13.8).</summary>
    public IReadOnlyList<string> TargetAddresses => _targetAddresses;

    /// <summary>Names for the first Login Request (§6.3.1: InitiatorName always, TargetName for Normal).</summary>
    public IReadOnlyList<TextPair> CreateLoginKeys()
    {
        var list = new List<TextPair> { new(NegotiationKeys.InitiatorName, _settings.InitiatorName) };
        if (!string.IsNullOrEmpty(_settings.InitiatorAlias))
        {
            list.Add(new(NegotiationKeys.InitiatorAlias, _settings.InitiatorAlias));
        }

        if (!string.IsNullOrEmpty(_settings.TargetName))
        {
            list.Add(new(NegotiationKeys.TargetName, _settings.TargetName));
        }

        list.Add(new(NegotiationKeys.SessionType, _settings.SessionType == SessionType.Discovery ? "Discovery" : "Normal"));
        return list;
    }

    /// <summary>
    /// The operational offer for the first LoginOperationalNegotiation request. A Discovery session
    /// offers only the keys that matter to it (the rest are "Irrelevant when SessionType=Discovery", §13).
    /// </summary>
    public IReadOnlyList<TextPair> CreateOperationalOffer()
    {
        var s = _settings;
        var list = new List<TextPair>();
        void Offer(string key, string value)
        {
            if (_offered.TryAdd(key, value))
            {
                list.Add(new TextPair(key, value));
            }
        }

        Offer(NegotiationKeys.HeaderDigest, s.HeaderDigestCrc32C ? "CRC32C,None" : TextValue.None);
        Offer(NegotiationKeys.DataDigest, s.DataDigestCrc32C ? "CRC32C,None" : TextValue.None);
        if (s.SessionType == SessionType.Normal)
        {
            Offer(NegotiationKeys.InitialR2T, TextValue.FormatBoolean(s.InitialR2T));
            Offer(NegotiationKeys.ImmediateData, TextValue.FormatBoolean(s.ImmediateData));
            Offer(NegotiationKeys.MaxBurstLength, TextValue.FormatNumber(s.MaxBurstLength));
            Offer(NegotiationKeys.FirstBurstLength, TextValue.FormatNumber(Math.Min(s.FirstBurstLength, s.MaxBurstLength)));
            Offer(NegotiationKeys.DefaultTime2Wait, TextValue.FormatNumber(s.DefaultTime2Wait));
            Offer(NegotiationKeys.DefaultTime2Retain, TextValue.FormatNumber(s.DefaultTime2Retain));
            Offer(NegotiationKeys.MaxOutstandingR2T, TextValue.FormatNumber(s.MaxOutstandingR2T));
            Offer(NegotiationKeys.ErrorRecoveryLevel, TextValue.FormatNumber(s.ErrorRecoveryLevel));
            Offer(NegotiationKeys.MaxConnections, TextValue.FormatNumber(s.MaxConnections));
            Offer(NegotiationKeys.DataPduInOrder, TextValue.Yes);
            Offer(NegotiationKeys.DataSequenceInOrder, TextValue.Yes);
        }

        // Declarative: recorded as sent, never answered.
        if (!_declaredMaxRecv)
        {
            _declaredMaxRecv = true;
            list.Add(new TextPair(NegotiationKeys.MaxRecvDataSegmentLength, TextValue.FormatNumber(s.MaxRecvDataSegmentLength)));
        }

        return list;
    }

    /// <summary>
    /// Applies the operational keys of one complete Login (or Text) Response. Answers to keys the
    /// target originated are appended to <paramref name="reply"/>. Security keys are ignored here.
    /// Returns false, with a reason, when the connection must be dropped.
    /// </summary>
    public bool TryApplyResponse(IReadOnlyList<TextPair> pairs, List<TextPair> reply, out string? error)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(reply);
        error = null;
        foreach (var (key, value) in pairs)
        {
            if (NegotiationKeys.IsSecurityKey(key))
            {
                continue;
            }

            if (_offered.TryGetValue(key, out var ours))
            {
                if (!_answered.Add(key))
                {
                    error = $"target answered {key} twice (RFC 7143 §6.3)";
                    return false;
                }

                error = CheckAnswer(key, ours, value);
                if (error is not null)
                {
                    return false;
                }

                continue;
            }

            error = ApplyTargetKey(key, value, reply);
            if (error is not null)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The negotiated values, RFC defaults for the rest.</summary>
    public SessionParameters BuildParameters()
    {
        int maxBurst = GetInt(NegotiationKeys.MaxBurstLength, SessionParameters.DefaultMaxBurstLength);
        return new SessionParameters
        {
            HeaderDigestCrc32C = Get(NegotiationKeys.HeaderDigest) == NegotiationKeys.Crc32C,
            DataDigestCrc32C = Get(NegotiationKeys.DataDigest) == NegotiationKeys.Crc32C,
            MaxConnections = GetInt(NegotiationKeys.MaxConnections, 1),
            InitialR2T = GetBool(NegotiationKeys.InitialR2T, true),
            ImmediateData = GetBool(NegotiationKeys.ImmediateData, true),
            MaxBurstLength = maxBurst,
            FirstBurstLength = Math.Min(GetInt(NegotiationKeys.FirstBurstLength, SessionParameters.DefaultFirstBurstLength), maxBurst),
            DefaultTime2Wait = GetInt(NegotiationKeys.DefaultTime2Wait, 2),
            DefaultTime2Retain = GetInt(NegotiationKeys.DefaultTime2Retain, 20),
            MaxOutstandingR2T = GetInt(NegotiationKeys.MaxOutstandingR2T, 1),
            DataPduInOrder = GetBool(NegotiationKeys.DataPduInOrder, true),
            DataSequenceInOrder = GetBool(NegotiationKeys.DataSequenceInOrder, true),
            ErrorRecoveryLevel = GetInt(NegotiationKeys.ErrorRecoveryLevel, 0),
            // From the initiator's side: the target's declaration bounds what we SEND.
            TargetMaxRecvDataSegmentLength = GetInt(NegotiationKeys.MaxRecvDataSegmentLength, SessionParameters.DefaultMaxRecvDataSegmentLength),
            InitiatorMaxRecvDataSegmentLength = _declaredMaxRecv
                ? _settings.MaxRecvDataSegmentLength
                : SessionParameters.DefaultMaxRecvDataSegmentLength,
            SessionType = _settings.SessionType,
            InitiatorName = _settings.InitiatorName,
            InitiatorAlias = _settings.InitiatorAlias,
            TargetName = _settings.TargetName,
            TargetAlias = _targetAlias,
            TargetPortalGroupTag = _targetPortalGroupTag,
        };
    }

    private string? CheckAnswer(string key, string ours, string answer)
    {
        if (answer is TextValue.Reject or TextValue.Irrelevant)
        {
            return null; // §6.2: the key keeps its default.
        }

        if (answer == TextValue.NotUnderstood)
        {
            // §6.2: RFC keys "MUST NOT be answered with NotUnderstood"; tolerate it as a Reject.
            return null;
        }

        if (!NegotiationKeys.AnswerFollowsFromOffer(key, ours, answer))
        {
            return $"answer {key}={answer} does not follow from our offer {ours} (RFC 7143 §6.2)";
        }

        _values[key] = answer;
        return null;
    }

    /// <summary>A key we did not offer: a target declaration, or an offer we must answer.</summary>
    private string? ApplyTargetKey(string key, string value, List<TextPair> reply)
    {
        if (NegotiationKeys.IsExtension(key) || !NegotiationKeys.TryGet(key, out var def))
        {
            reply.Add(new TextPair(key, TextValue.NotUnderstood));
            return null;
        }

        switch (key)
        {
            case NegotiationKeys.MaxRecvDataSegmentLength:
                if (!TextValue.TryParseNumber(value, out ulong mrdsl) || mrdsl < (ulong)def.Min || mrdsl > (ulong)def.Max)
                {
                    return $"target declared MaxRecvDataSegmentLength={value} (RFC 7143 §13.12: 512..2^24-1)";
                }

                _values[key] = TextValue.FormatNumber((long)mrdsl);
                return null;
            case NegotiationKeys.TargetAlias:
                _targetAlias = value;
                return null;
            case NegotiationKeys.TargetAddress:
                _targetAddresses.Add(value);
                return null;
            case NegotiationKeys.TargetPortalGroupTag:
                if (!TextValue.TryParseNumber(value, out ulong tpgt) || tpgt > ushort.MaxValue)
                {
                    return $"TargetPortalGroupTag={value} is not 0..65535 (RFC 7143 §13.9)";
                }

                _targetPortalGroupTag = (ushort)tpgt;
                return null;
        }

        if (def.Category == KeyCategory.Obsolete)
        {
            reply.Add(new TextPair(key, key is NegotiationKeys.IFMarker or NegotiationKeys.OFMarker ? TextValue.No : TextValue.Reject));
            return null;
        }

        if (def.Category != KeyCategory.Operational || (def.Senders & KeySenders.Target) == 0)
        {
            return $"target sent {key}, which it may not send during login";
        }

        if (!_answered.Add(key))
        {
            return $"target offered {key} twice (RFC 7143 §6.3)";
        }

        reply.Add(new TextPair(key, AnswerTargetOffer(key, def, value)));
        return null;
    }

    private string AnswerTargetOffer(string key, KeyDefinition def, string value)
    {
        switch (def.Function)
        {
            case ResultFunction.Minimum or ResultFunction.Maximum:
            {
                if (!TextValue.TryParseNumber(value, out ulong offered) || offered < (ulong)def.Min || offered > (ulong)def.Max)
                {
                    return TextValue.Reject;
                }

                long ours = OurNumber(key);
                long result = def.Function == ResultFunction.Minimum ? Math.Min((long)offered, ours) : Math.Max((long)offered, ours);
                return _values[key] = TextValue.FormatNumber(result);
            }

            case ResultFunction.And or ResultFunction.Or:
            {
                if (!TextValue.TryParseBoolean(value, out bool offered))
                {
                    return TextValue.Reject;
                }

                bool ours = OurBoolean(key);
                return _values[key] = TextValue.FormatBoolean(def.Function == ResultFunction.And ? offered && ours : offered || ours);
            }

            case ResultFunction.List:
            {
                var items = value.Split(',');
                foreach (var item in items)
                {
                    bool supported = key switch
                    {
                        NegotiationKeys.HeaderDigest => item == TextValue.None || (item == NegotiationKeys.Crc32C && _settings.HeaderDigestCrc32C),
                        NegotiationKeys.DataDigest => item == TextValue.None || (item == NegotiationKeys.Crc32C && _settings.DataDigestCrc32C),
                        NegotiationKeys.TaskReporting => item == NegotiationKeys.Rfc3720,
                        _ => false,
                    };
                    if (supported)
                    {
                        return _values[key] = item;
                    }
                }

                return TextValue.Reject;
            }

            default:
                return TextValue.Reject;
        }
    }

    private long OurNumber(string key) => key switch
    {
        NegotiationKeys.MaxConnections => _settings.MaxConnections,
        NegotiationKeys.MaxBurstLength => _settings.MaxBurstLength,
        NegotiationKeys.FirstBurstLength => Math.Min(_settings.FirstBurstLength, GetInt(NegotiationKeys.MaxBurstLength, _settings.MaxBurstLength)),
        NegotiationKeys.DefaultTime2Wait => _settings.DefaultTime2Wait,
        NegotiationKeys.DefaultTime2Retain => _settings.DefaultTime2Retain,
        NegotiationKeys.MaxOutstandingR2T => _settings.MaxOutstandingR2T,
        NegotiationKeys.ErrorRecoveryLevel => _settings.ErrorRecoveryLevel,
        NegotiationKeys.ProtocolLevel => NegotiationKeys.OurProtocolLevel,
        _ => 0,
    };

    private bool OurBoolean(string key) => key switch
    {
        NegotiationKeys.InitialR2T => _settings.InitialR2T,
        NegotiationKeys.ImmediateData => _settings.ImmediateData,
        _ => true,
    };

    private string? Get(string key) => _values.TryGetValue(key, out var v) ? v : null;

    private int GetInt(string key, int fallback) =>
        _values.TryGetValue(key, out var v) && TextValue.TryParseNumber(v, out ulong n) && n <= int.MaxValue ? (int)n : fallback;

    private bool GetBool(string key, bool fallback) =>
        _values.TryGetValue(key, out var v) && TextValue.TryParseBoolean(v, out bool b) ? b : fallback;
}
