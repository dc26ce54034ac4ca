#!/usr/bin/env bash
# Issue 4 measurements, side by side in one run on one target binary:
#   1. 1 MiB sequential reads at QD8 with HeaderDigest+DataDigest=CRC32C vs without digests;
#   2. target CPU seconds per GB moved, digests on, `--offload auto` vs `--offload none`.
# Client: `sluice bench` (same offload mode as the target). Rounds alternate the three
# configurations so drift on a shared machine falls on all of them. Prints medians and spread.
#
#   bench/digest-offload.sh [--rounds N] [--time SECONDS] [--sluice-dll PATH]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=5
TIME=5
DLL=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --time) TIME="$2"; shift 2 ;;
    --sluice-dll) DLL="$2"; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--time SECONDS] [--sluice-dll PATH]" >&2; exit 2 ;;
  esac
done
if [[ -z "$DLL" ]]; then
  dotnet build "$ROOT/src/Sluice.Cli" -c Release --artifacts-path /tmp/sluice-bench-art -nologo -clp:ErrorsOnly >&2
  DLL=/tmp/sluice-bench-art/bin/Sluice.Cli/release/sluice.dll
fi
WORK="$(mktemp -d /tmp/digest-offload.XXXXXX)"
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# run MODE DIGEST(yes|no) -> "MBps cpu_s_per_GB"
run() {
  local mode=$1 digest=$2 port; port=$(free_port)
  dotnet "$DLL" serve --listen "127.0.0.1:$port" --lun memory:1GiB --offload "$mode" --data-dir "$WORK" --log-level warn > "$WORK/serve.out" 2>&1 &
  PID=$!
  for _ in $(seq 100); do grep -q '^ready' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  local url="iscsi://127.0.0.1:$port/iqn.2026-11.dev.sluice:default/0" flags=(--offload "$mode")
  [[ $digest == yes ]] && flags+=(--digest)
  dotnet "$DLL" bench "$url" --rw read --bs 1m --qd 8 --time 2s --ramp 1ms "${flags[@]}" > /dev/null
  local t0 t1 json
  t0=$(cpu_ticks "$PID")
  json=$(dotnet "$DLL" bench "$url" --rw read --bs 1m --qd 8 --time "${TIME}s" --ramp 1ms --json "${flags[@]}")
  t1=$(cpu_ticks "$PID")
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  python3 - "$json" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
doc = json.loads(sys.argv[1])
read = doc["jobs"][0]["read"]
total_bytes = read["ios"] * doc["bs"]
mbps = read["mb_per_s"]
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print(f"{mbps:.1f} {cpu / (total_bytes / 1e9):.3f}")
PY
}

declare -A MB CPU
for ((r = 1; r <= ROUNDS; r++)); do
  for cfg in auto:no auto:yes none:yes; do
    read -r mb cpu < <(run "${cfg%%:*}" "${cfg##*:}")
    MB[$cfg]+="$mb "; CPU[$cfg]+="$cpu "
    echo "round $r $cfg: $mb MB/s, $cpu target CPU s/GB" >&2
  done
done

python3 - "${MB[auto:no]}" "${MB[auto:yes]}" "${MB[none:yes]}" "${CPU[auto:no]}" "${CPU[auto:yes]}" "${CPU[none:yes]}" <<'PY'
import statistics, sys
v = [list(map(float, a.split())) for a in sys.argv[1:]]
def cell(xs): return f"{statistics.median(xs):.1f} ({min(xs):.1f}–{max(xs):.1f})"
def cellc(xs): return f"{statistics.median(xs):.3f} ({min(xs):.3f}–{max(xs):.3f})"
names = ["auto, no digests", "auto, CRC32C digests", "none, CRC32C digests"]
print("| configuration | 1 MiB QD8 read MB/s | target CPU s/GB |")
print("| --- | ---: | ---: |")
for i, n in enumerate(names):
    print(f"| {n} | {cell(v[i])} | {cellc(v[3 + i])} |")
print()
print(f"throughput with digests / without (auto): {statistics.median(v[1]) / statistics.median(v[0]):.2f}")
print(f"target CPU per GB with digests, auto vs none: {1 - statistics.median(v[4]) / statistics.median(v[5]):.0%} lower")
PY
