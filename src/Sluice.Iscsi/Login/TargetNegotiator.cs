using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Login;

/// <summary>
/// Target side of operational text negotiation (RFC 7143 §6.2, §13): answers the initiator's
/// offers with each key's result function, declares the target's own declarative keys, and
/// originates keys whose default the target cannot live with. One instance per login.
/// </summary>
/// <remarks>
/// Decisions where the RFC leaves room, chosen for interoperability with libiscsi and open-iscsi:
/// <list type="bullet">
/// <item>An offer that is malformed or out of range is answered "Reject" and the key keeps its
/// default (§6.2: "the negotiated key is left at its current value (or default)"). The login goes on.</item>
/// <item>The initiator's MaxRecvDataSegmentLength is a declaration, so there is nothing to answer;
/// one that is malformed or outside 512..2^24-1 fails the login with 0x0200, because we cannot send
/// to a peer whose receive limit we do not know.</item>
/// <item>Negotiating a key a second time fails the login with 0x0200 (§6.3: "the target MUST respond
/// with Login reject (initiator error)"). MaxRecvDataSegmentLength may be re-declared (the UNH/Calsoft
/// reading of §6.3).</item>
/// <item>We never answer "Irrelevant" on the leading connection, even for keys irrelevant in a
/// Discovery session or FirstBurstLength when InitialR2T=Yes and ImmediateData=No: the answer is
/// optional (§6.2.2) and libiscsi parses every answer with strtol, so "Irrelevant" would become 0.</item>
/// <item>IFMarker/OFMarker (removed, §13.25) are answered "No", the value RFC 7143 allows besides
/// "Reject" and the one RFC 3720 peers expect; IFMarkInt/OFMarkInt are answered "Reject" (§13.25).</item>
/// <item>Keys only the target may send (TargetAlias, TargetAddress, TargetPortalGroupTag) and
/// SendTargets (Full Feature Phase only) are answered "Reject": they are RFC keys, so
/// "NotUnderstood" is not allowed for them.</item>
/// <item>Extension keys ("X-", "X#") and unknown keys are answered "NotUnderstood" (§6.2, §13.22).</item>
/// </list>
/// </remarks>
internal sealed class TargetNegotiator
{
    private readonly TargetNegotiationSettings _settings;
    private readonly bool _leading;

    // Keys the initiator offered or declared, with the value it sent.
    private readonly Dictionary<string, string> _received = new(StringComparer.Ordinal);
    // Keys we offered and whose answer we wait for, with the value we offered.
    private readonly Dictionary<string, string> _originated = new(StringComparer.Ordinal);
    // Agreed values, in wire form; a key absent here has its default.
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private bool _declaredMaxRecv;

    public TargetNegotiator(TargetNegotiationSettings settings, bool leadingConnection)
    {
        ArgumentNullException.ThrowIfNull(settings);
        _settings = settings;
        _leading = leadingConnection;
    }

    public SessionType SessionType { get; set; }

    /// <summary>True while an offer of ours has not been answered: the target must not transit (§6.3).</summary>
    public bool AwaitingAnswers => _originated.Count > 0;

    /// <summary>
    /// True when going straight from security to Full Feature Phase would skip something the target
    /// needs to say: a MaxRecvDataSegmentLength other than the default, or a key to originate.
    /// </summary>
    public bool WantsOperationalStage =>
        (!_declaredMaxRecv && _settings.MaxRecvDataSegmentLength != SessionParameters.DefaultMaxRecvDataSegmentLength) ||
        PendingOriginations().Any();

    /// <summary>
    /// Answers one complete text of operational keys (names and security keys are the login state
    /// machine's). Answers are appended to <paramref name="response"/> in the order of the offers.
    /// Returns a failure when the login must be rejected.
    /// </summary>
    public LoginFailure? Process(IReadOnlyList<TextPair> pairs, List<TextPair> response)
    {
        foreach (var (key, value) in pairs)
        {
            if (_originated.TryGetValue(key, out var ourOffer))
            {
                var failure = AcceptAnswer(key, ourOffer, value);
                if (failure is not null)
                {
                    return failure;
                }

                continue;
            }

            // §6.3: "An attempt to renegotiate/redeclare parameters not specifically allowed MUST be
            // detected"; MaxRecvDataSegmentLength re-declaration is tolerated and the last one counts.
            if (_received.ContainsKey(key) && key != NegotiationKeys.MaxRecvDataSegmentLength)
            {
                return new LoginFailure(LoginStatus.InitiatorError, $"key {key} negotiated twice (RFC 7143 §6.3)");
            }

            _received[key] = value;
            var answer = AnswerOffer(key, value, pairs, out var fail);
            if (fail is not null)
            {
                return fail;
            }

            if (answer is not null)
            {
                response.Add(new TextPair(key, answer));
            }
        }

        return null;
    }

    /// <summary>Adds MaxRecvDataSegmentLength=our value once per login (§13.12: declarative).</summary>
    public void DeclareOnce(List<TextPair> response)
    {
        if (_declaredMaxRecv)
        {
            return;
        }

        _declaredMaxRecv = true;
        response.Add(new TextPair(NegotiationKeys.MaxRecvDataSegmentLength, TextValue.FormatNumber(_settings.MaxRecvDataSegmentLength)));
    }

    /// <summary>
    /// Offers the keys whose default exceeds what the target accepts and that the initiator left
    /// out. Only called once the initiator asked to transit (T=1), so it has made all its offers and
    /// both sides never offer the same key at once. Returns true if anything was offered.
    /// </summary>
    public bool Originate(List<TextPair> response)
    {
        bool any = false;
        foreach (var (key, value) in PendingOriginations().ToList())
        {
            _originated[key] = value;
            response.Add(new TextPair(key, value));
            any = true;
        }

        return any;
    }

    /// <summary>The agreed values, RFC defaults for the rest.</summary>
    public SessionParameters Build(
        string initiatorName,
        string? initiatorAlias,
        string? targetName,
        string? targetAlias,
        ushort? targetPortalGroupTag)
    {
        int maxBurst = GetInt(NegotiationKeys.MaxBurstLength, SessionParameters.DefaultMaxBurstLength);
        int firstBurst = GetInt(NegotiationKeys.FirstBurstLength, SessionParameters.DefaultFirstBurstLength);
        return new SessionParameters
        {
            HeaderDigestCrc32C = Get(NegotiationKeys.HeaderDigest) == NegotiationKeys.Crc32C,
            DataDigestCrc32C = Get(NegotiationKeys.DataDigest) == NegotiationKeys.Crc32C,
            MaxConnections = GetInt(NegotiationKeys.MaxConnections, 1),
            InitialR2T = GetBool(NegotiationKeys.InitialR2T, true),
            ImmediateData = GetBool(NegotiationKeys.ImmediateData, true),
            MaxBurstLength = maxBurst,
            // §13.14: FirstBurstLength MUST NOT exceed MaxBurstLength. Our answers keep to that, but a
            // MaxBurstLength negotiated in a later PDU than FirstBurstLength could still undercut it.
            FirstBurstLength = Math.Min(firstBurst, maxBurst),
            DefaultTime2Wait = GetInt(NegotiationKeys.DefaultTime2Wait, 2),
            DefaultTime2Retain = GetInt(NegotiationKeys.DefaultTime2Retain, 20),
            MaxOutstandingR2T = GetInt(NegotiationKeys.MaxOutstandingR2T, 1),
            DataPduInOrder = GetBool(NegotiationKeys.DataPduInOrder, true),
            DataSequenceInOrder = GetBool(NegotiationKeys.DataSequenceInOrder, true),
            ErrorRecoveryLevel = GetInt(NegotiationKeys.ErrorRecoveryLevel, 0),
            InitiatorMaxRecvDataSegmentLength = GetInt(NegotiationKeys.MaxRecvDataSegmentLength, SessionParameters.DefaultMaxRecvDataSegmentLength),
            TargetMaxRecvDataSegmentLength = _declaredMaxRecv ? _settings.MaxRecvDataSegmentLength : SessionParameters.DefaultMaxRecvDataSegmentLength,
            SessionType = SessionType,
            InitiatorName = initiatorName,
            InitiatorAlias = initiatorAlias,
            TargetName = targetName,
            TargetAlias = targetAlias,
            TargetPortalGroupTag = targetPortalGroupTag,
        };
    }

    private string? Get(string key) => _values.TryGetValue(key, out var v) ? v : null;

    private int GetInt(string key, int fallback) =>
        _values.TryGetValue(key, out var v) && TextValue.TryParseNumber(v, out ulong n) && n <= int.MaxValue ? (int)n : fallback;

    private bool GetBool(string key, bool fallback) =>
        _values.TryGetValue(key, out var v) && TextValue.TryParseBoolean(v, out bool b) ? b : fallback;

    private IEnumerable<(string Key, string Value)> PendingOriginations()
    {
        if (!_leading || SessionType != SessionType.Normal)
        {
            yield break;
        }

        if (_settings.MaxBurstLength < SessionParameters.DefaultMaxBurstLength && Untouched(NegotiationKeys.MaxBurstLength))
        {
            yield return (NegotiationKeys.MaxBurstLength, TextValue.FormatNumber(_settings.MaxBurstLength));
        }

        long firstBurst = Math.Min(_settings.FirstBurstLength, ExpectedMaxBurst(null));
        if (firstBurst < SessionParameters.DefaultFirstBurstLength && Untouched(NegotiationKeys.FirstBurstLength))
        {
            yield return (NegotiationKeys.FirstBurstLength, TextValue.FormatNumber(firstBurst));
        }

        if (!_settings.ImmediateData && Untouched(NegotiationKeys.ImmediateData))
        {
            yield return (NegotiationKeys.ImmediateData, TextValue.No);
        }

        if (_settings.DefaultTime2Wait > 2 && Untouched(NegotiationKeys.DefaultTime2Wait))
        {
            yield return (NegotiationKeys.DefaultTime2Wait, TextValue.FormatNumber(_settings.DefaultTime2Wait));
        }

        if (_settings.DefaultTime2Retain < 20 && Untouched(NegotiationKeys.DefaultTime2Retain))
        {
            yield return (NegotiationKeys.DefaultTime2Retain, TextValue.FormatNumber(_settings.DefaultTime2Retain));
        }
    }

    private bool Untouched(string key) =>
        !_received.ContainsKey(key) && !_originated.ContainsKey(key) && !_values.ContainsKey(key);

    /// <summary>
    /// Answer to an offer, or null when none is due (declarations). Sets <paramref name="failure"/>
    /// for offers that end the login.
    /// </summary>
    private string? AnswerOffer(string key, string value, IReadOnlyList<TextPair> batch, out LoginFailure? failure)
    {
        failure = null;
        if (NegotiationKeys.IsExtension(key) || !NegotiationKeys.TryGet(key, out var def))
        {
            return TextValue.NotUnderstood;
        }

        switch (def.Category)
        {
            case KeyCategory.Security:
                failure = new LoginFailure(LoginStatus.InitiatorError, $"security key {key} outside the security stage (RFC 7143 §6.3)");
                return null;
            case KeyCategory.FullFeatureOnly:
                return TextValue.Reject;
            case KeyCategory.Obsolete:
                return key is NegotiationKeys.IFMarker or NegotiationKeys.OFMarker && TextValue.TryParseBoolean(value, out _)
                    ? Record(key, TextValue.No)
                    : TextValue.Reject;
            case KeyCategory.Naming:
                // Names belong to the login state machine; a target-only key from the initiator is refused.
                return TextValue.Reject;
        }

        if ((def.Senders & KeySenders.Initiator) == 0)
        {
            return TextValue.Reject;
        }

        if (def.LeadingOnly && !_leading)
        {
            // §13: LO keys are negotiated on the leading connection only; on a later connection
            // "Irrelevant" is the answer.
            return TextValue.Irrelevant;
        }

        switch (def.Function)
        {
            case ResultFunction.Declarative:
                if (key == NegotiationKeys.MaxRecvDataSegmentLength)
                {
                    if (!TextValue.TryParseNumber(value, out ulong mrdsl) || mrdsl < (ulong)def.Min || mrdsl > (ulong)def.Max)
                    {
                        failure = new LoginFailure(LoginStatus.InitiatorError, $"MaxRecvDataSegmentLength={value} is not 512..2^24-1 (RFC 7143 §13.12)");
                        return null;
                    }

                    _values[key] = TextValue.FormatNumber((long)mrdsl);
                }

                return null;

            case ResultFunction.Minimum or ResultFunction.Maximum:
            {
                if (!TextValue.TryParseNumber(value, out ulong offered) || offered < (ulong)def.Min || offered > (ulong)def.Max)
                {
                    return TextValue.Reject;
                }

                long ours = OurNumber(key, batch);
                long result = def.Function == ResultFunction.Minimum ? Math.Min((long)offered, ours) : Math.Max((long)offered, ours);
                return Record(key, TextValue.FormatNumber(result));
            }

            case ResultFunction.And or ResultFunction.Or:
            {
                if (!TextValue.TryParseBoolean(value, out bool offered))
                {
                    return TextValue.Reject;
                }

                bool ours = OurBoolean(key);
                bool result = def.Function == ResultFunction.And ? offered && ours : offered || ours;
                return Record(key, TextValue.FormatBoolean(result));
            }

            case ResultFunction.List:
            {
                var chosen = ChooseFromList(key, value);
                return chosen is null ? TextValue.Reject : Record(key, chosen);
            }

            default:
                return TextValue.NotUnderstood;
        }
    }

    private string Record(string key, string value)
    {
        _values[key] = value;
        return value;
    }

    /// <summary>
    /// The initiator's answer to one of our offers. The answer must be a value the result function
    /// can produce from our offer, or Reject/Irrelevant/NotUnderstood (the key keeps its default).
    /// Anything else fails the login (§6.2: the originator "MUST" treat it as a negotiation failure).
    /// </summary>
    private LoginFailure? AcceptAnswer(string key, string ourOffer, string answer)
    {
        _originated.Remove(key);
        _received[key] = answer;
        if (TextValue.IsSpecialAnswer(answer))
        {
            return null;
        }

        if (!NegotiationKeys.AnswerFollowsFromOffer(key, ourOffer, answer))
        {
            return new LoginFailure(LoginStatus.InitiatorError, $"answer {key}={answer} does not follow from our offer {ourOffer} (RFC 7143 §6.2)");
        }

        _values[key] = answer;
        return null;
    }

    private long OurNumber(string key, IReadOnlyList<TextPair> batch) => key switch
    {
        NegotiationKeys.MaxConnections => _settings.MaxConnections,
        NegotiationKeys.MaxBurstLength => _settings.MaxBurstLength,
        // §13.14: FirstBurstLength MUST NOT exceed MaxBurstLength; the Minimum function lets us
        // answer lower than both offers, so clamp to the MaxBurstLength this login will end with.
        NegotiationKeys.FirstBurstLength => Math.Min(_settings.FirstBurstLength, ExpectedMaxBurst(batch)),
        NegotiationKeys.DefaultTime2Wait => _settings.DefaultTime2Wait,
        NegotiationKeys.DefaultTime2Retain => _settings.DefaultTime2Retain,
        NegotiationKeys.MaxOutstandingR2T => _settings.MaxOutstandingR2T,
        NegotiationKeys.ErrorRecoveryLevel => _settings.MaxErrorRecoveryLevel,
        NegotiationKeys.ProtocolLevel => NegotiationKeys.OurProtocolLevel,
        _ => throw new InvalidOperationException($"no target value for {key}"),
    };

    private bool OurBoolean(string key) => key switch
    {
        NegotiationKeys.InitialR2T => _settings.InitialR2T,
        NegotiationKeys.ImmediateData => _settings.ImmediateData,
        // We place data in order only (OR function: our Yes makes the result Yes).
        NegotiationKeys.DataPduInOrder => true,
        NegotiationKeys.DataSequenceInOrder => true,
        _ => throw new InvalidOperationException($"no target value for {key}"),
    };

    /// <summary>The MaxBurstLength this login will end with, as far as is known now.</summary>
    private long ExpectedMaxBurst(IReadOnlyList<TextPair>? batch)
    {
        if (_values.TryGetValue(NegotiationKeys.MaxBurstLength, out var agreed) && TextValue.TryParseNumber(agreed, out ulong a))
        {
            return (long)a;
        }

        if (batch is not null)
        {
            foreach (var (key, value) in batch)
            {
                if (key == NegotiationKeys.MaxBurstLength && TextValue.TryParseNumber(value, out ulong offered) &&
                    offered is >= SessionParameters.MinDataLength and <= SessionParameters.MaxDataLength)
                {
                    return Math.Min((long)offered, _settings.MaxBurstLength);
                }
            }
        }

        // Not offered (yet): the default, or our own lower value, which we will originate.
        return Math.Min(SessionParameters.DefaultMaxBurstLength, _settings.MaxBurstLength);
    }

    /// <summary>§6.2.2 list negotiation: the first value of the offer that we support, or null.</summary>
    private string? ChooseFromList(string key, string offer)
    {
        var items = offer.Split(',');
        if (Array.Exists(items, i => i.Length == 0))
        {
            // An empty list item violates the list-of-values syntax (§6.1): the offer is not admissible.
            return null;
        }

        foreach (var item in items)
        {
            bool supported = key switch
            {
                NegotiationKeys.HeaderDigest or NegotiationKeys.DataDigest =>
                    item == TextValue.None || (item == NegotiationKeys.Crc32C && _settings.AllowDigests),
                NegotiationKeys.TaskReporting => item == NegotiationKeys.Rfc3720,
                _ => false,
            };
            if (supported)
            {
                return item;
            }
        }

        return null;
    }
}
