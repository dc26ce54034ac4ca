using Sluice.Iscsi.Chap;
using Sluice.Iscsi.Text;

namespace Sluice.Iscsi.Login;

/// <summary>
/// Target side of the login phase of one connection (RFC 7143 §6.3, §11.12, §11.13): one Login
/// Request in, one Login Response out, through SecurityNegotiation (0) and
/// LoginOperationalNegotiation (1) to FullFeaturePhase (3).
/// </summary>
/// <remarks>
/// Not handled here, by design: TSIH assignment, session reinstatement and connection counting
/// (the target layer does them once <see cref="LoginReply.LoginComplete"/> is about to go out),
/// login timeouts, and redirection. Status codes:
/// <list type="bullet">
/// <item>0x0200: stage/flag violations (T and C both set, CSG 2 or 3, NSG not after CSG, CSG not the
/// current stage), ISID/TSIH/CID changing mid-login, undecodable text, keys sent in the wrong stage,
/// a key negotiated twice (§6.3), a malformed MaxRecvDataSegmentLength declaration.</item>
/// <item>0x0201: CHAP failures, CHAP required but not offered/skipped.</item>
/// <item>0x0202 ACL refusal, 0x0203 unknown target, 0x0205 Version-min above 0,
/// 0x0207 InitiatorName or (Normal) TargetName missing, 0x0209 unknown SessionType.</item>
/// </list>
/// Interoperability: libiscsi repeats InitiatorName, InitiatorAlias, TargetName and SessionType in
/// its first operational PDU after CHAP; an identical repeat is accepted, a different one is 0x0200.
/// </remarks>
public sealed class TargetLoginStateMachine
{
    /// <summary>During login the peer's MaxRecvDataSegmentLength is the default (§13.12).</summary>
    public const int LoginMaxSegmentLength = SessionParameters.DefaultMaxRecvDataSegmentLength;

    /// <summary>Cap on Login Requests per login, so that a peer cannot keep a login open forever by PDU count.</summary>
    public const int MaxLoginRequests = 64;

    private const string AuthNone = "None";
    private const string AuthChap = "CHAP";

    private readonly TargetNegotiationSettings _settings;
    private readonly ITargetLoginHost _host;
    private readonly ushort _targetPortalGroupTag;
    private readonly TextAccumulator _accumulator = new();

    private int _requests;
    private bool _started;
    private bool _namesSeen;
    private int _stage;
    private ulong _isid;
    private ushort _tsih;
    private ushort _cid;
    private bool _complete;
    private bool _failed;

    private string _initiatorName = "";
    private string? _initiatorAlias;
    private string? _targetName;
    private string? _targetAlias;
    private string? _sessionTypeValue;
    private SessionType _sessionType;
    private bool _authRequired;
    private string? _authMethod;
    private TargetLoginDecision? _decision;
    private ChapTargetAuthenticator? _chap;
    private TargetNegotiator? _negotiator;
    private SessionParameters? _parameters;

    private TextSegmenter? _pending;
    private LoginReply? _pendingFinal;

    /// <summary>Creates the state machine for one connection's login.</summary>
    public TargetLoginStateMachine(TargetNegotiationSettings settings, ITargetLoginHost host, ushort targetPortalGroupTag)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(host);
        settings.Validate();
        _settings = settings;
        _host = host;
        _targetPortalGroupTag = targetPortalGroupTag;
    }

    /// <summary>True once the final response (T=1, NSG=3) has been produced.</summary>
    public bool IsComplete => _complete;

    /// <summary>True once a login reject has been produced.</summary>
    public bool IsFailed => _failed;

    /// <summary>The negotiated parameters. Only valid once <see cref="IsComplete"/>.</summary>
    public SessionParameters Parameters =>
        _parameters ?? throw new InvalidOperationException("The login has not completed.");

    /// <summary>InitiatorName from the first Login Request (empty before it).</summary>
    public string InitiatorName => _initiatorName;

    /// <summary>TargetName from the first Login Request; null for a discovery session that named none.</summary>
    public string? TargetName => _targetName;

    /// <summary>True for SessionType=Discovery.</summary>
    public bool IsDiscovery => _sessionType == SessionType.Discovery;

    /// <summary>ISID of the login (valid after the first request).</summary>
    public ulong Isid => _isid;

    /// <summary>TSIH the initiator sent: 0 for a new session (leading connection).</summary>
    public ushort Tsih => _tsih;

    /// <summary>CID of the connection.</summary>
    public ushort Cid => _cid;

    /// <summary>The host's decision about the target, once the first request was processed.</summary>
    public TargetLoginDecision? Decision => _decision;

    /// <summary>Processes one Login Request and returns the response to send.</summary>
    public LoginReply Process(in LoginRequestInfo request)
    {
        if (_complete || _failed)
        {
            return Reject(LoginStatus.InitiatorError, "Login Request after the login ended");
        }

        if (++_requests > MaxLoginRequests)
        {
            return Reject(LoginStatus.InitiatorError, $"more than {MaxLoginRequests} Login Requests");
        }

        // §11.12.4/§11.12.5: we implement version 0x00 only; the initiator's range must include it.
        if (request.VersionMin > 0)
        {
            return Reject(LoginStatus.UnsupportedVersion, $"Version-min {request.VersionMin} is not supported");
        }

        var flagError = CheckFlags(request);
        if (flagError is not null)
        {
            return Reject(LoginStatus.InitiatorError, flagError);
        }

        if (_pending is not null)
        {
            // §11.13.2: the initiator pulls the rest of a C=1 response with empty requests.
            if (!request.Data.IsEmpty || request.Continue)
            {
                return Reject(LoginStatus.InitiatorError, "Login Request with data while a continued response is pending");
            }

            return NextChunk();
        }

        var accumulated = _accumulator.Append(request.Data.Span, final: !request.Continue);
        if (accumulated == TextAccumulatorResult.NeedMore)
        {
            // §11.12.2: each partial request (C=1) is answered with an empty response to solicit the rest.
            return new LoginReply { CurrentStage = _stage };
        }

        if (accumulated == TextAccumulatorResult.Failed)
        {
            return Reject(LoginStatus.InitiatorError, $"login text: {_accumulator.Error}");
        }

        var response = new List<TextPair>();
        var outcome = Handle(request, _accumulator.Pairs, response);
        if (outcome.Failure is { } failure)
        {
            return Reject(failure.Status, failure.Reason);
        }

        var final = new LoginReply
        {
            Transit = outcome.Transit,
            CurrentStage = _stage,
            NextStage = outcome.Transit ? outcome.NextStage : 0,
            LoginComplete = outcome.Transit && outcome.NextStage == LoginStage.FullFeaturePhase,
        };

        var text = TextCodec.Encode(response);
        if (text.Length <= LoginMaxSegmentLength)
        {
            return EmitFinal(final, text);
        }

        _pending = new TextSegmenter(text, LoginMaxSegmentLength);
        _pendingFinal = final;
        return NextChunk();
    }

    private string? CheckFlags(in LoginRequestInfo request)
    {
        // §11.12.2: "If the T bit is 1, the C bit must be 0" (C bit description).
        if (request.Transit && request.Continue)
        {
            return "T and C both set";
        }

        if (request.CurrentStage is not (LoginStage.SecurityNegotiation or LoginStage.OperationalNegotiation))
        {
            return $"CSG {request.CurrentStage} is not a login stage";
        }

        // §6.3 stage transition table: Security -> Operational/FullFeature, Operational -> FullFeature.
        if (request.Transit &&
            (request.NextStage is not (LoginStage.OperationalNegotiation or LoginStage.FullFeaturePhase) ||
             request.NextStage <= request.CurrentStage))
        {
            return $"transition {request.CurrentStage} -> {request.NextStage} is not allowed";
        }

        if (!_started)
        {
            _started = true;
            _stage = request.CurrentStage;
            _isid = request.Isid;
            _tsih = request.Tsih;
            _cid = request.Cid;
            return null;
        }

        if (request.Isid != _isid || request.Tsih != _tsih || request.Cid != _cid)
        {
            return "ISID, TSIH or CID changed during login";
        }

        return request.CurrentStage != _stage ? $"CSG {request.CurrentStage} but the login is in stage {_stage}" : null;
    }

    private readonly record struct Outcome(bool Transit, int NextStage, LoginFailure? Failure)
    {
        public static Outcome Fail(LoginFailure failure) => new(false, 0, failure);

        public static Outcome Fail(ushort status, string reason) => new(false, 0, new LoginFailure(status, reason));
    }

    private Outcome Handle(in LoginRequestInfo request, IReadOnlyList<TextPair> pairs, List<TextPair> response)
    {
        if (!_namesSeen)
        {
            var first = HandleNames(request, pairs, response);
            if (first is not null)
            {
                return Outcome.Fail(first.Value);
            }
        }

        var security = new List<TextPair>();
        var operational = new List<TextPair>();
        foreach (var pair in pairs)
        {
            switch (pair.Key)
            {
                case NegotiationKeys.InitiatorName:
                case NegotiationKeys.TargetName:
                case NegotiationKeys.SessionType:
                case NegotiationKeys.InitiatorAlias:
                    if (!IsSameDeclaration(pair))
                    {
                        return Outcome.Fail(LoginStatus.InitiatorError, $"{pair.Key} changed during login (RFC 7143 §6.3)");
                    }

                    break;
                default:
                    if (NegotiationKeys.IsSecurityKey(pair.Key))
                    {
                        security.Add(pair);
                    }
                    else
                    {
                        operational.Add(pair);
                    }

                    break;
            }
        }

        return _stage == LoginStage.SecurityNegotiation
            ? HandleSecurity(request, security, operational, response)
            : HandleOperational(request, security, operational, response);
    }

    /// <summary>The first complete request: names, session type, target lookup and ACL (§6.3.1, §13.4, §13.5, §13.21).</summary>
    private LoginFailure? HandleNames(in LoginRequestInfo request, IReadOnlyList<TextPair> pairs, List<TextPair> response)
    {
        _namesSeen = true;
        string? initiatorName = Find(pairs, NegotiationKeys.InitiatorName);
        if (string.IsNullOrEmpty(initiatorName))
        {
            return new LoginFailure(LoginStatus.MissingParameter, "InitiatorName missing from the first Login Request (RFC 7143 §6.3.1)");
        }

        _sessionTypeValue = Find(pairs, NegotiationKeys.SessionType);
        switch (_sessionTypeValue)
        {
            case null or "Normal":
                _sessionType = SessionType.Normal;
                break;
            case "Discovery":
                _sessionType = SessionType.Discovery;
                break;
            default:
                return new LoginFailure(LoginStatus.SessionTypeNotSupported, $"SessionType={_sessionTypeValue}");
        }

        string? targetName = Find(pairs, NegotiationKeys.TargetName);
        if (_sessionType == SessionType.Normal && string.IsNullOrEmpty(targetName))
        {
            return new LoginFailure(LoginStatus.MissingParameter, "TargetName missing from the first Login Request of a Normal session (RFC 7143 §6.3.1)");
        }

        _initiatorName = initiatorName;
        _initiatorAlias = Find(pairs, NegotiationKeys.InitiatorAlias);
        _targetName = string.IsNullOrEmpty(targetName) ? null : targetName;

        var decision = _host.ResolveTarget(_targetName, _initiatorName, IsDiscovery);
        _decision = decision;
        if (!decision.Exists)
        {
            return new LoginFailure(LoginStatus.NotFound, $"target {_targetName} not found");
        }

        if (!decision.Allowed)
        {
            return new LoginFailure(LoginStatus.AuthorizationFailure, $"initiator {_initiatorName} is not allowed on {_targetName}");
        }

        _authRequired = decision.Chap is not null;
        _targetAlias = decision.Alias ?? _settings.TargetAlias;
        _negotiator = new TargetNegotiator(_settings, leadingConnection: request.Tsih == 0) { SessionType = _sessionType };

        // §6.3.1: TargetPortalGroupTag goes in the first response after the first request with C=0,
        // for all session types when TargetName is given.
        if (_targetName is not null)
        {
            response.Add(new TextPair(NegotiationKeys.TargetPortalGroupTag, TextValue.FormatNumber(_targetPortalGroupTag)));
            if (!string.IsNullOrEmpty(_targetAlias))
            {
                response.Add(new TextPair(NegotiationKeys.TargetAlias, _targetAlias));
            }
        }

        return null;
    }

    private bool IsSameDeclaration(TextPair pair) => pair.Key switch
    {
        NegotiationKeys.InitiatorName => pair.Value == _initiatorName,
        NegotiationKeys.TargetName => pair.Value == (_targetName ?? ""),
        NegotiationKeys.SessionType => pair.Value == (_sessionTypeValue ?? "Normal"),
        NegotiationKeys.InitiatorAlias => AcceptAlias(pair.Value),
        _ => false,
    };

    // An alias may first appear in a later PDU; after that it must not change.
    private bool AcceptAlias(string value)
    {
        _initiatorAlias ??= value;
        return value == _initiatorAlias;
    }

    private Outcome HandleSecurity(in LoginRequestInfo request, List<TextPair> security, List<TextPair> operational, List<TextPair> response)
    {
        var stray = FirstOperationalKey(operational);
        if (stray is not null)
        {
            // §6.3: "It is considered to be a protocol error to send a key that is not allowed in the current stage."
            return Outcome.Fail(LoginStatus.InitiatorError, $"operational key {stray} in the security stage (RFC 7143 §6.3)");
        }

        // Unknown and extension keys are answered NotUnderstood in either stage.
        var failure = _negotiator!.Process(operational, response);
        if (failure is not null)
        {
            return Outcome.Fail(failure.Value);
        }

        string? chapN = null, chapR = null, chapI = null, chapC = null;
        foreach (var (key, value) in security)
        {
            switch (key)
            {
                case NegotiationKeys.AuthMethod:
                    failure = NegotiateAuthMethod(value, response);
                    break;
                case NegotiationKeys.ChapA:
                    failure = _chap is null
                        ? new LoginFailure(LoginStatus.AuthenticationFailure, "CHAP_A without AuthMethod=CHAP")
                        : _chap.ProcessAlgorithms(value, response);
                    break;
                case NegotiationKeys.ChapN:
                    chapN = value;
                    break;
                case NegotiationKeys.ChapR:
                    chapR = value;
                    break;
                case NegotiationKeys.ChapI:
                    chapI = value;
                    break;
                case NegotiationKeys.ChapC:
                    chapC = value;
                    break;
                default:
                    failure = new LoginFailure(LoginStatus.AuthenticationFailure, $"{key}: only CHAP is implemented (RFC 7143 §12.1)");
                    break;
            }

            if (failure is not null)
            {
                return Outcome.Fail(failure.Value);
            }
        }

        if (chapN is not null || chapR is not null || chapI is not null || chapC is not null)
        {
            failure = _chap is null
                ? new LoginFailure(LoginStatus.AuthenticationFailure, "CHAP response without AuthMethod=CHAP")
                : _chap.ProcessResponse(chapN, chapR, chapI, chapC, response);
            if (failure is not null)
            {
                return Outcome.Fail(failure.Value);
            }
        }

        if (!request.Transit)
        {
            return new Outcome(false, 0, null);
        }

        bool authenticated = _chap?.IsComplete ?? !_authRequired;
        if (authenticated)
        {
            // §6.3: the target selects the next stage and "MUST NOT exceed the value stated by the
            // initiator": go through the operational stage when we have something to declare or offer.
            int next = request.NextStage == LoginStage.FullFeaturePhase && _negotiator.WantsOperationalStage
                ? LoginStage.OperationalNegotiation
                : request.NextStage;
            return new Outcome(true, next, null);
        }

        if (_chap is not null)
        {
            // CHAP still in progress (e.g. libiscsi's first PDU: AuthMethod=CHAP,None with T=1): stay.
            return new Outcome(false, 0, null);
        }

        return Outcome.Fail(LoginStatus.AuthenticationFailure, "transit out of the security stage without authentication");
    }

    /// <summary>§12.1: AuthMethod is a list; a CHAP target offers only CHAP, an open target only None.</summary>
    private LoginFailure? NegotiateAuthMethod(string value, List<TextPair> response)
    {
        if (_authMethod is not null)
        {
            return new LoginFailure(LoginStatus.InitiatorError, "AuthMethod negotiated twice (RFC 7143 §6.3)");
        }

        var offered = value.Split(',');
        if (_authRequired)
        {
            if (!offered.Contains(AuthChap, StringComparer.Ordinal))
            {
                return new LoginFailure(LoginStatus.AuthenticationFailure, $"AuthMethod={value} but the target requires CHAP");
            }

            _authMethod = AuthChap;
            _chap = new ChapTargetAuthenticator(_decision!.Chap!, _decision.MutualChap);
            response.Add(new TextPair(NegotiationKeys.AuthMethod, AuthChap));
            return null;
        }

        _authMethod = offered.Contains(AuthNone, StringComparer.Ordinal) ? AuthNone : TextValue.Reject;
        response.Add(new TextPair(NegotiationKeys.AuthMethod, _authMethod));
        return null;
    }

    private Outcome HandleOperational(in LoginRequestInfo request, List<TextPair> security, List<TextPair> operational, List<TextPair> response)
    {
        if (security.Count > 0)
        {
            return Outcome.Fail(LoginStatus.InitiatorError, $"security key {security[0].Key} in the operational stage (RFC 7143 §6.3)");
        }

        if (_authRequired && _chap?.IsComplete != true)
        {
            // §6.3.1: a target that requires security answers a login that skips it with Authentication failure.
            return Outcome.Fail(LoginStatus.AuthenticationFailure, "the target requires CHAP but the security stage was skipped");
        }

        var negotiator = _negotiator!;
        negotiator.DeclareOnce(response);
        var failure = negotiator.Process(operational, response);
        if (failure is not null)
        {
            return Outcome.Fail(failure.Value);
        }

        if (!request.Transit || negotiator.AwaitingAnswers)
        {
            return new Outcome(false, 0, null);
        }

        // §6.3: "Targets MUST NOT submit parameters that require an additional initiator Login
        // Request in a Login Response with the T bit set to 1" — so offers go out with T=0.
        if (negotiator.Originate(response))
        {
            return new Outcome(false, 0, null);
        }

        return new Outcome(true, LoginStage.FullFeaturePhase, null);
    }

    private static string? FirstOperationalKey(List<TextPair> keys)
    {
        foreach (var (key, _) in keys)
        {
            if (NegotiationKeys.TryGet(key, out var def) && def.Category is KeyCategory.Operational or KeyCategory.Obsolete)
            {
                return key;
            }
        }

        return null;
    }

    private LoginReply NextChunk()
    {
        var chunk = _pending!.Next(out bool more).ToArray();
        if (more)
        {
            return new LoginReply { Continue = true, CurrentStage = _pendingFinal!.CurrentStage, Data = chunk };
        }

        var final = _pendingFinal!;
        _pending = null;
        _pendingFinal = null;
        return EmitFinal(final, chunk);
    }

    /// <summary>
    /// The last PDU of a response carries the stage change; the state moves only when it goes out,
    /// so the empty requests that pull a continued response still carry the old CSG.
    /// </summary>
    private LoginReply EmitFinal(LoginReply reply, byte[] data)
    {
        if (reply.Transit)
        {
            _stage = reply.NextStage;
        }

        if (reply.LoginComplete)
        {
            _complete = true;
            _parameters = _negotiator!.Build(_initiatorName, _initiatorAlias, _targetName, _targetAlias,
                _targetName is not null ? _targetPortalGroupTag : null);
        }

        return new LoginReply
        {
            Transit = reply.Transit,
            CurrentStage = reply.CurrentStage,
            NextStage = reply.NextStage,
            LoginComplete = reply.LoginComplete,
            Data = data,
        };
    }

    private LoginReply Reject(ushort status, string reason)
    {
        _failed = true;
        _pending = null;
        _pendingFinal = null;
        // §6.3.1: on a login reject "the T bit and the CSG and NSG fields are reserved".
        return new LoginReply
        {
            StatusClass = LoginStatus.ClassOf(status),
            StatusDetail = LoginStatus.DetailOf(status),
            Failed = true,
            FailureReason = reason,
        };
    }

    private static string? Find(IReadOnlyList<TextPair> pairs, string key)
    {
        foreach (var pair in pairs)
        {
            if (pair.Key == key)
            {
                return pair.Value;
            }
        }

        return null;
    }
}
