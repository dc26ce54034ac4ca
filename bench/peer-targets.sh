#!/usr/bin/env bash
# Peer benchmark: Sluice against tgt (Debian tgt) and istgt on loopback, driven by libiscsi's
# iscsi-perf (reads) and qemu-img bench (writes), with the iperf3 loopback ceiling measured in
# the same run. Targets run in rotation within each workload (tgt istgt sluice, next round
# istgt sluice tgt, ...) so the machine's drift is shared; the summary gives medians and spread.
#
#   bench/peer-targets.sh [--quick] [--rounds N] [--duration S] [--size-mib N]
#                         [--sluice-dll PATH] [--sluice-lun SPEC] [--workloads LIST]
#                         [--targets LIST] [--syscalls] [--out FILE] [--keep]
#
# Everything listens on 127.0.0.1, on free ports, and is stopped on exit. Needs root (tgtd's
# control socket, apt-get for missing tools). See docs/performance.md for results.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))"
ALL_WORKLOADS="rr4k-qd1,rr4k-qd32,sr64k-qd8,sr1m-qd8,rw4k-qd32"

ROUNDS=""; DURATION=""; QUICK=0; SIZE_MIB=1024; SLUICE_DLL=""; SLUICE_LUN=""
WORKLOADS="$ALL_WORKLOADS"; TARGETS="tgt,istgt,sluice"; OUT=""; KEEP=0; SYSCALLS=0
WRITE_COUNT=""; IPERF_SECS=""; ARTIFACTS="${TMPDIR:-/tmp}/sluice-peer-bench-art"
CMDLINE="bench/peer-targets.sh $*"

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --size-mib) SIZE_MIB="$2"; shift ;;
    --sluice-dll) SLUICE_DLL="$2"; shift ;;
    --sluice-lun) SLUICE_LUN="$2"; shift ;;
    --workloads) WORKLOADS="$2"; shift ;;
    --targets) TARGETS="$2"; shift ;;
    --write-count) WRITE_COUNT="$2"; shift ;;
    --iperf-seconds) IPERF_SECS="$2"; shift ;;
    --artifacts-path) ARTIFACTS="$2"; shift ;;
    --syscalls) SYSCALLS=1 ;;
    --out) OUT="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
  shift
done
if [[ $QUICK == 1 ]]; then
  : "${ROUNDS:=2}" "${DURATION:=3}" "${WRITE_COUNT:=30000}" "${IPERF_SECS:=2}"
else
  : "${ROUNDS:=5}" "${DURATION:=10}" "${WRITE_COUNT:=200000}" "${IPERF_SECS:=5}"
fi
: "${SLUICE_LUN:=memory:${SIZE_MIB}MiB}"
WARM_SECS=$(( DURATION < 3 ? DURATION : 3 ))
BLOCK=512   # logical block size of all three LUNs (each one's default)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------
need() { # need CMD PACKAGE...
  local cmd="$1"; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "installing $* for $cmd"
  apt-get install -y "$@" >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y "$@" >/dev/null 2>&1; } \
    || die "cannot install $*"
}
need python3 python3
need iscsi-perf libiscsi-bin
need iperf3 iperf3
need ss iproute2
[[ ",$TARGETS," == *,tgt,* ]] && { need tgtd tgt; need tgtadm tgt; }
[[ ",$TARGETS," == *,istgt,* ]] && need istgt istgt
if [[ ",$WORKLOADS," == *,rw4k-qd32,* ]]; then
  need qemu-img qemu-utils
  ls /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so /usr/lib/*/qemu/block-iscsi.so >/dev/null 2>&1 \
    || apt-get install -y qemu-block-extra >/dev/null 2>&1 || log "qemu-block-extra missing: writes may fail"
fi
[[ $SYSCALLS == 1 ]] && need strace strace

if [[ ",$TARGETS," == *,sluice,* && -z "$SLUICE_DLL" ]]; then
  need dotnet dotnet-sdk-10.0
  log "building sluice (Release) from $REPO into $ARTIFACTS"
  dotnet build "$REPO/src/Sluice.Cli" -c Release --artifacts-path "$ARTIFACTS" -nologo -v quiet >"${TMPDIR:-/tmp}/peer-targets-build.log" 2>&1 \
    || { tail -20 "${TMPDIR:-/tmp}/peer-targets-build.log" >&2; die "build failed"; }
  SLUICE_DLL="$ARTIFACTS/bin/Sluice.Cli/release/sluice.dll"
fi
[[ -z "$SLUICE_DLL" || -f "$SLUICE_DLL" ]] || die "no sluice.dll at $SLUICE_DLL"

# --- state and cleanup --------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/peer-targets.XXXXXX")"
SHM_PREFIX="/dev/shm/peer-targets.$$"
declare -A PID URL
TGT_CTL=""; IPERF_PID=""

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL
  local p="$1" i
  [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
}
cleanup() {
  set +e
  if [[ -n "${PID[tgt]:-}" ]]; then
    # tgtd ignores SIGTERM while it has targets: delete them, then the system.
    tgtadm --lld iscsi -C "$TGT_CTL" --op delete --mode target --tid 1 --force >/dev/null 2>&1
    tgtadm --lld iscsi -C "$TGT_CTL" --op delete --mode system >/dev/null 2>&1
    sleep 0.3
    stop_pid "${PID[tgt]}"
  fi
  [[ -n "${PID[istgt]:-}" ]] && stop_pid "${PID[istgt]}"
  [[ -n "${PID[sluice]:-}" ]] && stop_pid "${PID[sluice]}"
  [[ -n "$IPERF_PID" ]] && stop_pid "$IPERF_PID"
  wait 2>/dev/null
  rm -f "$SHM_PREFIX".*
  if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_listen() { # wait_listen PORT PID NAME
  local i
  for i in $(seq 300); do
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited early; see $WORK/$3.log: $(tail -5 "$WORK/$3.log" 2>/dev/null)"
    sleep 0.1
  done
  die "$3 did not listen on 127.0.0.1:$1"
}
make_backing() { # a fully allocated file on tmpfs, so reads touch real pages
  dd if=/dev/zero of="$1" bs=1M count="$SIZE_MIB" status=none
}

# --- targets ------------------------------------------------------------------------------
start_tgt() {
  local port; port=$(free_port); TGT_CTL=$(( (port % 1000) + 1000 ))
  local iqn="iqn.2001-04.com.example:peer-bench" img="$SHM_PREFIX.tgt.img"
  make_backing "$img"
  tgtd -f --iscsi portal="127.0.0.1:$port" -C "$TGT_CTL" >"$WORK/tgt.log" 2>&1 &
  PID[tgt]=$!
  wait_listen "$port" "${PID[tgt]}" tgt
  tgtadm --lld iscsi -C "$TGT_CTL" --op new --mode target --tid 1 -T "$iqn"
  tgtadm --lld iscsi -C "$TGT_CTL" --op new --mode logicalunit --tid 1 --lun 1 -b "$img"
  tgtadm --lld iscsi -C "$TGT_CTL" --op bind --mode target --tid 1 -I ALL
  URL[tgt]="iscsi://127.0.0.1:$port/$iqn/1"
}
start_istgt() {
  local port ucport; port=$(free_port); ucport=$(free_port)
  local img="$SHM_PREFIX.istgt.img" dir="$WORK/istgt"
  mkdir -p "$dir"; make_backing "$img"
  : >"$dir/auth.conf"
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@UCPORT@|$ucport|g" \
      -e "s|@FILE@|$img|g" -e "s|@SIZEMB@|$SIZE_MIB|g" "$HERE/peer-targets/istgt.conf.in" >"$dir/istgt.conf"
  istgt -D -q -c "$dir/istgt.conf" -p "$dir/istgt.pid" >"$WORK/istgt.log" 2>&1 &
  PID[istgt]=$!
  wait_listen "$port" "${PID[istgt]}" istgt
  URL[istgt]="iscsi://127.0.0.1:$port/iqn.2007-09.jp.ne.peach.istgt:disk1/0"
}
start_sluice() {
  local port; port=$(free_port)
  dotnet "$SLUICE_DLL" serve --listen "127.0.0.1:$port" --lun "$SLUICE_LUN" \
    --data-dir "$WORK/sluice-data" --log-level warn >"$WORK/sluice.log" 2>&1 &
  PID[sluice]=$!
  wait_listen "$port" "${PID[sluice]}" sluice
  URL[sluice]="iscsi://127.0.0.1:$port/iqn.2026-11.dev.sluice:default/0"
}

# --- measurement --------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime+stime of the whole process (all threads), /proc/PID/stat fields 14, 15
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s="${s##*) }"; set -- $s; echo $(( ${12} + ${13} ))
}
ensure_up() { # a target that died (crash, or killed from outside) is started again, once per run
  kill -0 "${PID[$1]}" 2>/dev/null && return 0
  log "warning: $1 (pid ${PID[$1]}) is gone; starting it again"
  "start_$1"; log "$1 up again: ${URL[$1]} (pid ${PID[$1]})"
}
workload_desc() {
  case "$1" in
    rr4k-qd1) echo "4 KiB random read, QD1" ;;
    rr4k-qd32) echo "4 KiB random read, QD32" ;;
    sr64k-qd8) echo "64 KiB sequential read, QD8" ;;
    sr1m-qd8) echo "1 MiB sequential read, QD8" ;;
    rw4k-qd32) echo "4 KiB scattered write, QD32 (qemu-img bench)" ;;
    *) die "unknown workload $1" ;;
  esac
}
workload_params() { # -> QD BYTES RANDOM(0/1) TOOL
  case "$1" in
    rr4k-qd1) echo "1 4096 1 perf" ;;
    rr4k-qd32) echo "32 4096 1 perf" ;;
    sr64k-qd8) echo "8 65536 0 perf" ;;
    sr1m-qd8) echo "8 1048576 0 perf" ;;
    rw4k-qd32) echo "32 4096 1 qemu" ;;
  esac
}

# run_load WORKLOAD TARGET SECONDS COUNT OUTFILE -> prints "IOPS IOS" (IOS = I/Os completed)
run_load() {
  local w="$1" t="$2" secs="$3" count="$4" out="$5" qd bytes rnd tool
  read -r qd bytes rnd tool < <(workload_params "$w")
  if [[ $tool == perf ]]; then
    local args=(-m "$qd" -b $(( bytes / BLOCK )) -t "$secs")
    [[ $rnd == 1 ]] && args+=(-r)
    timeout $(( secs + 60 )) iscsi-perf "${args[@]}" "${URL[$t]}" >"$out" 2>&1 || true
    local iops
    iops=$(tr '\r' '\n' <"$out" | awk '/^iops average/ {v=$3} END {if (v != "") print v}')
    [[ -n "$iops" ]] && echo "$iops $(( iops * secs ))" || echo "nan 0"
  else
    # qemu-img bench has no random mode; a step of 4096 x 100003 (odd, so coprime with the
    # power-of-two LUN size in blocks) wraps modulo the LUN size and visits every 4 KiB block
    # in scattered order.
    timeout 600 qemu-img bench -w -t none -f raw -c "$count" -d "$qd" -s "$bytes" \
      -S $(( bytes * 100003 )) "${URL[$t]}" >"$out" 2>&1 || true
    awk -v c="$count" '/Run completed in/ {printf "%.0f %d\n", c / $4, c; f=1} END {if (!f) print "nan 0"}' "$out"
  fi
}

RESULTS="$WORK/results.tsv"
printf 'round\tworkload\tdesc\ttarget\tiops\tmbps\tcpu_s\tbytes\tios\tsyscalls_per_io\n' >"$RESULTS"

measure() { # measure ROUND WORKLOAD TARGET
  local rd="$1" w="$2" t="$3" qd bytes rnd tool c0 c1 iops ios
  read -r qd bytes rnd tool < <(workload_params "$w")
  ensure_up "$t"
  c0=$(cpu_ticks "${PID[$t]}")
  read -r iops ios < <(run_load "$w" "$t" "$DURATION" "$WRITE_COUNT" "$WORK/run.$rd.$w.$t.out")
  c1=$(cpu_ticks "${PID[$t]}")
  (( c1 >= c0 )) || { c1=$c0; iops=nan; ios=0; }  # died during the run: no figure
  local cpu mbps
  cpu=$(awk -v a="$c0" -v b="$c1" -v k="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / k}')
  mbps=$(awk -v i="$iops" -v b="$bytes" 'BEGIN {if (i == "nan") print "nan"; else printf "%.1f", i * b / 1e6}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$rd" "$w" "$(workload_desc "$w")" "$t" "$iops" "$mbps" "$cpu" \
    "$(( ios * bytes ))" "$ios" >>"$RESULTS"
  log "round $rd $w $t: $iops IOPS, $mbps MB/s, target CPU ${cpu}s"
}

measure_loopback() { # measure_loopback ROUND
  local out="$WORK/iperf.$1.json" mbps
  iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$IPERF_SECS" -J >"$out" 2>/dev/null || true
  mbps=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.1f" % (d["end"]["sum_received"]["bits_per_second"]/8e6))' "$out" 2>/dev/null || echo nan)
  printf '%s\tloopback\tiperf3 single stream\tiperf3\t\t%s\t\t\t\t\n' "$1" "$mbps" >>"$RESULTS"
  log "round $1 loopback: $mbps MB/s"
}

measure_syscalls() { # one extra run per target and workload under strace -c: syscalls per I/O
  local w="$1" t="$2" sout="$WORK/strace.$w.$t.txt" spid iops ios total
  ensure_up "$t"
  strace -c -f -q -p "${PID[$t]}" -o "$sout" &
  spid=$!; sleep 0.5
  read -r iops ios < <(run_load "$w" "$t" "$DURATION" "$WRITE_COUNT" "$WORK/strace-run.$w.$t.out")
  kill -INT "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
  total=$(awk '$NF == "total" {print $4}' "$sout")
  local per; per=$(awk -v s="${total:-0}" -v n="$ios" 'BEGIN {if (n > 0) printf "%.2f", s / n; else print "nan"}')
  printf 'strace\t%s\t%s\t%s\t\t\t\t\t%s\t%s\n' "$w" "$(workload_desc "$w")" "$t" "$ios" "$per" >>"$RESULTS"
  log "strace $w $t: $per syscalls/IO (${total:-?} calls, $ios I/Os under strace); top: $(awk 'NR>2 && $NF != "total" && NF>=5 && $4 ~ /^[0-9]+$/ {print $4, $NF}' "$sout" | sort -rn | head -5 | awk '{printf "%s=%s ", $2, $1}')"
}

# --- run ----------------------------------------------------------------------------------
IFS=, read -r -a TLIST <<<"$TARGETS"
IFS=, read -r -a WLIST <<<"$WORKLOADS"
for t in "${TLIST[@]}"; do "start_$t"; log "$t up: ${URL[$t]} (pid ${PID[$t]})"; done

IPERF_PORT=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" >"$WORK/iperf3-server.log" 2>&1 &
IPERF_PID=$!
wait_listen "$IPERF_PORT" "$IPERF_PID" iperf3-server

log "warm-up: each workload once per target (${WARM_SECS}s)"
for t in "${TLIST[@]}"; do
  for w in "${WLIST[@]}"; do ensure_up "$t"; run_load "$w" "$t" "$WARM_SECS" $(( WRITE_COUNT / 10 )) "$WORK/warm.$w.$t.out" >/dev/null; done
done

for (( r = 1; r <= ROUNDS; r++ )); do
  measure_loopback "$r"
  for w in "${WLIST[@]}"; do
    n=${#TLIST[@]}
    for (( i = 0; i < n; i++ )); do measure "$r" "$w" "${TLIST[$(( (i + r - 1) % n ))]}"; done
  done
done

if [[ $SYSCALLS == 1 ]]; then
  for w in "${WLIST[@]}"; do for t in "${TLIST[@]}"; do measure_syscalls "$w" "$t"; done; done
fi

{
  echo "DATE=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "MACHINE=$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
  echo "VERSIONS=tgt $(dpkg-query -W -f '${Version}' tgt 2>/dev/null || echo ?), istgt $(dpkg-query -W -f '${Version}' istgt 2>/dev/null || echo ?), libiscsi $(dpkg-query -W -f '${Version}' libiscsi-bin 2>/dev/null || echo ?), qemu-img $(dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null || echo ?), .NET $(dotnet --version 2>/dev/null || echo ?), sluice $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo ?)"
  echo "COMMAND=$CMDLINE"
  echo "ROUNDS=$ROUNDS"; echo "DURATION=$DURATION"; echo "SIZE_MIB=$SIZE_MIB"; echo "SLUICE_LUN=$SLUICE_LUN"
} >"$WORK/meta.env"

python3 "$HERE/peer-targets/summarize.py" "$RESULTS" "$WORK/meta.env" | tee "$WORK/summary.md"
if [[ -n "$OUT" ]]; then cp "$WORK/summary.md" "$OUT"; cp "$RESULTS" "${OUT%.md}.tsv"; log "wrote $OUT"; fi
if [[ -n "$SLUICE_DLL" ]] && dotnet "$SLUICE_DLL" --help 2>/dev/null | grep -qE '^ +bench '; then
  log "note: 'sluice bench' exists; QD1 latency percentiles are not yet wired into this script"
fi
