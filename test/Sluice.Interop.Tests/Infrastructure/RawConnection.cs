using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sluice.Interop.Tests.Infrastructure;

/// <summary>What the target did within the time allowed.</summary>
internal enum AnswerKind
{
    /// <summary>A whole PDU arrived.</summary>
    Pdu,
    /// <summary>The target closed or reset the connection.</summary>
    Closed,
    /// <summary>Nothing, neither a PDU nor a close: the target hangs.</summary>
    Timeout,
}

internal sealed record Answer(AnswerKind Kind, byte[] Bhs, byte[] Data)
{
    public int Opcode => RawPdu.Opcode(Bhs);

    public override string ToString() => Kind == AnswerKind.Pdu ? RawPdu.Describe(Bhs) : Kind.ToString();
}

/// <summary>A raw TCP connection to a target, speaking PDUs built by hand (no digests).</summary>
internal sealed class RawConnection : IAsyncDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private uint _itt = 0x1000;

    private RawConnection(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
    }

    public uint CmdSN { get; private set; } = 1;
    public uint ExpStatSN { get; private set; }

    /// <summary>The target's declared MaxRecvDataSegmentLength (8192 when it didn't declare one).</summary>
    public int TargetMaxRecvDataSegmentLength { get; private set; } = 8192;

    public static async Task<RawConnection> ConnectAsync(TargetEndpoint endpoint)
    {
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(IPAddress.Parse(endpoint.Host), endpoint.Port);
        return new RawConnection(client);
    }

    public uint NextItt() => _itt++;

    public async Task SendAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>Half-closes: the target sees end of stream.</summary>
    public void ShutdownSend() => _client.Client.Shutdown(SocketShutdown.Send);

    /// <summary>The next PDU, a close, or a timeout.</summary>
    public async Task<Answer> ReceiveAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        byte[] bhs = new byte[RawPdu.BhsLength];
        try
        {
            if (!await ReadExactlyAsync(bhs, cts.Token))
                return new Answer(AnswerKind.Closed, [], []);
            int ahs = bhs[4] * 4;
            int dsl = RawPdu.DataSegmentLength(bhs);
            byte[] rest = new byte[ahs + RawPdu.Padded(dsl)];
            if (!await ReadExactlyAsync(rest, cts.Token))
                return new Answer(AnswerKind.Closed, bhs, []);
            return new Answer(AnswerKind.Pdu, bhs, rest.AsSpan(ahs, dsl).ToArray());
        }
        catch (OperationCanceledException)
        {
            return new Answer(AnswerKind.Timeout, [], []);
        }
        catch (IOException)
        {
            return new Answer(AnswerKind.Closed, [], []);
        }
        catch (SocketException)
        {
            return new Answer(AnswerKind.Closed, [], []);
        }
    }

    private async Task<bool> ReadExactlyAsync(byte[] buffer, CancellationToken token)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = await _stream.ReadAsync(buffer.AsMemory(got), token);
            if (n == 0)
                return false;
            got += n;
        }
        return true;
    }

    public static string[] SecurityKeys(string initiator, string target) =>
        [$"InitiatorName={initiator}", $"TargetName={target}", "SessionType=Normal", "AuthMethod=None"];

    /// <summary>The operational keys a plain, well-behaved login offers (RFC 7143 §13).</summary>
    public static string[] OperationalKeys() =>
    [
        "HeaderDigest=None", "DataDigest=None", "MaxRecvDataSegmentLength=8192", "ImmediateData=Yes",
        "InitialR2T=Yes", "MaxBurstLength=262144", "FirstBurstLength=65536", "ErrorRecoveryLevel=0",
        "MaxConnections=1", "DefaultTime2Wait=0", "DefaultTime2Retain=0",
    ];

    private ushort _tsih;

    /// <summary>Sends one Login Request (T=1) and returns the answer; a successful Login Response updates the session state.</summary>
    public async Task<Answer> LoginStepAsync(int csg, int nsg, string[] keys, TimeSpan timeout)
    {
        await SendAsync(RawPdu.Login(csg, nsg, transit: true, NextItt(), CmdSN, ExpStatSN, _tsih, keys));
        var answer = await ReceiveAsync(timeout);
        if (answer.Kind == AnswerKind.Pdu && answer.Opcode == RawPdu.OpLoginResponse && answer.Bhs[36] == 0)
        {
            _tsih = BinaryPrimitives.ReadUInt16BigEndian(answer.Bhs.AsSpan(14));
            ExpStatSN = BinaryPrimitives.ReadUInt32BigEndian(answer.Bhs.AsSpan(24)) + 1;
            CmdSN = BinaryPrimitives.ReadUInt32BigEndian(answer.Bhs.AsSpan(28));
            var text = RawPdu.ParseText(answer.Data);
            if (text.TryGetValue("MaxRecvDataSegmentLength", out string? mrdsl)
                && int.TryParse(mrdsl, NumberStyles.None, CultureInfo.InvariantCulture, out int m))
            {
                TargetMaxRecvDataSegmentLength = m;
            }
        }
        return answer;
    }

    /// <summary>The security stage (AuthMethod=None) up to the operational stage; throws when refused.</summary>
    public async Task SecurityStageAsync(string initiator, string target)
    {
        var answer = await LoginStepAsync(0, 1, SecurityKeys(initiator, target), TimeSpan.FromSeconds(10));
        if (answer.Kind != AnswerKind.Pdu || answer.Opcode != RawPdu.OpLoginResponse || answer.Bhs[36] != 0)
            throw new InvalidOperationException($"login (security stage) failed: {answer}");
        if ((answer.Bhs[1] & 0x80) == 0 || (answer.Bhs[1] & 0x03) != 1)
            throw new InvalidOperationException($"login: the target did not move to the operational stage: flags 0x{answer.Bhs[1]:x2}");
    }

    /// <summary>A whole, well-behaved login to full feature phase; throws when refused.</summary>
    public async Task LoginAsync(string initiator, string target)
    {
        await SecurityStageAsync(initiator, target);
        string[] keys = OperationalKeys();
        for (int step = 0; step < 4; step++)
        {
            var answer = await LoginStepAsync(1, 3, keys, TimeSpan.FromSeconds(10));
            if (answer.Kind != AnswerKind.Pdu || answer.Opcode != RawPdu.OpLoginResponse || answer.Bhs[36] != 0)
                throw new InvalidOperationException($"login (operational stage) failed: {answer}");
            if ((answer.Bhs[1] & 0x80) != 0 && (answer.Bhs[1] & 0x03) == 3)
                return;
            keys = [];
        }
        throw new InvalidOperationException("login: the target never reached full feature phase");
    }

    /// <summary>
    /// Sends READ CAPACITY (10) and returns the SCSI status, reading past NOP-Ins and Async
    /// Messages; throws when the connection closes or nothing comes.
    /// </summary>
    public async Task<byte> ReadCapacity10Async(ulong lun, TimeSpan timeout)
    {
        uint itt = NextItt();
        byte[] cdb = new byte[10];
        cdb[0] = 0x25;
        await SendAsync(RawPdu.ScsiCommand(lun, itt, CmdSN++, ExpStatSN, cdb, 8, read: true, write: false, []));
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var answer = await ReceiveAsync(deadline - DateTime.UtcNow);
            if (answer.Kind != AnswerKind.Pdu)
                throw new InvalidOperationException($"READ CAPACITY(10): {answer}");
            bool statusHere = answer.Opcode == RawPdu.OpScsiResponse
                || (answer.Opcode == RawPdu.OpDataIn && (answer.Bhs[1] & 0x01) != 0);
            if (answer.Opcode is RawPdu.OpScsiResponse)
                ExpStatSN = BinaryPrimitives.ReadUInt32BigEndian(answer.Bhs.AsSpan(24)) + 1;
            if (statusHere && RawPdu.Itt(answer.Bhs) == itt)
            {
                if (answer.Opcode == RawPdu.OpDataIn)
                    ExpStatSN = BinaryPrimitives.ReadUInt32BigEndian(answer.Bhs.AsSpan(24)) + 1;
                return answer.Bhs[3];
            }
        }
        throw new TimeoutException("READ CAPACITY(10): no status");
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _client.Dispose();
    }
}
