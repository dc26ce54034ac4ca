using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Sluice.Iscsi.Pdu;

namespace Sluice.Offload;

public sealed partial class PduTransport
{
    /// <summary>
    /// After a data segment at least this long, more large ones are likely (a big read or write
    /// is streaming), so the next header is received on its own instead of staging whatever
    /// follows it: the payload behind that header then lands directly, with no copy at all.
    /// </summary>
    private const int LargeSegment = 64 * 1024;

    /// <summary>
    /// The slow paths of <see cref="ReceiveHeaderAsync"/> and <see cref="ReceiveDataAsync"/>: the
    /// ones that wait for the socket. A connection has one reader, so at most one of them is
    /// outstanding, and this one object, reused for every wait, drives them by hand; an async
    /// method would box a state machine each time it waits (DESIGN.md: hot paths allocate nothing).
    /// Continuations run inline on the socket's completion thread, as an async method's would.
    /// </summary>
    private sealed class Receiver : IValueTaskSource<bool>, IValueTaskSource
    {
        private readonly PduTransport _t;
        private readonly Action _onReceived;
        private ManualResetValueTaskSourceCore<bool> _core;
        private ConfiguredValueTaskAwaitable<int>.ConfiguredValueTaskAwaiter _awaiter;
        private CancellationToken _cancellationToken;
        private Step _step;
        private int _needed;
        private int _limit;
        private Memory<byte> _destination;
        private int _received;
        private int _stagedPrefix;
        private bool _intoStaging;

        public Receiver(PduTransport transport)
        {
            _t = transport;
            _onReceived = OnReceived;
        }

        private enum Step
        {
            HeaderBhs,
            HeaderRest,
            DataDirect,
            DataStaged,
            DataTrailer,
        }

        public ValueTask<bool> StartHeader(CancellationToken cancellationToken)
        {
            _core.Reset();
            _cancellationToken = cancellationToken;
            _step = Step.HeaderBhs;
            _limit = _t._lastSegmentLarge && _t._offload ? _t.HeaderBytes(0) : int.MaxValue;
            Run(-1);
            return new ValueTask<bool>(this, _core.Version);
        }

        public ValueTask StartData(Memory<byte> destination, CancellationToken cancellationToken)
        {
            _core.Reset();
            _cancellationToken = cancellationToken;
            _destination = destination;
            var t = _t;
            int length = destination.Length;
            int staged = Math.Min(t._rxEnd - t._rxStart, length);
            t._rx.AsSpan(t._rxStart, staged).CopyTo(destination.Span);
            t._rxStart += staged;
            _received = staged;
            _stagedPrefix = staged;
            _step = length - staged >= DirectThreshold && t._offload ? Step.DataDirect : Step.DataStaged;
            Run(-1);
            return new ValueTask(this, _core.Version);
        }

        private void OnReceived()
        {
            int n;
            try
            {
                n = _awaiter.GetResult();
            }
            catch (Exception e)
            {
                _core.SetException(e);
                return;
            }

            Run(n);
        }

        /// <summary>Takes <paramref name="received"/> bytes from the last socket call (-1: none), then goes on until it must wait or is done.</summary>
        private void Run(int received)
        {
            try
            {
                while (true)
                {
                    if (received >= 0 && !Take(received))
                    {
                        return;
                    }

                    if (!Advance(out var into))
                    {
                        return;
                    }

                    var pending = _t._socket.ReceiveAsync(into, SocketFlags.None, _cancellationToken);
                    if (!pending.IsCompleted)
                    {
                        _awaiter = pending.ConfigureAwait(false).GetAwaiter();
                        _awaiter.UnsafeOnCompleted(_onReceived);
                        return;
                    }

                    received = pending.Result;
                }
            }
            catch (Exception e)
            {
                _core.SetException(e);
            }
        }

        /// <summary>Accounts for bytes the socket delivered; false when the operation ended (clean close between PDUs).</summary>
        private bool Take(int n)
        {
            var t = _t;
            if (n == 0)
            {
                if (_step == Step.HeaderBhs && t._rxEnd == t._rxStart)
                {
                    _core.SetResult(false);
                    return false;
                }

                throw new IscsiProtocolException(_step is Step.DataDirect or Step.DataStaged
                    ? "connection closed inside a data segment"
                    : $"connection closed with a partial PDU ({t._rxEnd - t._rxStart} of {(_step == Step.HeaderBhs ? Bhs.Length : _needed)} bytes)");
            }

            if (_intoStaging)
            {
                t._rxEnd += n;
            }
            else
            {
                _received += n;
            }

            return true;
        }

        /// <summary>Goes as far as the bytes at hand allow; true with the memory the socket must fill next, false when done.</summary>
        private bool Advance(out Memory<byte> into)
        {
            var t = _t;
            while (true)
            {
                int staged = t._rxEnd - t._rxStart;
                switch (_step)
                {
                    case Step.HeaderBhs:
                        if (staged < Bhs.Length)
                        {
                            into = Fill(Bhs.Length, _limit);
                            return true;
                        }

                        _needed = t.HeaderBytes(t._rx[t._rxStart + 4]);
                        _limit = _limit == int.MaxValue ? int.MaxValue : _needed;
                        _step = Step.HeaderRest;
                        continue;

                    case Step.HeaderRest:
                        if (staged < _needed)
                        {
                            into = Fill(_needed, _limit);
                            return true;
                        }

                        // A header digest error or an oversized segment comes back as a faulted ValueTask: rethrow it.
                        var header = t.TakeHeader(_needed);
                        _core.SetResult(header.IsCompletedSuccessfully ? header.Result : header.AsTask().GetAwaiter().GetResult());
                        into = default;
                        return false;

                    case Step.DataDirect:
                        if (_received < _destination.Length)
                        {
                            // Fast path: the payload lands in its final buffer with no copy.
                            _intoStaging = false;
                            into = _destination[_received..];
                            return true;
                        }

                        if (_stagedPrefix > 0)
                        {
                            t.Counters.Staged(_stagedPrefix);
                        }

                        t.Counters.Direct(_destination.Length - _stagedPrefix);
                        _step = Step.DataTrailer;
                        _needed = Trailer();
                        _limit = t._lastSegmentLarge && t._offload ? _needed + t.HeaderBytes(0) : int.MaxValue;
                        continue;

                    case Step.DataStaged:
                        if (_received < _destination.Length)
                        {
                            if (staged == 0)
                            {
                                into = Fill(Math.Min(_destination.Length - _received, t._rx.Length / 2), int.MaxValue);
                                return true;
                            }

                            int take = Math.Min(staged, _destination.Length - _received);
                            t._rx.AsSpan(t._rxStart, take).CopyTo(_destination.Span[_received..]);
                            t._rxStart += take;
                            _received += take;
                            continue;
                        }

                        t.Counters.Staged(_destination.Length);
                        _step = Step.DataTrailer;
                        _needed = Trailer();
                        _limit = t._lastSegmentLarge && t._offload ? _needed + t.HeaderBytes(0) : int.MaxValue;
                        continue;

                    case Step.DataTrailer:
                        if (staged < _needed)
                        {
                            // Take the next header along with the trailer, but no payload behind it (see LargeSegment).
                            into = Fill(_needed, _limit);
                            return true;
                        }

                        FinishData();
                        _core.SetResult(true);
                        into = default;
                        return false;
                }
            }
        }

        private int Trailer()
        {
            int length = _destination.Length;
            return Padding(length) + (_t.DataDigest && length > 0 ? 4 : 0);
        }

        /// <summary>Consumes padding and digest; checks the digest over the bytes where they landed.</summary>
        private void FinishData()
        {
            var t = _t;
            var destination = _destination;
            _destination = default;
            int length = destination.Length;
            int pad = Padding(length);
            var trailer = t._rx.AsSpan(t._rxStart, _needed);
            t._rxStart += _needed;
            if (t.DataDigest && length > 0 &&
                t.Crc(t.Crc(0, destination.Span), trailer[..pad]) != BinaryPrimitives.ReadUInt32LittleEndian(trailer[pad..]))
            {
                t.Counters.DataDigestError();
                throw new DataDigestException();
            }
        }

        /// <summary>Makes room for <paramref name="needed"/> staged bytes and returns where the socket should put more, at most <paramref name="limit"/> staged in all.</summary>
        private Memory<byte> Fill(int needed, int limit)
        {
            var t = _t;
            if (t._rxStart == t._rxEnd)
            {
                t._rxStart = t._rxEnd = 0;
            }
            else if (t._rx.Length - t._rxStart < needed)
            {
                Buffer.BlockCopy(t._rx, t._rxStart, t._rx, 0, t._rxEnd - t._rxStart);
                t._rxEnd -= t._rxStart;
                t._rxStart = 0;
            }

            _intoStaging = true;
            int room = Math.Min(t._rx.Length - t._rxEnd, limit - (t._rxEnd - t._rxStart));
            return t._rx.AsMemory(t._rxEnd, room);
        }

        public bool GetResult(short token) => _core.GetResult(token);

        void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
