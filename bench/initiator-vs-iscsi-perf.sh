#!/usr/bin/env bash
# Sluice's initiator (`sluice bench`) against libiscsi's iscsi-perf, both reading from the same
# target, alternately, ROUNDS times per workload — first from tgtd, then from `sluice serve`, each
# exporting the same 1 GiB file in /dev/shm (one target at a time):
#   4 KiB random reads at QD32, and 1 MiB sequential reads at QD8.
# Prints each tool's median IOPS and MB/s with the spread (min..max) and the ratio sluice/iscsi-perf
# per target (issue 5: within 10%, i.e. ratio >= 0.9).
#   TARGETS="tgtd sluice" (default) or one of them.
#
#   bench/initiator-vs-iscsi-perf.sh            # ROUNDS=5 TIME=10 SIZE_MB=1024
#   ROUNDS=3 TIME=5 bench/initiator-vs-iscsi-perf.sh
#   SLUICE="dotnet /path/sluice.dll" bench/...  # use an existing build
set -euo pipefail

ROUNDS=${ROUNDS:-5}
TIME=${TIME:-10}
SIZE_MB=${SIZE_MB:-1024}
TARGETS=${TARGETS:-tgtd sluice}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ART=${ART:-/tmp/sluice-bench-art}

for tool in tgtd tgtadm iscsi-perf python3; do
    command -v "$tool" >/dev/null || { echo "initiator-vs-iscsi-perf: $tool is not installed" >&2; exit 1; }
done

if [[ -z "${SLUICE:-}" ]]; then
    dotnet build "$ROOT/src/Sluice.Cli" -c Release --artifacts-path "$ART" -v q -nologo >/dev/null
    SLUICE="dotnet $ART/bin/Sluice.Cli/release/sluice.dll"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
DISK=/dev/shm/sluice-bench-$$.img
TGTD_PID=""
SERVE_PID=""
SERVE_DIR=$(mktemp -d)

stop_targets() {
    if [[ -n "$TGTD_PID" ]]; then
        # tgtd ignores SIGTERM while targets exist: ask it to stop, then make sure.
        tgtadm -C "$CTL" --op delete --mode system >/dev/null 2>&1 || true
        sleep 0.2
        kill -9 "$TGTD_PID" 2>/dev/null || true
        wait "$TGTD_PID" 2>/dev/null || true
        TGTD_PID=""
    fi
    if [[ -n "$SERVE_PID" ]]; then
        kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
        SERVE_PID=""
    fi
}
cleanup() { stop_targets; rm -f "$DISK"; rm -rf "$SERVE_DIR"; }
trap cleanup EXIT

wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "initiator-vs-iscsi-perf: nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

start_tgtd() {
    PORT=$(free_port)
    CTL=$((20000 + RANDOM % 10000))
    while [[ -e /var/run/tgtd/socket.$CTL ]]; do CTL=$((20000 + RANDOM % 10000)); done
    local iqn=iqn.2026-11.dev.sluice:bench
    tgtd -f -C "$CTL" --iscsi "portal=127.0.0.1:$PORT" >/dev/null 2>&1 &
    TGTD_PID=$!
    wait_port "$PORT"
    tgtadm -C "$CTL" --lld iscsi --op new --mode target --tid 1 -T "$iqn"
    tgtadm -C "$CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$DISK"
    tgtadm -C "$CTL" --lld iscsi --op bind --mode target --tid 1 -I ALL
    URL="iscsi://127.0.0.1:$PORT/$iqn/1"
}

start_sluice() {
    PORT=$(free_port)
    $SLUICE serve --listen "127.0.0.1:$PORT" --data-dir "$SERVE_DIR" --lun "file:$DISK" --log-level warn >/dev/null &
    SERVE_PID=$!
    wait_port "$PORT"
    URL="iscsi://127.0.0.1:$PORT/iqn.2026-11.dev.sluice:default/0"
}

# Real data, so reads touch real pages.
dd if=/dev/urandom of="$DISK" bs=1M count="$SIZE_MB" status=none

# sluice bench --json -> "iops mbps"
run_sluice() { # rw bs qd
    $SLUICE bench "$URL" --rw "$1" --bs "$2" --qd "$3" --time "${TIME}s" --ramp 1s --json |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["jobs"][0]["read"]; print(r["iops"], r["mb_per_s"])'
}

# iscsi-perf's last "iops average N (M MB/s)" -> "iops mbps"
run_iscsi_perf() { # blocks-per-request qd random(0/1)
    local args=(-m "$2" -b "$1" -t "$TIME")
    [[ "$3" == 1 ]] && args+=(-r)
    iscsi-perf "${args[@]}" "$URL" 2>&1 | tr '\r' '\n' | grep -o 'iops average [0-9]* ([0-9.]* MB/s)' | tail -1 |
        sed -E 's/iops average ([0-9]+) \(([0-9.]+) MB\/s\)/\1 \2/'
}

summarise() { # name file-with-"iops mbps"-lines
    python3 - "$@" <<'PY'
import statistics, sys
name = sys.argv[1]
rows = [tuple(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
iops = [r[0] for r in rows]; mbps = [r[1] for r in rows]
print(f"  {name:<11} IOPS median {statistics.median(iops):>9.0f} (spread {min(iops):.0f}..{max(iops):.0f})   "
      f"MB/s median {statistics.median(mbps):>8.1f} (spread {min(mbps):.1f}..{max(mbps):.1f})")
print(statistics.median(iops), file=open(sys.argv[2] + ".median", "w"))
PY
}

TMP=$(mktemp -d)
echo "LUN: ${SIZE_MB} MiB file in /dev/shm; $ROUNDS rounds x ${TIME}s per tool and workload; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for target in $TARGETS; do
    "start_$target"
    echo "== target: $target ($URL)"
    for workload in "randread 4k 32 8 1" "read 1m 8 2048 0"; do
        read -r rw bs qd blocks random <<<"$workload"
        : >"$TMP/sluice"; : >"$TMP/perf"
        for round in $(seq "$ROUNDS"); do
            # Alternate who goes first so drift in the machine's load hurts both alike.
            if (( round % 2 )); then
                run_sluice "$rw" "$bs" "$qd" >>"$TMP/sluice"; run_iscsi_perf "$blocks" "$qd" "$random" >>"$TMP/perf"
            else
                run_iscsi_perf "$blocks" "$qd" "$random" >>"$TMP/perf"; run_sluice "$rw" "$bs" "$qd" >>"$TMP/sluice"
            fi
        done
        echo "$rw bs=$bs qd=$qd:"
        summarise sluice "$TMP/sluice"
        summarise iscsi-perf "$TMP/perf"
        python3 -c "import sys; a=float(open('$TMP/sluice.median').read()); b=float(open('$TMP/perf.median').read()); print(f'  ratio sluice/iscsi-perf (median IOPS): {a/b:.2f}')"
    done
    stop_targets
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$TMP"
