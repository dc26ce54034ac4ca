using System.Net;
using System.Net.Sockets;
using System.Text;
using Sluice.Iscsi.Pdu;
using Sluice.Offload;

namespace Sluice.Target.Tests;

/// <summary>
/// A deliberately small, scriptable iSCSI initiator for target tests: it builds PDUs by hand so
/// tests can send exactly what they mean, including what a real initiator never would.
/// </summary>
internal sealed class RawInitiator : IAsyncDisposable
{
    private readonly Socket _socket;
    private uint _cmdSN = 1;
    private uint _expStatSN;
    private uint _itt = 1;

    private RawInitiator(Socket socket)
    {
        _socket = socket;
        Transport = new PduTransport(socket) { MaxReceiveDataSegmentLength = 1 << 20 };
    }

    public PduTransport Transport { get; }

    public ulong Isid { get; set; } = 0x400001370000;

    public ushort Tsih { get; private set; }

    /// <summary>Offer HeaderDigest and DataDigest = CRC32C and turn them on after login.</summary>
    public bool Digests { get; set; }

    /// <summary>The ErrorRecoveryLevel offered at login (the target answers the lower of its maximum and this).</summary>
    public int ErrorRecoveryLevel { get; set; }

    /// <summary>Our MaxRecvDataSegmentLength: the largest Data-In segment the target may send.</summary>
    public int MaxRecvDataSegmentLength { get; set; } = 262144;

    /// <summary>The next CmdSN this initiator will use.</summary>
    public uint CmdSN => _cmdSN;

    /// <summary>The ExpStatSN this initiator sends.</summary>
    public uint ExpStatSN => _expStatSN;

    public static async Task<RawInitiator> ConnectAsync(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endpoint);
        return new RawInitiator(socket);
    }

    /// <summary>One Login Request from security straight to full feature with AuthMethod=None; returns status.</summary>
    public async Task<(byte Class, byte Detail, Dictionary<string, string> Keys)> LoginAsync(string initiator, string? target, bool discovery = false, ushort tsih = 0)
    {
        var keys = new StringBuilder();
        keys.Append("InitiatorName=").Append(initiator).Append('\0');
        keys.Append("SessionType=").Append(discovery ? "Discovery" : "Normal").Append('\0');
        if (target is not null)
        {
            keys.Append("TargetName=").Append(target).Append('\0');
        }

        keys.Append("AuthMethod=None\0");
        var (cls, detail, reply) = await LoginStepAsync(csg: 0, nsg: 1, keys.ToString(), tsih);
        if (cls != 0)
        {
            return (cls, detail, reply);
        }

        string digest = Digests ? "CRC32C" : "None";
        var op = $"HeaderDigest={digest}\0DataDigest={digest}\0MaxRecvDataSegmentLength={MaxRecvDataSegmentLength}\0InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=1048576\0FirstBurstLength=65536\0ErrorRecoveryLevel={ErrorRecoveryLevel}\0";
        for (int round = 0; round < 4; round++)
        {
            var (c2, d2, r2) = await LoginStepAsync(csg: 1, nsg: 3, round == 0 ? op : "", tsih);
            foreach (var kv in r2)
            {
                reply[kv.Key] = kv.Value;
            }

            if (c2 != 0 || LastTransit)
            {
                if (c2 == 0)
                {
                    NegotiatedErl = reply.GetValueOrDefault("ErrorRecoveryLevel");
                    Transport.HeaderDigest = reply.GetValueOrDefault("HeaderDigest") == "CRC32C";
                    Transport.DataDigest = reply.GetValueOrDefault("DataDigest") == "CRC32C";
                }

                return (c2, d2, reply);
            }
        }

        throw new InvalidOperationException("target never agreed to enter full-feature phase");
    }

    public bool LastTransit { get; private set; }

    /// <summary>The ErrorRecoveryLevel the target answered at login.</summary>
    public string? NegotiatedErl { get; private set; }

    private async Task<(byte, byte, Dictionary<string, string>)> LoginStepAsync(int csg, int nsg, string text, ushort tsih)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.LoginRequest;
        h.Immediate = true;
        h.Flags = (byte)(0x80 | (csg << 2) | nsg);
        for (int i = 0; i < 6; i++)
        {
            h.SetByte(8 + i, (byte)(Isid >> (40 - (8 * i))));
        }

        h.SetU16(14, tsih);
        h.InitiatorTaskTag = _itt;
        h.CmdSN = _cmdSN;
        h.ExpStatSN = _expStatSN;
        await Transport.SendAsync(h, Encoding.UTF8.GetBytes(text));
        var r = await ReceiveAsync();
        Assert.Equal(Opcode.LoginResponse, r.Header.Opcode);
        _expStatSN = r.Header.StatSN + 1;
        LastTransit = (r.Header.Flags & 0x80) != 0 && (r.Header.Flags & 3) == 3;
        if (LastTransit)
        {
            Tsih = r.Header.U16(14);
        }

        return (r.Header[36], r.Header[37], ParseKeys(r.Data));
    }

    public static Dictionary<string, string> ParseKeys(byte[] data)
    {
        var d = new Dictionary<string, string>();
        foreach (var pair in Encoding.UTF8.GetString(data).Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            string key = pair[..eq];
            d[key] = d.TryGetValue(key, out var existing) ? existing + "\n" + pair[(eq + 1)..] : pair[(eq + 1)..];
        }

        return d;
    }

    public async Task<(Bhs Header, byte[] Data)> ReceiveAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        if (!await Transport.ReceiveHeaderAsync(cts.Token))
        {
            throw new EndOfStreamException("target closed the connection");
        }

        var h = Transport.Header;
        var data = new byte[h.DataSegmentLength];
        await Transport.ReceiveDataAsync(data, cts.Token);
        return (h, data);
    }

    /// <summary>A SCSI command with optional immediate data; returns the ITT.</summary>
    public async Task<uint> SendCommandAsync(byte[] cdb, int expectedLength, bool read, bool write = false, byte[]? immediate = null, bool final = true, ulong lun = 0)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.ScsiCommand;
        h.Flags = (byte)((final ? 0x80 : 0) | (read ? 0x40 : 0) | (write ? 0x20 : 0) | 1);
        h.Lun = lun;
        uint itt = ++_itt;
        h.InitiatorTaskTag = itt;
        h.ExpectedDataTransferLength = (uint)expectedLength;
        h.CmdSN = _cmdSN++;
        h.ExpStatSN = _expStatSN;
        cdb.CopyTo(h.Cdb);
        await Transport.SendAsync(h, immediate ?? []);
        return itt;
    }

    /// <summary>
    /// Sends a SCSI Command with the given ITT and CmdSN (a retry, RFC 7143 §7.2.1, reuses
    /// both) without advancing this initiator's counters.
    /// </summary>
    public async Task SendCommandAsAsync(uint itt, uint cmdSN, byte[] cdb, int expectedLength, bool read, bool write, byte[]? immediate = null, bool final = true)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.ScsiCommand;
        h.Flags = (byte)((final ? 0x80 : 0) | (read ? 0x40 : 0) | (write ? 0x20 : 0) | 1);
        h.InitiatorTaskTag = itt;
        h.ExpectedDataTransferLength = (uint)expectedLength;
        h.CmdSN = cmdSN;
        h.ExpStatSN = _expStatSN;
        cdb.CopyTo(h.Cdb);
        await Transport.SendAsync(h, immediate ?? []);
    }

    /// <summary>One SCSI Data-Out PDU (RFC 7143 §11.7).</summary>
    public async Task SendDataOutAsync(uint itt, uint ttt, uint dataSN, int offset, ReadOnlyMemory<byte> data, bool final)
    {
        var d = default(Bhs);
        d.Opcode = Opcode.DataOut;
        d.Flags = (byte)(final ? 0x80 : 0);
        d.InitiatorTaskTag = itt;
        d.TargetTransferTag = ttt;
        d.ExpStatSN = _expStatSN;
        d.DataSN = dataSN;
        d.BufferOffset = (uint)offset;
        await Transport.SendAsync(d, data);
    }

    /// <summary>SNACK Request, RFC 7143 §11.16: type 0 Data/R2T, 1 Status, 2 DataACK, 3 R-Data.</summary>
    public async Task SendSnackAsync(byte type, uint itt, uint begRun, uint runLength, uint snackTag = 0xffffffff)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.SnackRequest;
        h.Flags = (byte)(0x80 | type);
        h.InitiatorTaskTag = itt;
        h.TargetTransferTag = snackTag;
        h.ExpStatSN = _expStatSN;
        h.SetU32(40, begRun);
        h.SetU32(44, runLength);
        await Transport.SendAsync(h, ReadOnlyMemory<byte>.Empty);
    }

    public async Task SendTextAsync(string text)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.TextRequest;
        h.Immediate = true;
        h.Flags = 0x80;
        h.InitiatorTaskTag = ++_itt;
        h.TargetTransferTag = 0xffffffff;
        h.CmdSN = _cmdSN;
        h.ExpStatSN = _expStatSN;
        await Transport.SendAsync(h, Encoding.UTF8.GetBytes(text));
    }

    public async Task SendNopOutAsync(uint itt, uint ttt)
    {
        var h = default(Bhs);
        h.Opcode = Opcode.NopOut;
        h.Immediate = true;
        h.Flags = 0x80;
        h.InitiatorTaskTag = itt;
        h.TargetTransferTag = ttt;
        h.CmdSN = _cmdSN;
        h.ExpStatSN = _expStatSN;
        await Transport.SendAsync(h, ReadOnlyMemory<byte>.Empty);
    }

    public void Acknowledge(in Bhs response) => _expStatSN = response.StatSN + 1;

    public async ValueTask DisposeAsync() => await Transport.DisposeAsync();
}
