namespace Sluice.Initiator;

/// <summary>Digest preference for HeaderDigest / DataDigest (RFC 7143 §13.1).</summary>
public enum DigestPreference
{
    /// <summary>No digest.</summary>
    None,
    /// <summary>Offer CRC32C first, accept None (RFC 7143 §13.1).</summary>
    Crc32C,
}

/// <summary>Settings of an initiator session. Every limit has a name and a default (DESIGN.md).</summary>
public sealed record IscsiClientOptions
{
    /// <summary>Default initiator IQN.</summary>
    public const string DefaultInitiatorName = "iqn.2026-11.dev.sluice:initiator";

    /// <summary>InitiatorName sent at login (RFC 7143 §13.5).</summary>
    public string InitiatorName { get; init; } = DefaultInitiatorName;

    /// <summary>InitiatorAlias sent at login, if any.</summary>
    public string? InitiatorAlias { get; init; }

    /// <summary>CHAP user (CHAP_N). When null the URL's user is used; when both are null no authentication is offered.</summary>
    public string? ChapUser { get; init; }

    /// <summary>CHAP secret. When null the URL's secret is used.</summary>
    public string? ChapSecret { get; init; }

    /// <summary>Mutual CHAP: the name the target must answer with.</summary>
    public string? TargetChapUser { get; init; }

    /// <summary>Mutual CHAP: the secret the target must prove it knows.</summary>
    public string? TargetChapSecret { get; init; }

    /// <summary>HeaderDigest preference.</summary>
    public DigestPreference HeaderDigest { get; init; } = DigestPreference.None;

    /// <summary>DataDigest preference.</summary>
    public DigestPreference DataDigest { get; init; } = DigestPreference.None;

    /// <summary>Per-byte engine: the fastest CRC32C kernel with direct placement, or staged copies and table CRC.</summary>
    public Sluice.Offload.OffloadMode Offload { get; init; } = Sluice.Offload.OffloadMode.Auto;

    /// <summary>TCP connect plus the whole login exchange.</summary>
    public TimeSpan LoginTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Limit on one SCSI command from submission to status; <see cref="Timeout.InfiniteTimeSpan"/> disables it.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>An idle connection is pinged with NOP-Out this often; zero disables pings.</summary>
    public TimeSpan NopInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A ping not answered within this time declares the connection dead.</summary>
    public TimeSpan NopTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>MaxRecvDataSegmentLength we declare: the largest Data-In segment we accept (RFC 7143 §13.12).</summary>
    public int MaxRecvDataSegmentLength { get; init; } = 256 * 1024;

    /// <summary>MaxBurstLength we offer (RFC 7143 §13.13).</summary>
    public int MaxBurstLength { get; init; } = 16 * 1024 * 1024 - 1024;

    /// <summary>FirstBurstLength we offer (RFC 7143 §13.14).</summary>
    public int FirstBurstLength { get; init; } = 256 * 1024;

    /// <summary>InitialR2T we offer; false lets writes send unsolicited data (RFC 7143 §13.10).</summary>
    public bool InitialR2T { get; init; }

    /// <summary>ImmediateData we offer (RFC 7143 §13.11).</summary>
    public bool ImmediateData { get; init; } = true;

    /// <summary>Largest number of commands outstanding in the session; more wait for a slot.</summary>
    public int QueueDepth { get; init; } = 128;

    /// <summary>
    /// Run the continuation of a command that completes normally on the connection's receive
    /// loop instead of the thread pool: one thread hop less per command, as a C initiator's
    /// callbacks run in its event loop (libiscsi). The awaiting code must not block (no
    /// <c>.Result</c>, no synchronous I/O) and should not do long work, because the next PDU of
    /// the session waits for it. Failures still complete on the thread pool.
    /// </summary>
    public bool InlineCompletions { get; init; }

    /// <summary>Reconnect attempts (session reinstatement) after the connection fails; zero disables recovery.</summary>
    public int ReconnectAttempts { get; init; } = 5;

    /// <summary>Pause between reconnect attempts.</summary>
    public TimeSpan ReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Clock for timeouts and pings.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(InitiatorName);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRecvDataSegmentLength, 512);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxRecvDataSegmentLength, (1 << 24) - 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBurstLength, 512);
        ArgumentOutOfRangeException.ThrowIfLessThan(FirstBurstLength, 512);
        ArgumentOutOfRangeException.ThrowIfLessThan(QueueDepth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(QueueDepth, 4096);
        ArgumentOutOfRangeException.ThrowIfNegative(ReconnectAttempts);
    }
}
