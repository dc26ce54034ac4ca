namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>One target on a loopback portal: where it is and which LUN holds the disk.</summary>
internal sealed record TargetEndpoint(string Host, int Port, string Iqn, int Lun)
{
    public string Portal => $"{Host}:{Port}";

    /// <summary>libiscsi / qemu URL: iscsi://[user%secret@]host:port/iqn/lun[?target_user=..&amp;target_password=..].</summary>
    public string Url(string? user = null, string? secret = null, string? query = null)
    {
        string auth = user is null ? "" : $"{Uri.EscapeDataString(user)}%{Uri.EscapeDataString(secret ?? "")}@";
        return $"iscsi://{auth}{Host}:{Port}/{Iqn}/{Lun}" + (query is null ? "" : "?" + query);
    }

    /// <summary>The portal URL iscsi-ls takes (discovery).</summary>
    public string PortalUrl(string? user = null, string? secret = null)
    {
        string auth = user is null ? "" : $"{Uri.EscapeDataString(user)}%{Uri.EscapeDataString(secret ?? "")}@";
        return $"iscsi://{auth}{Host}:{Port}";
    }
}

/// <summary>
/// A target under test with four targets: a plain 128 MiB disk, one that requires CHAP from
/// the initiator, one with mutual CHAP (these two and the thin one accept CRC32C digests), and a 1 GiB thin
/// disk backed by a sparse file in /dev/shm (UNMAP punches holes, unmapped blocks read zeros).
/// Derived fixtures start sluice or tgtd and stop it.
/// </summary>
public abstract class TargetFixture : IAsyncLifetime
{
    public const string InitiatorName = "iqn.2026-11.dev.sluice:test-client";
    public const string ChapUser = "alice";
    public const string ChapSecret = "alice-secret-1";
    public const string MutualUser = "sluice-target";
    public const string MutualSecret = "target-secret-2";
    public const long MainLunBytes = 128L * 1024 * 1024;
    public const long ThinLunBytes = 1L << 30;

    /// <summary>"sluice" or "tgt", for messages.</summary>
    public abstract string Kind { get; }

    /// <summary>When set, every test against this target is skipped with this reason.</summary>
    public string? SkipReason { get; protected set; }

    internal TargetEndpoint Main { get; set; } = new("127.0.0.1", 0, "", 0);
    internal TargetEndpoint Chap { get; set; } = new("127.0.0.1", 0, "", 0);
    internal TargetEndpoint MutualChap { get; set; } = new("127.0.0.1", 0, "", 0);
    internal TargetEndpoint Thin { get; set; } = new("127.0.0.1", 0, "", 0);

    /// <summary>The sparse file behind <see cref="Thin"/>, to measure what the target allocated.</summary>
    public string ThinBackingFile { get; protected set; } = "";

    /// <summary>The server's output so far, for assertion messages.</summary>
    public abstract string ServerLog { get; }

    /// <summary>False when a server process has died: later failures are consequences.</summary>
    public abstract bool IsRunning { get; }

    public abstract Task InitializeAsync();

    public abstract Task DisposeAsync();

    internal static bool Required(string variable) => Environment.GetEnvironmentVariable(variable) == "1";
}
