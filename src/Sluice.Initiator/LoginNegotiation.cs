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
/// text with empty requests). Key negotiation is <see cref="InitiatorNegotiator"/>'s; this class
/// drives the PDU exchange, the stages and CHAP.
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
    private readonly InitiatorNegotiator _negotiator;
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
        _negotiator = new InitiatorNegotiator(new InitiatorNegotiationSettings
        {
            InitiatorName = options.InitiatorName,
            InitiatorAlias = options.InitiatorAlias,
            TargetName = targetName,
            SessionType = targetName is null ? SessionType.Discovery : SessionType.Normal,
            MaxRecvDataSegmentLength = options.MaxRecvDataSegmentLength,
            MaxBurstLength = options.MaxBurstLength,
            FirstBurstLength = Math.Min(options.FirstBurstLength, options.MaxBurstLength),
            InitialR2T = options.InitialR2T,
            ImmediateData = options.ImmediateData,
            MaxOutstandingR2T = 1,
            DefaultTime2Wait = 2,
            DefaultTime2Retain = 0,
            MaxConnections = 1,
            ErrorRecoveryLevel = 0,
            HeaderDigestCrc32C = options.HeaderDigest == DigestPreference.Crc32C,
            DataDigestCrc32C = options.DataDigest == DigestPreference.Crc32C,
        });
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
        var first = new List<TextPair>(_negotiator.CreateLoginKeys());
        await SecurityAsync(first, ct).ConfigureAwait(false);
        await OperationalAsync(ct).ConfigureAwait(false);
        return new LoginOutcome(_negotiator.BuildParameters(), _tsihFromTarget, _expCmdSN, _maxCmdSN, _expStatSN);
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
        var toSend = new List<TextPair>(_negotiator.CreateOperationalOffer());
        for (int i = 0; i < MaxExchanges; i++)
        {
            var (transit, pairs) = await ExchangeAsync(LoginStage.OperationalNegotiation, LoginStage.FullFeaturePhase, true, toSend, ct).ConfigureAwait(false);
            toSend = [];
            if (!_negotiator.TryApplyResponse(pairs, toSend, out var error))
            {
                throw new LoginException(0, 0, error ?? "negotiation failed");
            }

            if (transit)
            {
                return;
            }
        }

        throw new LoginException(0, 0, "operational negotiation did not converge");
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
}
