#!/usr/bin/env bash
# Conformance runner: libiscsi's iscsi-test-cu, one top-level suite at a time, against the
# target under test. Parses every test as PASSED / FAILED / SKIPPED, prints a per-suite table
# and compares the real passes per suite against a baseline file.
#
#   test/conformance/run.sh [options] [URL|auto]
#
# With no URL (or "auto") the runner starts the target itself on free loopback ports:
# `sluice serve` (default) or tgtd (--peer tgt), with two portals serving the same LUN, so every
# suite gets a second (multipath) URL. See docs/testing.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

usage() {
  cat <<'EOF'
usage: test/conformance/run.sh [options] [URL|auto]

  URL                 iscsi://HOST:PORT/IQN/LUN of an already running target (no extra LUNs
                      unless --ro-url / --removable-url are given); "auto" (default) starts one
  --peer sluice|tgt   which target to start in auto mode (default: sluice)
  --all               run every SCSI.* and iSCSI.* suite, not only the default set
  --suite NAME        run only this suite (repeatable), e.g. --suite Read10 --suite iSCSITMF
  --no-extra-luns     don't run the read-only / removable LUN variants (ReadOnly@ro, ...)
  --ro-url URL        read-only LUN for the @ro variants (URL mode)
  --removable-url URL removable LUN for the @removable variants (URL mode)
  --mp-url URL        second path to the same LUN as URL, passed to every suite as
                      iscsi-test-cu's multipath URL (URL mode; auto mode starts a second portal)
  --slow-url URL      LUN whose SANITIZE takes seconds, for Sanitize.Reset (URL mode)
  --allow-sanitize    pass --allow-sanitize (SANITIZE destroys the LUN's data); on in auto mode
  --no-sanitize       don't, even in auto mode (the Sanitize tests then skip)
  --baseline FILE     baseline to compare with (default: test/conformance/baseline.txt,
                      or baseline-tgt.txt with --peer tgt)
  --update-baseline   rewrite the baseline with this run's passes (suites not run are kept)
  --timeout SECS      per-suite timeout; a suite that hangs counts its unfinished tests as
                      failed (default: 120)
  --budget SECS       whole-run budget; suites not started in time count as failed (default: 450)
  --out DIR           keep logs here (default: a new directory under /tmp)
  --sluice-dll PATH   sluice.dll to start (default: src/Sluice.Cli/bin/Release/net10.0/sluice.dll)
  --summary-file F    also write "passed failed skipped regressions" totals to F (for scripts)
EOF
}

PEER=sluice
URL=auto
ALL=0
EXTRA=1
SUITES=()
RO_URL=""
RM_URL=""
MP_URL=""
SLOW_URL=""
SANITIZE=auto
BASELINE=""
UPDATE=0
SUITE_TIMEOUT=120
BUDGET=450
OUT=""
SLUICE_DLL=""
SUMMARY_FILE=""
INITIATOR="iqn.2026-11.dev.sluice:test-client"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --peer) PEER="$2"; shift 2 ;;
    --all) ALL=1; shift ;;
    --suite) SUITES+=("$2"); shift 2 ;;
    --no-extra-luns) EXTRA=0; shift ;;
    --ro-url) RO_URL="$2"; shift 2 ;;
    --removable-url) RM_URL="$2"; shift 2 ;;
    --mp-url) MP_URL="$2"; shift 2 ;;
    --slow-url) SLOW_URL="$2"; shift 2 ;;
    --allow-sanitize) SANITIZE=1; shift ;;
    --no-sanitize) SANITIZE=0; shift ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    --update-baseline) UPDATE=1; shift ;;
    --timeout) SUITE_TIMEOUT="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --sluice-dll) SLUICE_DLL="$2"; shift 2 ;;
    --summary-file) SUMMARY_FILE="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) URL="$1"; shift ;;
  esac
done

case "$PEER" in sluice|tgt) ;; *) echo "run.sh: --peer must be sluice or tgt" >&2; exit 2 ;; esac
if [[ -z "$BASELINE" ]]; then
  if [[ "$PEER" == tgt ]]; then BASELINE="$ROOT/test/conformance/baseline-tgt.txt"
  else BASELINE="$ROOT/test/conformance/baseline.txt"; fi
fi
for tool in iscsi-test-cu timeout; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install libiscsi-bin coreutils)" >&2; exit 2; }
done
[[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/sluice-conformance.XXXXXX)"
mkdir -p "$OUT"

# The default set: the suites named in the conformance issue (#2) and the block command set
# issue (#3: thin provisioning, ATS, XCOPY, reservations, SANITIZE, multipath). --all adds the
# rest of SCSI.* and iSCSI.* and the slow rows (Sanitize.Reset@slow, about 70 s).
DEFAULT_SUITES=(Inquiry Mandatory ModeSense6 NoMedia Prefetch10 Prefetch16 PreventAllow Read6
  Read10 Read12 Read16 ReadCapacity10 ReadCapacity16 StartStopUnit TestUnitReady Verify10
  Verify12 Verify16 Write10 Write12 Write16 WriteVerify10 WriteVerify12 WriteVerify16
  iSCSIcmdsn iSCSIdatasn iSCSIResiduals iSCSITMF
  CompareAndWrite ExtendedCopy GetLBAStatus MultipathIO OrWrite PrinReadKeys
  PrinServiceactionRange PrinReportCapabilities ProutRegister ProutReserve ProutClear
  ProutPreempt ReadDefectData10 ReadDefectData12 ReceiveCopyResults ReportSupportedOpcodes
  Reserve6 Sanitize Unmap WriteAtomic16 WriteSame10 WriteSame16)
# Suites that only test something on a write-protected or a removable LUN (they skip, or pass
# vacuously, on a plain disk): run again against such a LUN as SUITE@ro / SUITE@removable.
RO_VARIANTS=(ReadOnly)
RM_VARIANTS=(NoMedia PreventAllow StartStopUnit)

# SCSI.Sanitize.Reset checks that a SANITIZE goes on through task management, resets and a new
# login, seconds after it started: only a LUN whose sanitize lasts that long can pass it, so it
# runs on its own against a slow model: LUN (row Sanitize.Reset@slow) and the rest of the suite
# on the main LUN.
SLOW_TESTS=(Reset)

LISTING="$OUT/listing.txt"
iscsi-test-cu -l > "$LISTING" 2>&1 || true
family_of() { awk -F. -v s="$1" 'NF==2 && ($1=="SCSI"||$1=="iSCSI") && $2==s {print $1; exit}' "$LISTING"; }
expected_tests() { awk -F. -v f="$1" -v s="$2" 'NF==3 && $1==f && $2==s {print $3}' "$LISTING"; }

ROWS=()   # "name|suite|urlkind|tests" (tests: empty = all, "only:A,B" or "except:A,B")
if [[ ${#SUITES[@]} -gt 0 ]]; then
  base=("${SUITES[@]}")
elif [[ $ALL -eq 1 ]]; then
  mapfile -t base < <(awk -F. 'NF==2 && ($1=="SCSI"||$1=="iSCSI") {print $2}' "$LISTING")
else
  base=("${DEFAULT_SUITES[@]}")
fi
# libiscsi 1.19's MultipathIO.CompareAndWrite zeroes LBAs 0-255 but then tests 0-256 (one past),
# so LBA 256 must already hold zeros: the suite runs first, on the fresh (all-zero) LUN.
if [[ " ${base[*]} " == *" MultipathIO "* ]]; then
  rest=(); for s in "${base[@]}"; do [[ "$s" == MultipathIO ]] || rest+=("$s"); done
  base=(MultipathIO "${rest[@]}")
fi
SPLIT_SLOW=0
if [[ $EXTRA -eq 1 && ( ( "$URL" == auto && "$PEER" == sluice ) || -n "$SLOW_URL" ) ]]; then SPLIT_SLOW=1; fi
slow_list=$(IFS=,; echo "${SLOW_TESTS[*]}")
for s in "${base[@]}"; do
  [[ -n "$(family_of "$s")" ]] || { echo "run.sh: no suite $s in 'iscsi-test-cu -l'" >&2; exit 2; }
  if [[ "$s" == Sanitize && $SPLIT_SLOW -eq 1 ]]; then ROWS+=("$s|$s|main|except:$slow_list")
  else ROWS+=("$s|$s|main|"); fi
done
if [[ $EXTRA -eq 1 ]]; then
  for s in "${RO_VARIANTS[@]}"; do
    if [[ ${#SUITES[@]} -eq 0 || " ${SUITES[*]} " == *" $s "* ]]; then ROWS+=("$s@ro|$s|ro|"); fi
  done
  for s in "${RM_VARIANTS[@]}"; do
    if [[ ${#SUITES[@]} -eq 0 || " ${SUITES[*]} " == *" $s "* ]]; then ROWS+=("$s@removable|$s|rm|"); fi
  done
  if [[ $SPLIT_SLOW -eq 1 && " ${base[*]} " == *" Sanitize "* && ( $ALL -eq 1 || ${#SUITES[@]} -gt 0 ) ]]; then
    for t in "${SLOW_TESTS[@]}"; do ROWS+=("Sanitize.$t@slow|Sanitize|slow|only:$t"); done
  fi
fi

if [[ "$SANITIZE" == auto ]]; then
  if [[ "$URL" == auto ]]; then SANITIZE=1; else SANITIZE=0; fi
fi

# ---------------------------------------------------------------------------------------------
# Targets under test. Everything started here is stopped by the EXIT trap.
PIDS=()
SHM_FILES=()
TGT_CONTROL=""

stop_pid() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid tid
  if [[ -n "$TGT_CONTROL" ]]; then
    # tgtd ignores SIGTERM while it has targets: delete them, then ask it to exit.
    for tid in 1 2 3; do tgtadm -C "$TGT_CONTROL" --lld iscsi --mode target --op delete --force --tid "$tid" >/dev/null 2>&1 || true; done
    tgtadm -C "$TGT_CONTROL" --mode system --op delete >/dev/null 2>&1 || true
  fi
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ ${#SHM_FILES[@]} -gt 0 ]]; then rm -f "${SHM_FILES[@]}"; fi
  if [[ -n "$TGT_CONTROL" ]]; then rm -f "/var/run/tgtd/socket.$TGT_CONTROL" "/var/run/tgtd/socket.$TGT_CONTROL.lock"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    port_open 127.0.0.1 "$p" || { echo "$p"; return 0; }
  done
  echo "run.sh: no free port found" >&2; return 1
}
# wait_port PORT PID SECS: until PORT accepts, PID is gone, or SECS pass.
wait_port() {
  local deadline=$(( SECONDS + $3 ))
  while (( SECONDS < deadline )); do
    port_open 127.0.0.1 "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# wait_url LOG PID IQN SECS: the ports `sluice serve` printed on its `url` lines for IQN, one a
# line, in portal order (it listens on port 0, so nothing else can take a port between a pick
# and the bind).
wait_url() {
  local deadline=$(( SECONDS + $4 )) lines
  while (( SECONDS < deadline )); do
    if grep -q '^ready' "$1" 2>/dev/null; then
      lines=$(grep -E "^url iscsi://127\.0\.0\.1:[0-9]+/$3/" "$1" | sed -E 's|^url iscsi://127\.0\.0\.1:([0-9]+)/.*|\1|')
      [[ -n "$lines" ]] && { echo "$lines"; return 0; }
      return 1
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

find_sluice_dll() {
  local c
  for c in "$SLUICE_DLL" "$ROOT/src/Sluice.Cli/bin/Release/net10.0/sluice.dll" \
           "$ROOT/src/Sluice.Cli/bin/Debug/net10.0/sluice.dll"; do
    [[ -n "$c" && -f "$c" ]] && { echo "$c"; return 0; }
  done
  echo "run.sh: sluice.dll not found; build first (dotnet build Sluice.slnx -c Release)" >&2
  return 1
}

MAIN_IQN="iqn.2026-11.dev.sluice:conformance"
RO_IQN="iqn.2026-11.dev.sluice:conformance-ro"
RM_IQN="iqn.2026-11.dev.sluice:conformance-rm"
SLOW_IQN="iqn.2026-11.dev.sluice:conformance-slow"
MAIN_PID=""; EXTRA_PID=""; SLUICE_STARTS=0; MAIN_LOG=""; EXTRA_STARTS=0; EXTRA_LOG=""

# start_sluice_main / start_sluice_extra set MAIN_PID / EXTRA_PID and URL, MP_URL / RO_URL,
# RM_URL, SLOW_URL.
start_sluice_main() {
  local dll ports
  dll="$(find_sluice_dll)" || return 1
  # maxTransferLength 32 MiB: libiscsi 1.19's WriteSame16.Unmap writes 65536 blocks (32 MiB) in
  # one WRITE(16) without looking at the Block Limits VPD's MAXIMUM TRANSFER LENGTH (16 MiB by
  # default), and counts the INVALID FIELD IN CDB it gets as a failure.
  # Two portals in two portal groups (two target ports, SPC-4 3.1.120) serve the one LUN: the
  # second is iscsi-test-cu's multipath URL, so MultipathIO and the multipath parts of the
  # reservation and COMPARE AND WRITE suites run across two I_T nexuses.
  cat > "$OUT/main.json" <<EOF
{
  "dataDir": "$OUT/data",
  "portals": [ { "host": "127.0.0.1", "port": 0, "groupTag": 1 },
               { "host": "127.0.0.1", "port": 0, "groupTag": 2 } ],
  "targets": [ { "name": "$MAIN_IQN", "luns": [ { "number": 0, "backend": "memory:128MiB" } ] } ],
  "limits": { "maxTransferLength": 33554432 }
}
EOF
  # Each start gets its own log, so a restart reads its own `url` lines.
  MAIN_LOG="$OUT/sluice.$(( ++SLUICE_STARTS )).log"
  dotnet "$dll" serve --config "$OUT/main.json" >"$MAIN_LOG" 2>&1 &
  MAIN_PID=$!; PIDS+=("$MAIN_PID")
  mapfile -t ports < <(wait_url "$MAIN_LOG" "$MAIN_PID" "$MAIN_IQN" 30)
  [[ ${#ports[@]} -eq 2 ]] || return 1
  URL="iscsi://127.0.0.1:${ports[0]}/$MAIN_IQN/0"
  MP_URL="iscsi://127.0.0.1:${ports[1]}/$MAIN_IQN/0"
  wait_port "${ports[0]}" "$MAIN_PID" 30 && wait_port "${ports[1]}" "$MAIN_PID" 30
}
start_sluice_extra() {
  local dll ports
  dll="$(find_sluice_dll)" || return 1
  # The read-only and removable LUNs need per-LUN settings, so they come from a config file
  # (ServerConfig: targets[].luns[].readOnly / removable). The slow LUN is a model: device of
  # 2 MB/s: a SANITIZE OVERWRITE of its 16 MiB takes about 8 s.
  cat > "$OUT/extra.json" <<EOF
{
  "dataDir": "$OUT/data-extra",
  "portals": [ { "host": "127.0.0.1", "port": 0 } ],
  "targets": [
    { "name": "$RO_IQN", "luns": [ { "number": 0, "backend": "memory:64MiB", "readOnly": true } ] },
    { "name": "$RM_IQN", "luns": [ { "number": 0, "backend": "memory:64MiB", "removable": true } ] },
    { "name": "$SLOW_IQN", "luns": [ { "number": 0, "backend": "model:16MiB:mbps=2" } ] }
  ]
}
EOF
  EXTRA_LOG="$OUT/sluice-extra.$(( ++EXTRA_STARTS )).log"
  dotnet "$dll" serve --config "$OUT/extra.json" >"$EXTRA_LOG" 2>&1 &
  EXTRA_PID=$!; PIDS+=("$EXTRA_PID")
  mapfile -t ports < <(wait_url "$EXTRA_LOG" "$EXTRA_PID" "$RM_IQN" 30)
  [[ ${#ports[@]} -ge 1 ]] || return 1
  RO_URL="iscsi://127.0.0.1:${ports[0]}/$RO_IQN/0"
  RM_URL="iscsi://127.0.0.1:${ports[0]}/$RM_IQN/0"
  SLOW_URL="iscsi://127.0.0.1:${ports[0]}/$SLOW_IQN/0"
  wait_port "${ports[0]}" "$EXTRA_PID" 30
}

tgt() { tgtadm -C "$TGT_CONTROL" --lld iscsi "$@"; }
tgt_target() { # tid iqn size params
  local img="/dev/shm/sluice-conformance-$TGT_CONTROL-$1.img"
  SHM_FILES+=("$img")
  # (called in a || context, where set -e is off: check each step)
  truncate -s "$3" "$img" || return 1
  tgt --op new --mode target --tid "$1" -T "$2" || return 1
  tgt --op new --mode logicalunit --tid "$1" --lun 1 -b "$img" || return 1
  if [[ -n "$4" ]]; then tgt --op update --mode logicalunit --tid "$1" --lun 1 --params "$4" || return 1; fi
  tgt --op bind --mode target --tid "$1" -I ALL || return 1
}
start_tgt() {
  local port port2
  command -v tgtd >/dev/null || { echo "run.sh: tgtd not found (apt-get install tgt)" >&2; return 1; }
  port="$(free_port)"
  # A private control port: its socket /var/run/tgtd/socket.N must not clash with a system tgtd.
  for _ in $(seq 1 50); do
    TGT_CONTROL=$(( 1000 + RANDOM % 30000 ))
    [[ -e "/var/run/tgtd/socket.$TGT_CONTROL" ]] || break
  done
  tgtd -f -C "$TGT_CONTROL" --iscsi "portal=127.0.0.1:$port" >>"$OUT/tgtd.log" 2>&1 &
  MAIN_PID=$!; PIDS+=("$MAIN_PID"); EXTRA_PID=$MAIN_PID
  wait_port "$port" "$MAIN_PID" 15 || return 1
  for _ in $(seq 1 50); do tgt --op show --mode target >/dev/null 2>&1 && break; sleep 0.1; done
  # tgt puts a controller at LUN 0; the disk is LUN 1.
  tgt_target 1 "$MAIN_IQN" 128M "" || return 1
  tgt_target 2 "$RO_IQN" 64M readonly=1 || return 1
  tgt_target 3 "$RM_IQN" 64M removable=1 || return 1
  URL="iscsi://127.0.0.1:$port/$MAIN_IQN/1"
  # A second portal for the multipath URL (tgt has one portal group: same TPGT, two portals).
  port2="$(free_port)"
  if tgtadm -C "$TGT_CONTROL" --lld iscsi --mode portal --op new --param "portal=127.0.0.1:$port2" >>"$OUT/tgtd.log" 2>&1 \
     && wait_port "$port2" "$MAIN_PID" 5; then
    MP_URL="iscsi://127.0.0.1:$port2/$MAIN_IQN/1"
  fi
  RO_URL="iscsi://127.0.0.1:$port/$RO_IQN/1"
  RM_URL="iscsi://127.0.0.1:$port/$RM_IQN/1"
}

AUTO=0
MAIN_OK=1; EXTRA_OK=1
if [[ "$URL" == auto ]]; then
  AUTO=1
  if [[ "$PEER" == tgt ]]; then
    start_tgt || { MAIN_OK=0; EXTRA_OK=0; }
  else
    start_sluice_main || MAIN_OK=0
    if [[ $EXTRA -eq 1 ]]; then start_sluice_extra || EXTRA_OK=0; fi
  fi
  if [[ $MAIN_OK -eq 0 ]]; then
    echo "run.sh: the $PEER target did not start (log: $OUT/); every test counts as failed" >&2
    tail -n 20 "$OUT"/*.log 2>/dev/null | sed 's/^/  | /' >&2 || true
  fi
  if [[ $EXTRA -eq 1 && $EXTRA_OK -eq 0 && $MAIN_OK -eq 1 ]]; then
    echo "run.sh: the extra-LUN $PEER target did not start (log: $OUT/sluice-extra.*.log); @ro/@removable/@slow rows fail" >&2
  fi
fi

# ---------------------------------------------------------------------------------------------
# One suite: run, parse, account.

# Parse iscsi-test-cu -V output into "TEST STATUS" lines. A test is SKIPPED when it printed
# [SKIPPED] (CUnit still calls it "passed"), unless CUnit says FAILED: a failed assertion wins.
parse_log() {
  awk '
    function flush() {
      if (name == "") return
      if (res == "FAILED") st = "FAILED"
      else if (skip) st = "SKIPPED"
      else if (res == "passed") st = "PASSED"
      else st = "INCOMPLETE"
      print name, st
      name = ""
    }
    /^  Test: / {
      flush()
      name = $2; res = ""; skip = 0
      rest = $0; sub(/^  Test: [^ ]+ \.\.\./, "", rest)
      if (rest ~ /^passed/) res = "passed"; else if (rest ~ /^FAILED/) res = "FAILED"
      if (rest ~ /\[SKIPPED\]/) skip = 1
      next
    }
    name != "" && res == "" && /\[SKIPPED\]/ { skip = 1 }
    name != "" && res == "" && /^passed/ { res = "passed" }
    name != "" && /^FAILED/ { res = "FAILED" }
    /^Run Summary:/ { flush() }
    END { flush() }
  ' "$1"
}

declare -A R_PASS R_FAIL R_SKIP R_NOTE
ORDER=()
START=$SECONDS
restart_if_dead() { # kind
  [[ $AUTO -eq 1 && "$PEER" == sluice ]] || return 0
  if [[ "$1" == main && $MAIN_OK -eq 1 ]] && ! kill -0 "$MAIN_PID" 2>/dev/null; then
    echo "  ! sluice exited; restarting it (log: $MAIN_LOG)"
    start_sluice_main || MAIN_OK=0
  fi
  if [[ "$1" != main && $EXTRA_OK -eq 1 ]] && ! kill -0 "$EXTRA_PID" 2>/dev/null; then
    echo "  ! extra sluice exited; restarting it (log: $EXTRA_LOG)"
    start_sluice_extra || EXTRA_OK=0
  fi
}

run_row() { # name suite kind tests
  local name="$1" suite="$2" kind="$3" filter="$4" fam url log rc note="" t st sel=""
  local pass=0 fail=0 skip=0
  fam="$(family_of "$suite")"
  case "$kind" in main) url="$URL" ;; ro) url="$RO_URL" ;; rm) url="$RM_URL" ;; slow) url="$SLOW_URL" ;; esac
  log="$OUT/$name.log"
  local -a all_tests expected=()
  mapfile -t all_tests < <(expected_tests "$fam" "$suite")
  for t in "${all_tests[@]}"; do
    case "$filter" in
      only:*) [[ ",${filter#only:}," == *",$t,"* ]] || continue ;;
      except:*) [[ ",${filter#except:}," != *",$t,"* ]] || continue ;;
    esac
    expected+=("$t")
  done
  declare -A seen=()

  if (( SECONDS - START >= BUDGET )); then
    note="not run: budget of ${BUDGET}s used"
  elif [[ -z "$url" ]]; then
    note="not run: no URL for a $kind LUN"
  elif [[ $AUTO -eq 1 && ( ( "$kind" == main && $MAIN_OK -eq 0 ) || ( "$kind" != main && $EXTRA_OK -eq 0 ) ) ]]; then
    note="not run: target not running"
  else
    restart_if_dead "$kind"
    case "$kind" in main) url="$URL" ;; ro) url="$RO_URL" ;; rm) url="$RM_URL" ;; slow) url="$SLOW_URL" ;; esac
    # --test takes a comma-separated list of FAMILY.SUITE.TEST names.
    if [[ -n "$filter" ]]; then
      for t in "${expected[@]}"; do sel+="${sel:+,}$fam.$suite.$t"; done
    else
      sel="$fam.$suite"
    fi
    local args=(-V --dataloss -i "$INITIATOR" "--test=$sel")
    [[ $SANITIZE -eq 1 ]] && args+=(--allow-sanitize)
    args+=("$url")
    # The second path to the main LUN: every suite gets it, so the multipath parts run across
    # two I_T nexuses. Without one, MultipathIO gets the same portal twice (two sessions).
    if [[ "$kind" == main && -n "$MP_URL" ]]; then args+=("$MP_URL")
    elif [[ "$suite" == MultipathIO ]]; then args+=("$url"); fi
    rc=0
    (cd "$OUT" && timeout -k 5 "$SUITE_TIMEOUT" iscsi-test-cu "${args[@]}") >"$log" 2>&1 || rc=$?
    while read -r t st; do
      [[ -n "$t" ]] || continue
      seen[$t]=1
      case "$st" in
        PASSED) pass=$((pass + 1)) ;;
        SKIPPED) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)) ;;
      esac
    done < <(parse_log "$log")
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then note="HANG: killed after ${SUITE_TIMEOUT}s"
    elif [[ $rc -ne 0 && $rc -ne 1 ]]; then note="exit $rc: $(grep -m1 -iE 'fail|error' "$log" | cut -c1-60 || true)"
    fi
  fi
  # Every listed test that did not report (hang, crash, login failure, not run) is a failure.
  for t in "${expected[@]}"; do
    [[ -n "${seen[$t]:-}" ]] || fail=$((fail + 1))
  done
  R_PASS[$name]=$pass; R_FAIL[$name]=$fail; R_SKIP[$name]=$skip; R_NOTE[$name]="$note"
  ORDER+=("$name")
}

echo "conformance: peer=$PEER url=$URL${MP_URL:+ multipath=$MP_URL} sanitize=$SANITIZE logs=$OUT"
for row in "${ROWS[@]}"; do
  IFS='|' read -r name suite kind filter <<<"$row"
  run_row "$name" "$suite" "$kind" "$filter"
done
ELAPSED=$(( SECONDS - START ))

# ---------------------------------------------------------------------------------------------
# Table, baseline comparison.
declare -A BASE
if [[ -f "$BASELINE" ]]; then
  while read -r k v _; do
    [[ -z "$k" || "$k" == \#* || "$k" == TOTAL ]] && continue
    BASE[$k]="$v"
  done < "$BASELINE"
fi

TP=0; TF=0; TS=0; TB=0; REGRESSIONS=0
IMPROVED=(); REGRESSED=()
printf '%-26s %6s %6s %7s %8s  %s\n' suite passed failed skipped baseline note
for name in "${ORDER[@]}"; do
  p=${R_PASS[$name]}; f=${R_FAIL[$name]}; s=${R_SKIP[$name]}; b=${BASE[$name]:-0}
  printf '%-26s %6d %6d %7d %8d  %s\n' "$name" "$p" "$f" "$s" "$b" "${R_NOTE[$name]}"
  TP=$((TP + p)); TF=$((TF + f)); TS=$((TS + s)); TB=$((TB + b))
  if (( p < b )); then REGRESSED+=("$name: $b -> $p"); REGRESSIONS=$((REGRESSIONS + b - p))
  elif (( p > b )); then IMPROVED+=("$name: $b -> $p"); fi
done
printf '%-26s %6d %6d %7d %8d\n' TOTAL "$TP" "$TF" "$TS" "$TB"
echo "conformance: ${#ORDER[@]} suites in ${ELAPSED}s; $TP passed, $TF failed, $TS skipped; baseline $TB"

if [[ ${#IMPROVED[@]} -gt 0 ]]; then
  echo "improved over baseline (raise it with --update-baseline):"
  printf '  %s\n' "${IMPROVED[@]}"
fi
if [[ ${#REGRESSED[@]} -gt 0 ]]; then
  echo "REGRESSED below baseline ($REGRESSIONS passes lost; logs in $OUT):"
  printf '  %s\n' "${REGRESSED[@]}"
fi

if [[ $UPDATE -eq 1 ]]; then
  declare -A NEWB
  for k in "${!BASE[@]}"; do NEWB[$k]=${BASE[$k]}; done
  for name in "${ORDER[@]}"; do NEWB[$name]=${R_PASS[$name]}; done
  {
    # Keep the file's leading comment lines.
    if [[ -f "$BASELINE" ]]; then sed -n '/^#/!q;p' "$BASELINE"
    else echo "# passes per iscsi-test-cu suite that must not drop (test/conformance/run.sh --update-baseline)"; fi
    total=0
    for k in $(printf '%s\n' "${!NEWB[@]}" | sort); do
      echo "$k ${NEWB[$k]}"; total=$((total + NEWB[$k]))
    done
    echo "TOTAL $total"
  } > "$BASELINE.tmp"
  mv "$BASELINE.tmp" "$BASELINE"
  echo "baseline written: $BASELINE"
fi

if [[ -n "$SUMMARY_FILE" ]]; then
  echo "$TP $TF $TS $REGRESSIONS" > "$SUMMARY_FILE"
fi

if [[ ${#REGRESSED[@]} -gt 0 && $UPDATE -eq 0 ]]; then exit 1; fi
if [[ "${SLUICE_TARGET_REQUIRED:-0}" == 1 && $AUTO -eq 1 && $MAIN_OK -eq 0 ]]; then
  echo "run.sh: SLUICE_TARGET_REQUIRED=1 and the target did not start" >&2
  exit 1
fi
exit 0
