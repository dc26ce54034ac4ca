using System.Globalization;

namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>
/// tgtd (the Linux SCSI target framework), the reference peer that proves the tests themselves.
/// Two private daemons on free loopback ports, each with its own control port so neither meets
/// a system tgtd: one with the plain target, one with the CHAP and mutual-CHAP targets (so
/// discovery of the plain portal lists nothing that needs credentials, as with sluice).
/// Disks are files in /dev/shm; tgt puts a controller at LUN 0, so the disks are LUN 1. tgt offers
/// HeaderDigest/DataDigest None only unless told: every target here but the main one is set to
/// "CRC32C,None". The
/// thin disk has thin_provisioning=1 (UNMAP punches holes, LBPRZ, GET LBA STATUS from SEEK_DATA).
/// </summary>
public sealed class TgtTargetFixture : TargetFixture
{
    private readonly List<TgtDaemon> _daemons = [];

    public override string Kind => "tgt";

    public override string ServerLog => string.Join("\n---\n", _daemons.Select(d => d.Log));

    public override bool IsRunning => _daemons.Count > 0 && _daemons.All(d => d.IsRunning);

    public override async Task InitializeAsync()
    {
        SkipReason = Tools.Missing("tgtd", "tgtadm");
        if (SkipReason is null && !Tools.IsRoot)
            SkipReason = "tgtd needs root";
        if (SkipReason is not null)
            return;

        var plain = await TgtDaemon.StartAsync();
        _daemons.Add(plain);
        // The main target keeps tgt's default (digests None): MalformedInputTests know how tgt answers there.
        Main = await plain.AddTargetAsync(1, "iqn.2026-11.dev.sluice:interop", MainLunBytes, digests: false);
        Thin = await plain.AddTargetAsync(2, "iqn.2026-11.dev.sluice:interop-thin", ThinLunBytes, thin: true);
        ThinBackingFile = plain.FileOf(2);

        var auth = await TgtDaemon.StartAsync();
        _daemons.Add(auth);
        Chap = await auth.AddTargetAsync(1, "iqn.2026-11.dev.sluice:interop-chap", 8L << 20);
        MutualChap = await auth.AddTargetAsync(2, "iqn.2026-11.dev.sluice:interop-mutual", 8L << 20);
        await auth.Must("--op", "new", "--mode", "account", "--user", ChapUser, "--password", ChapSecret);
        await auth.Must("--op", "new", "--mode", "account", "--user", MutualUser, "--password", MutualSecret);
        await auth.Must("--op", "bind", "--mode", "account", "--tid", "1", "--user", ChapUser);
        await auth.Must("--op", "bind", "--mode", "account", "--tid", "2", "--user", ChapUser);
        await auth.Must("--op", "bind", "--mode", "account", "--tid", "2", "--user", MutualUser, "--outgoing");
    }

    public override async Task DisposeAsync()
    {
        foreach (var d in _daemons)
            await d.DisposeAsync();
        _daemons.Clear();
    }

    private sealed class TgtDaemon : IAsyncDisposable
    {
        private readonly ChildProcess _tgtd;
        private readonly int _control;
        private readonly int _port;
        private readonly List<string> _files = [];
        private readonly List<int> _tids = [];

        private TgtDaemon(ChildProcess tgtd, int control, int port)
        {
            _tgtd = tgtd;
            _control = control;
            _port = port;
        }

        public string Log => $"$ {_tgtd.Command}\n{_tgtd.Tail(40)}";

        public bool IsRunning => !_tgtd.HasExited;

        public static async Task<TgtDaemon> StartAsync()
        {
            int port = Ports.FreeTcpPort();
            int control;
            do
                control = Random.Shared.Next(1000, 31000);
            while (File.Exists($"/var/run/tgtd/socket.{control}"));
            var tgtd = ChildProcess.Start(Tools.Find("tgtd")!, ["-f", "-C", Inv(control), "--iscsi", $"portal=127.0.0.1:{port}"]);
            var daemon = new TgtDaemon(tgtd, control, port);
            if (!await Ports.WaitAcceptingAsync(port, TimeSpan.FromSeconds(15), () => !tgtd.HasExited))
            {
                await daemon.DisposeAsync();
                throw new InvalidOperationException($"tgtd did not start:\n{tgtd.Tail()}");
            }
            for (int i = 0; i < 50 && !(await daemon.Adm("--op", "show", "--mode", "target")).Succeeded; i++)
                await Task.Delay(100);
            return daemon;
        }

        public string FileOf(int tid) => $"/dev/shm/sluice-interop-{_control}-{tid}.img";

        public async Task<TargetEndpoint> AddTargetAsync(int tid, string iqn, long size, bool thin = false, bool digests = true)
        {
            string file = FileOf(tid);
            _files.Add(file);
            await using (var fs = new FileStream(file, FileMode.Create))
                fs.SetLength(size);
            await Must("--op", "new", "--mode", "target", "--tid", Inv(tid), "-T", iqn);
            _tids.Add(tid);
            await Must("--op", "new", "--mode", "logicalunit", "--tid", Inv(tid), "--lun", "1", "-b", file);
            if (thin)
                await Must("--op", "update", "--mode", "logicalunit", "--tid", Inv(tid), "--lun", "1", "--params", "thin_provisioning=1");
            if (digests)
            {
                foreach (string digest in new[] { "HeaderDigest", "DataDigest" })
                    await Must("--op", "update", "--mode", "target", "--tid", Inv(tid), "--name", digest, "--value", "CRC32C,None");
            }
            await Must("--op", "bind", "--mode", "target", "--tid", Inv(tid), "-I", "ALL");
            return new TargetEndpoint("127.0.0.1", _port, iqn, 1);
        }

        private Task<ToolResult> Adm(params string[] args) =>
            ProcessRunner.RunAsync(Tools.Find("tgtadm")!, ["-C", Inv(_control), "--lld", "iscsi", .. args], TimeSpan.FromSeconds(20));

        public async Task Must(params string[] args)
        {
            var r = await Adm(args);
            if (!r.Succeeded)
                throw new InvalidOperationException($"tgtadm failed: {r}");
        }

        public async ValueTask DisposeAsync()
        {
            if (!_tgtd.HasExited)
            {
                // tgtd ignores SIGTERM while it has targets: delete them, then ask it to exit.
                foreach (int tid in _tids)
                    await Adm("--op", "delete", "--mode", "target", "--force", "--tid", Inv(tid));
                await ProcessRunner.RunAsync(Tools.Find("tgtadm")!, ["-C", Inv(_control), "--mode", "system", "--op", "delete"], TimeSpan.FromSeconds(10));
            }
            await _tgtd.DisposeAsync();
            File.Delete($"/var/run/tgtd/socket.{_control}");
            File.Delete($"/var/run/tgtd/socket.{_control}.lock");
            foreach (string f in _files)
                File.Delete(f);
        }
    }

    private static string Inv(int n) => n.ToString(CultureInfo.InvariantCulture);
}
