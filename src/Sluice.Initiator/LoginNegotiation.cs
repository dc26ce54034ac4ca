using System.Globalization;
using System.Text;
using Sluice.Iscsi.Chap;
using Sluice.Iscsi.Login;
using Sluice.Iscsi.Pdu;
using Sluice.Iscsi.Text;
using Sluice.Offload;

namespace Sluice.Initiator;

/// <summary>Where a redirecting target (status 0x0101/0x0102) sent us.</summary>
internal sealed class LoginRedirectException(string host, int port, bool permanent)
    : Exception($"login redirected to {host}:{port}")
{
    public string Host { get; } = host;
    public int Port { get; } = port;
    public bool Permanent { get; } = permanent;
}

/// <summary>What a successful login hands to the session.</summary>
internal sealed record LoginOutcome(SessionParameters Parameters, ushort Tsih, uint ExpCmdSN, uint MaxCmdSN, uint ExpStatSN);

/// <summary>
/// Initiator side of the login phase (RFC 7143 §6.3, §11.12, §11.13): SecurityNegotiation with
/// CHAP (one-way or mutual) or None, then LoginOperationalNegotiation, then Full Feature Phase.
/// The target may answer with T=0 (we send another request), or with C=1 (we pull the rest of its
/// text with empty requests). Stopgap until Sluice.Iscsi has an InitiatorNegotiator: it is small
/// and private on purpose.
/// </summary>
internal sealed class LoginNegotiation
{
    private const int MaxExchanges = 32;

    private readonly PduTransport _transport;
    private readonly IscsiClientOptions _options;
    private readonly string? _targetName;
    private readonly ulong _isid;
    private readonly ushort _tsih;
    private readonly ChapSecret? _chap;
    private readonly ChapSecret? _mutual;
    private readonly Dictionary<string, string> _answers = new(StringComparer.Ordinal);
    private uint _cmdSN;
    private uint _expStatSN;
    private ushort _tsihFromTarget;
    private uint _expCmdSN;
    private uint _maxCmdSN;
    private readonly uint _itt;

    public LoginNegotiation(PduTransport transport, IscsiClientOptions options, string? targetName, ulong isid, ushort tsih, string? chapUser, string? chapSecret, uint cmdSN)
    {
        _transport = transport;
        _options = options;
        _targetName = targetName;
        _isid = isid;
        _tsih = tsih;
        _cmdSN = cmdSN;
        _itt = 0x4C4F4749; // any tag works during login; "LOGI" reads well in a trace
        if (chapUser is not null)
        {
            if (string.IsNullOrEmpty(chapSecret))
            {
                throw new LoginException(0, 0, $"CHAP user '{chapUser}' has no secret");
            }

            _chap = new ChapSecret(chapUser, chapSecret);
        }

        if (options.TargetChapUser is not null || options.TargetChapSecret is not null)
        {
            if (_chap is null)
            {
                throw new LoginException(0, 0, "mutual CHAP needs an initiator CHAP user and secret");
            }

            _mutual = new ChapSecret(options.TargetChapUser ?? "", options.TargetChapSecret ?? "");
        }
    }

    private bool Discovery => _targetName is null;

    public async Task<LoginOutcome> RunAsync(CancellationToken ct)
    {
        var first = new List<TextPair>
        {
            new("InitiatorName", _options.InitiatorName),
        };
        if (_options.InitiatorAlias is not null)
        {
            first.Add(new TextPair("InitiatorAlias", _options.InitiatorAlias));
        }

        if (Discovery)
        {
            first.Add(new TextPair("SessionType", "Discovery"));
        }
        else
        {
            first.Add(new TextPair("TargetName", _targetName!));
            first.Add(new TextPair("SessionType", "Normal"));
        }

        await SecurityAsync(first, ct).ConfigureAwait(false);
        await OperationalAsync(ct).ConfigureAwait(false);
        return new LoginOutcome(BuildParameters(), _tsihFromTarget, _expCmdSN, _maxCmdSN, _expStatSN);
    }

    private async Task SecurityAsync(List<TextPair> first, CancellationToken ct)
    {
        if (_chap is null)
        {
            first.Add(new TextPair("AuthMethod", "None"));
            var (transit, pairs) = await ExchangeAsync(LoginStage.SecurityNegotiation, LoginStage.OperationalNegotiation, true, first, ct).ConfigureAwait(false);
            int guard = 0;
            while (true)
            {
                if (Get(pairs, "AuthMethod") is { } method && method != "None")
                {
                    throw new LoginException(0, 0, $"target requires authentication (AuthMethod={method}); give a CHAP user and secret");
                }

                if (transit)
                {
                    return;
                }

                if (++guard > MaxExchanges)
                {
                    throw new LoginException(0, 0, "target never ended the security stage");
                }

                (transit, pairs) = await ExchangeAsync(LoginStage.SecurityNegotiation, LoginStage.OperationalNegotiation, true, [], ct).ConfigureAwait(false);
            }
        }

        first.Add(new TextPair("AuthMethod", "CHAP,None"));
        var (t1, r1) = await ExchangeAsync(LoginStage.SecurityNegotiation, LoginStage.OperationalNegotiation, false, first, ct).ConfigureAwait(false);
        var chosen = Get(r1, "AuthMethod");
        if (chosen == "None" || (chosen is null && t1))
        {
            // The target needs no authentication; we asked for CHAP only to prove ourselves, which is fine to skip.
            if (_mutual is not null)
            {
                throw new LoginException(0, 0, "target declined CHAP, so it cannot prove its identity (mutual CHAP)");
            }

            if (!t1)
            {
                await FinishStageAsync(LoginStage.SecurityNegotiation, LoginStage.OperationalNegotiation, ct).ConfigureAwait(false);
            }

            return;
        }

        if (chosen != "CHAP")
        {
            throw new LoginException(0, 0, $"target chose AuthMethod={chosen ?? "(none)"}; only CHAP is supported");
        }

        var (_, r2) = await ExchangeAsync(LoginStage.SecurityNegotiation, LoginStage.OperationalNegotiation, false,
            [new TextPair("CHAP_A", ChapInitiator.AlgorithmOffer)], ct).ConfigureAwait(false);
        var chap = new ChapInitiator(_chap, _mutual);
        if (!chap.TryRespond(Get(r2, "CHAP_A"), Get(r2, "CHAP_I"), Get(r2, "CHAP_C"), out var reply))
        {
            throw new LoginException(0, 0, "target sent an unusable CHAP challenge (only CHAP_A=5, MD5, is supported)");
        }

        var (t3, r3) = await ExchangeAsync(LoginStage.SecurityNegotiation, LoginStage.OperationalNegotiation, true, [.. reply], ct).ConfigureAwait(false);
        if (_mutual is not null && !chap.VerifyTarget(Get(r3, "CHAP_N"), Get(r3, "CHAP_R")))
        {
            throw new LoginException(0, 0, "mutual CHAP: the target's answer (CHAP_N/CHAP_R) is wrong");
        }

        if (!t3)
        {
            await FinishStageAsync(LoginStage.SecurityNegotiation, LoginStage.OperationalNegotiation, ct).ConfigureAwait(false);
        }
    }

    private async Task FinishStageAsync(int csg, int nsg, CancellationToken ct)
    {
        for (int i = 0; i < MaxExchanges; i++)
        {
            var (transit, _) = await ExchangeAsync(csg, nsg, true, [], ct).ConfigureAwait(false);
            if (transit)
            {
                return;
            }
        }

        throw new LoginException(0, 0, "target never agreed to leave the login stage");
    }

    private async Task OperationalAsync(CancellationToken ct)
    {
        var offer = new List<TextPair>
        {
            new("HeaderDigest", "None"),
            new("DataDigest", "None"),
            new("MaxRecvDataSegmentLength", Num(_options.MaxRecvDataSegmentLength)),
        };
        if (!Discovery)
        {
            offer.AddRange(
            [
                new("MaxConnections", "1"),
                new("InitialR2T", _options.InitialR2T ? "Yes" : "No"),
                new("ImmediateData", _options.ImmediateData ? "Yes" : "No"),
                new("MaxBurstLength", Num(_options.MaxBurstLength)),
                new("FirstBurstLength", Num(Math.Min(_options.FirstBurstLength, _options.MaxBurstLength))),
                new("DefaultTime2Wait", "2"),
                new("DefaultTime2Retain", "0"),
                new("MaxOutstandingR2T", "1"),
                new("DataPDUInOrder", "Yes"),
                new("DataSequenceInOrder", "Yes"),
                new("ErrorRecoveryLevel", "0"),
            ]);
        }

        var offered = new HashSet<string>(offer.Select(p => p.Key), StringComparer.Ordinal);
        var toSend = offer;
        for (int i = 0; i < MaxExchanges; i++)
        {
            var (transit, pairs) = await ExchangeAsync(LoginStage.OperationalNegotiation, LoginStage.FullFeaturePhase, true, toSend, ct).ConfigureAwait(false);
            toSend = [];
            foreach (var p in pairs)
            {
                if (!offered.Contains(p.Key) && AnswerTargetOffer(p) is { } answer)
                {
                    toSend.Add(answer);
                }
            }

            if (transit)
            {
                return;
            }
        }

        throw new LoginException(0, 0, "operational negotiation did not converge");
    }

    /// <summary>A key the target offered on its own (§6.2): answer with our value, or NotUnderstood.</summary>
    private TextPair? AnswerTargetOffer(TextPair p)
    {
        switch (p.Key)
        {
            case "TargetAlias":
            case "TargetAddress":
            case "TargetPortalGroupTag":
            case "MaxRecvDataSegmentLength":
            case "TargetName":
                return null; // declarative
            case "HeaderDigest":
            case "DataDigest":
                return new TextPair(p.Key, "None");
            case "InitialR2T":
                return new TextPair(p.Key, _options.InitialR2T ? "Yes" : p.Value);
            case "ImmediateData":
                return new TextPair(p.Key, _options.ImmediateData ? p.Value : "No");
            case "MaxBurstLength":
            case "FirstBurstLength":
            case "MaxOutstandingR2T":
            case "DefaultTime2Retain":
            case "ErrorRecoveryLevel":
            case "MaxConnections":
                return new TextPair(p.Key, p.Key switch
                {
                    "MaxBurstLength" => Num(Math.Min(ParseInt(p.Value, _options.MaxBurstLength), _options.MaxBurstLength)),
                    "FirstBurstLength" => Num(Math.Min(ParseInt(p.Value, _options.FirstBurstLength), _options.FirstBurstLength)),
                    "DefaultTime2Retain" => "0",
                    _ => Num(Math.Min(ParseInt(p.Value, 1), p.Key == "ErrorRecoveryLevel" ? 0 : 1)),
                });
            case "DefaultTime2Wait":
                return new TextPair(p.Key, p.Value);
            case "DataPDUInOrder":
            case "DataSequenceInOrder":
                return new TextPair(p.Key, "Yes");
            default:
                return p.Value is "NotUnderstood" or "Irrelevant" or "Reject" ? null : new TextPair(p.Key, "NotUnderstood");
        }
    }

    private void Record(IReadOnlyList<TextPair> pairs)
    {
        foreach (var p in pairs)
        {
            _answers[p.Key] = p.Value;
        }
    }

    private SessionParameters BuildParameters()
    {
        bool? Answer(string key) => _answers.TryGetValue(key, out var v) && v is "Yes" or "No" ? v == "Yes" : null;

        int Minimum(string key, int ours, int fallback)
        {
            if (!_answers.TryGetValue(key, out var v) || !TryParseInt(v, out int theirs))
            {
                return fallback;
            }

            return Math.Min(ours, theirs);
        }

        int maxBurst = Minimum("MaxBurstLength", _options.MaxBurstLength, SessionParameters.DefaultMaxBurstLength);
        int firstBurst = Math.Min(Minimum("FirstBurstLength", _options.FirstBurstLength, SessionParameters.DefaultFirstBurstLength), maxBurst);
        int targetMrdsl = _answers.TryGetValue("MaxRecvDataSegmentLength", out var mr) && TryParseInt(mr, out int m) && m >= 512
            ? m : SessionParameters.DefaultMaxRecvDataSegmentLength;
        return new SessionParameters
        {
            SessionType = Discovery ? SessionType.Discovery : SessionType.Normal,
            InitiatorName = _options.InitiatorName,
            InitiatorAlias = _options.InitiatorAlias,
            TargetName = _targetName,
            TargetAlias = _answers.GetValueOrDefault("TargetAlias"),
            TargetPortalGroupTag = _answers.TryGetValue("TargetPortalGroupTag", out var tpgt) && TryParseInt(tpgt, out int tag) ? (ushort)tag : null,
            // §13.10 InitialR2T is OR, §13.11 ImmediateData is AND; an unanswered key gets the safe value.
            InitialR2T = Answer("InitialR2T") is bool ir2t ? _options.InitialR2T || ir2t : true,
            ImmediateData = Answer("ImmediateData") is bool imm && _options.ImmediateData && imm,
            MaxBurstLength = maxBurst,
            FirstBurstLength = firstBurst,
            MaxOutstandingR2T = Minimum("MaxOutstandingR2T", 1, 1),
            InitiatorMaxRecvDataSegmentLength = _options.MaxRecvDataSegmentLength,
            TargetMaxRecvDataSegmentLength = targetMrdsl,
            ErrorRecoveryLevel = 0,
            DefaultTime2Wait = Minimum("DefaultTime2Wait", 3600, 2),
            DefaultTime2Retain = Minimum("DefaultTime2Retain", 0, 20),
        };
    }

    /// <summary>
    /// Sends one Login Request with <paramref name="pairs"/> and returns the target's complete
    /// answer, pulling C=1 continuations with empty requests (§11.13.2). A non-success status
    /// throws (redirects throw <see cref="LoginRedirectException"/>).
    /// </summary>
    private async Task<(bool Transit, IReadOnlyList<TextPair> Pairs)> ExchangeAsync(int csg, int nsg, bool transit, List<TextPair> pairs, CancellationToken ct)
    {
        var data = TextCodec.Encode(pairs);
        var accumulator = new TextAccumulator();
        while (true)
        {
            await SendLoginAsync(csg, nsg, transit, data, ct).ConfigureAwait(false);
            data = [];
            if (!await _transport.ReceiveHeaderAsync(ct).ConfigureAwait(false))
            {
                throw new LoginException(0, 0, "target closed the connection during login");
            }

            var h = _transport.Header;
            var payload = new byte[h.DataSegmentLength];
            await _transport.ReceiveDataAsync(payload, ct).ConfigureAwait(false);
            if (h.Opcode == Opcode.Reject)
            {
                throw new LoginException(0, 0, $"target rejected the login request (reason 0x{PduFields.RejectReasonCode(h):x2})");
            }

            if (h.Opcode != Opcode.LoginResponse)
            {
                throw new LoginException(0, 0, $"unexpected {h.Opcode} during login");
            }

            byte sc = PduFields.StatusClass(h);
            byte sd = PduFields.StatusDetail(h);
            _expStatSN = h.StatSN + 1;
            _expCmdSN = h.ExpCmdSN;
            _maxCmdSN = h.MaxCmdSN;
            if (sc != LoginStatus.ClassSuccess)
            {
                var text = TextCodec.TryParse(payload, true, out var rp, out _) ? rp : [];
                if (sc == LoginStatus.ClassRedirection && Get(text, "TargetAddress") is { } address &&
                    IscsiDiscovery.TryParseAddress(address, out var host, out int port, out _))
                {
                    throw new LoginRedirectException(host, port, sd == 2);
                }

                throw new LoginException(sc, sd, "");
            }

            if (PduFields.CurrentStage(h) != csg)
            {
                throw new LoginException(0, 0, $"target answered stage {PduFields.CurrentStage(h)} to a stage {csg} request");
            }

            bool more = PduFields.Continue(h);
            var result = accumulator.Append(payload, final: !more);
            if (result == TextAccumulatorResult.Failed)
            {
                throw new LoginException(0, 0, $"malformed login text from target ({accumulator.Error})");
            }

            if (result == TextAccumulatorResult.NeedMore)
            {
                // §11.13.2: while C=1 the initiator answers with empty requests, T=0.
                transit = false;
                continue;
            }

            bool t = PduFields.Transit(h);
            if (t)
            {
                if (PduFields.NextStage(h) == LoginStage.FullFeaturePhase)
                {
                    _tsihFromTarget = PduFields.Tsih(h);
                }
            }

            Record(accumulator.Pairs);
            return (t, accumulator.Pairs);
        }
    }

    private async Task SendLoginAsync(int csg, int nsg, bool transit, byte[] data, CancellationToken ct)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.LoginRequest;
        h.Immediate = true;
        h.Flags = (byte)((transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0));
        PduFields.SetIsid(ref h, _isid);
        PduFields.SetTsih(ref h, _tsih);
        h.InitiatorTaskTag = _itt;
        h.CmdSN = _cmdSN;
        h.ExpStatSN = _expStatSN;
        await _transport.SendAsync(h, data, ct).ConfigureAwait(false);
    }

    private static string? Get(IReadOnlyList<TextPair> pairs, string key)
    {
        foreach (var p in pairs)
        {
            if (p.Key == key)
            {
                return p.Value;
            }
        }

        return null;
    }

    private static string Num(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static bool TryParseInt(string value, out int result) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out result);

    private static int ParseInt(string value, int fallback) => TryParseInt(value, out int v) ? v : fallback;

    internal static string Describe(IReadOnlyList<TextPair> pairs)
    {
        var sb = new StringBuilder();
        foreach (var p in pairs)
        {
            sb.Append(p.Key).Append('=').Append(p.Key.StartsWith("CHAP_", StringComparison.Ordinal) ? "…" : p.Value).Append(' ');
        }

        return sb.ToString();
    }
}
