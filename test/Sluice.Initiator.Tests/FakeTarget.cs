using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Sluice.Iscsi.Pdu;
using Sluice.Offload;

namespace Sluice.Initiator.Tests;

/// <summary>
/// A scriptable iSCSI target on loopback port 0 for protocol edge cases (after Npgsql's
/// PgPostmasterMock): it accepts every login, answering each offered key with the value the
/// test chose, then hands each connection to the test's script.
/// </summary>
internal sealed class FakeTarget : IAsyncDisposable
{
    public const string TargetName = "iqn.2026-11.dev.sluice:fake";

    private readonly TcpListener _listener;
    private readonly Func<FakeConnection, int, Task> _script;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _connections = [];
    private readonly Task _accept;
    private int _count;

    public FakeTarget(Func<FakeConnection, int, Task> script, Action<Dictionary<string, string>>? keys = null, uint window = 32)
    {
        _script = script;
        Keys = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["MaxRecvDataSegmentLength"] = "262144",
        };
        keys?.Invoke(Keys);
        Window = window;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accept = AcceptLoopAsync();
    }

    /// <summary>Overrides of our answers to the initiator's offers, and our declarations.</summary>
    public Dictionary<string, string> Keys { get; }

    /// <summary>MaxCmdSN - ExpCmdSN + 1 granted at login.</summary>
    public uint Window { get; }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public IscsiUrl Url => new() { Host = "127.0.0.1", Port = Port, Target = TargetName, Lun = 0 };

    public List<Exception> Errors { get; } = [];

    /// <summary>Login requests' ISID and TSIH, per connection.</summary>
    public List<(ulong Isid, ushort Tsih)> Logins { get; } = [];

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                int index = _count++;
                _connections.Add(Task.Run(async () =>
                {
                    await using var conn = new FakeConnection(new PduTransport(socket), this);
                    try
                    {
                        await conn.LoginAsync();
                        await _script(conn, index);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        lock (Errors)
                        {
                            Errors.Add(e);
                        }
                    }
                }));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // Stopped: the listener may be stopped between two accepts ("Not listening").
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accept;
        await Task.WhenAll(_connections).WaitAsync(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }
}

internal sealed class FakeConnection(PduTransport transport, FakeTarget target) : IAsyncDisposable
{
    public PduTransport Transport { get; } = transport;

    public uint StatSN { get; set; } = 100;

    public uint ExpCmdSN { get; set; }

    public uint MaxCmdSN { get; set; }

    public List<string> InitiatorKeys { get; } = [];

    public async Task LoginAsync()
    {
        while (true)
        {
            var (h, data) = await ReceiveAsync();
            Assert.Equal(Opcode.LoginRequest, h.Opcode);
            var isid = (ulong)BinaryPrimitives.ReadUInt16BigEndian(h.Bytes[8..]) << 32 | BinaryPrimitives.ReadUInt32BigEndian(h.Bytes[10..]);
            if (InitiatorKeys.Count == 0)
            {
                lock (target.Logins)
                {
                    target.Logins.Add((isid, h.U16(14)));
                }
            }

            ExpCmdSN = h.CmdSN;
            MaxCmdSN = ExpCmdSN + target.Window - 1;
            bool transit = (h.Flags & 0x80) != 0;
            int csg = (h.Flags >> 2) & 3;
            int nsg = h.Flags & 3;
            var reply = new StringBuilder();
            foreach (var pair in Encoding.UTF8.GetString(data).Split('\0', StringSplitOptions.RemoveEmptyEntries))
            {
                InitiatorKeys.Add(pair);
                int eq = pair.IndexOf('=', StringComparison.Ordinal);
                var key = pair[..eq];
                var value = pair[(eq + 1)..];
                if (key is "InitiatorName" or "TargetName" or "SessionType" or "InitiatorAlias" or "MaxRecvDataSegmentLength")
                {
                    continue;
                }

                if (key == "AuthMethod")
                {
                    value = "None";
                }

                reply.Append(key).Append('=').Append(target.Keys.GetValueOrDefault(key, value)).Append('\0');
            }

            if (csg == 1 && !InitiatorKeys.Contains("X-declared"))
            {
                InitiatorKeys.Add("X-declared");
                reply.Append("MaxRecvDataSegmentLength=").Append(target.Keys["MaxRecvDataSegmentLength"]).Append('\0');
            }

            var r = default(Bhs);
            r.Opcode = Opcode.LoginResponse;
            r.Flags = (byte)((transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0));
            h.Bytes[8..14].CopyTo(r.Bytes[8..14]);
            bool done = transit && nsg == 3;
            r.SetU16(14, (ushort)(done ? 7 : 0));
            r.InitiatorTaskTag = h.InitiatorTaskTag;
            r.StatSN = StatSN++;
            r.ExpCmdSN = ExpCmdSN;
            r.MaxCmdSN = MaxCmdSN;
            await Transport.SendAsync(r, Encoding.UTF8.GetBytes(reply.ToString()));
            if (done)
            {
                Transport.MaxReceiveDataSegmentLength = 16 << 20;
                return;
            }
        }
    }

    public async Task<(Bhs Header, byte[] Data)> ReceiveAsync()
    {
        if (!await Transport.ReceiveHeaderAsync())
        {
            throw new EndOfStreamException("initiator closed the connection");
        }

        var h = Transport.Header;
        var data = new byte[h.DataSegmentLength];
        await Transport.ReceiveDataAsync(data);
        return (h, data);
    }

    /// <summary>Receives the next PDU that is not a NOP-Out.</summary>
    public async Task<(Bhs Header, byte[] Data)> ReceiveCommandAsync()
    {
        while (true)
        {
            var (h, d) = await ReceiveAsync();
            if (h.Opcode == Opcode.ScsiCommand && !h.Immediate)
            {
                ExpCmdSN = h.CmdSN + 1;
            }

            if (h.Opcode != Opcode.NopOut)
            {
                return (h, d);
            }

            if (h.InitiatorTaskTag != 0xFFFFFFFF)
            {
                var r = Response(Opcode.NopIn, h.InitiatorTaskTag);
                r.TargetTransferTag = 0xFFFFFFFF;
                await Transport.SendAsync(r, ReadOnlyMemory<byte>.Empty);
            }
        }
    }

    public Bhs Response(Opcode opcode, uint itt, bool statSN = true)
    {
        var r = default(Bhs);
        r.Opcode = opcode;
        r.Final = true;
        r.InitiatorTaskTag = itt;
        r.StatSN = statSN ? StatSN++ : StatSN;
        r.ExpCmdSN = ExpCmdSN;
        r.MaxCmdSN = MaxCmdSN;
        return r;
    }

    public Task SendDataInAsync(uint itt, int offset, ReadOnlyMemory<byte> data, uint dataSN, bool status, byte scsiStatus = 0, uint residual = 0, bool underflow = false)
    {
        var r = Response(Opcode.DataIn, itt, status);
        r.Flags = (byte)((status ? 0x81 : 0) | (underflow ? 0x02 : 0));
        r.SetByte(3, status ? scsiStatus : (byte)0);
        r.TargetTransferTag = 0xFFFFFFFF;
        r.DataSN = dataSN;
        r.BufferOffset = (uint)offset;
        r.ResidualCount = residual;
        return Transport.SendAsync(r, data).AsTask();
    }

    public Task SendStatusAsync(uint itt, byte status, byte[]? sense = null, uint residual = 0, bool underflow = false)
    {
        var r = Response(Opcode.ScsiResponse, itt);
        r.Flags = (byte)(0x80 | (underflow ? 0x02 : 0));
        r.SetByte(3, status);
        r.ResidualCount = residual;
        byte[] data = [];
        if (sense is not null)
        {
            data = new byte[2 + sense.Length];
            BinaryPrimitives.WriteUInt16BigEndian(data, (ushort)sense.Length);
            sense.CopyTo(data, 2);
        }

        return Transport.SendAsync(r, data).AsTask();
    }

    public Task SendR2TAsync(uint itt, uint ttt, int offset, int length, uint r2tsn)
    {
        var r = Response(Opcode.ReadyToTransfer, itt, statSN: false);
        r.TargetTransferTag = ttt;
        r.DataSN = r2tsn;
        r.BufferOffset = (uint)offset;
        r.ResidualCount = (uint)length;
        return Transport.SendAsync(r, ReadOnlyMemory<byte>.Empty).AsTask();
    }

    public static byte[] FixedSense(byte key, byte asc, byte ascq)
    {
        var s = new byte[18];
        s[0] = 0x70;
        s[2] = key;
        s[7] = 10;
        s[12] = asc;
        s[13] = ascq;
        return s;
    }

    public ValueTask DisposeAsync() => Transport.DisposeAsync();
}
