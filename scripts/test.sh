#!/usr/bin/env bash
# The test command: ./scripts/test.sh [--quick] [--no-install]
#
#   1. installs the real peers the interop and conformance tests use, when missing
#      (libiscsi-bin, tgt, qemu-utils, qemu-block-extra)
#   2. dotnet build Sluice.slnx -c Release
#   3. dotnet test Sluice.slnx -c Release --no-build    (unit tests + test/Sluice.Interop.Tests)
#   4. test/conformance/run.sh against `sluice serve`   (iscsi-test-cu, compared to baseline)
#
# --quick       unit tests only: no peers, no interop tests, no conformance
# --no-install  never apt-get install; tests whose peer is missing are skipped
#
# Ends with "N passed, N failed, N skipped" (dotnet tests + conformance; a conformance test
# failing counts as failed only when its suite dropped below test/conformance/baseline.txt)
# and exits non-zero when anything failed. See docs/testing.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

QUICK=0
INSTALL=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# A `sluice serve` that doesn't start fails the interop tests and the conformance run.
# (0 turns that into "skipped": only for bringing up a target that doesn't serve yet.)
: "${SLUICE_TARGET_REQUIRED:=1}"
export SLUICE_TARGET_REQUIRED
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

WORK="$(mktemp -d /tmp/sluice-test.XXXXXX)"
PASSED=0; FAILED=0; SKIPPED=0
STEPS_FAILED=()
TIMES=()

step_time() { TIMES+=("$(printf '%-12s %4ds' "$1" "$2")"); }

install_peers() {
  local pkgs=() t
  for t in iscsi-test-cu iscsi-ls iscsi-inq iscsi-readcapacity16 iscsi-perf; do
    command -v "$t" >/dev/null 2>&1 || { pkgs+=(libiscsi-bin); break; }
  done
  command -v tgtd >/dev/null 2>&1 && command -v tgtadm >/dev/null 2>&1 || pkgs+=(tgt)
  command -v qemu-img >/dev/null 2>&1 || pkgs+=(qemu-utils)
  # qemu's iscsi:// block driver lives in qemu-block-extra.
  dpkg -s qemu-block-extra >/dev/null 2>&1 || pkgs+=(qemu-block-extra)
  command -v timeout >/dev/null 2>&1 || pkgs+=(coreutils)
  [[ ${#pkgs[@]} -gt 0 ]] || return 0
  echo "test.sh: installing ${pkgs[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
      echo "test.sh: not root and no sudo: cannot install ${pkgs[*]}; tests that need them are skipped" >&2
      return 0
    fi
  fi
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
}

# Prints "failed passed skipped" summed over every test project's
# "Passed!/Failed!  - Failed: N, Passed: N, Skipped: N, ..." line.
count_dotnet() {
  grep -E '(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$1" \
    | sed -E 's/.*Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+).*/\1 \2 \3/' \
    | awk '{f += $1; p += $2; s += $3} END {print f+0, p+0, s+0}'
}

if [[ $QUICK -eq 0 && $INSTALL -eq 1 ]]; then
  t0=$SECONDS
  install_peers
  step_time install $((SECONDS - t0))
fi

# --- build ---------------------------------------------------------------------------------
t0=$SECONDS
echo "== dotnet build Sluice.slnx -c Release"
if ! dotnet build Sluice.slnx -c Release -nologo -clp:ErrorsOnly 2>&1 | tee "$WORK/build.log"; then
  STEPS_FAILED+=(build)
  FAILED=$((FAILED + 1))
fi
step_time build $((SECONDS - t0))

# --- unit + interop tests ------------------------------------------------------------------
if [[ ${#STEPS_FAILED[@]} -eq 0 ]]; then
  t0=$SECONDS
  filter=()
  [[ $QUICK -eq 1 ]] && filter=(--filter "Category!=Interop")
  echo "== dotnet test Sluice.slnx -c Release --no-build ${filter[*]}"
  rc=0
  dotnet test Sluice.slnx -c Release --no-build "${filter[@]}" 2>&1 | tee "$WORK/test.log" || rc=$?
  read -r f p s < <(count_dotnet "$WORK/test.log")
  FAILED=$((FAILED + f)); PASSED=$((PASSED + p)); SKIPPED=$((SKIPPED + s))
  echo "dotnet test: $p passed, $f failed, $s skipped"
  if [[ $rc -ne 0 ]]; then
    STEPS_FAILED+=("dotnet test (exit $rc)")
    # A crash or a build problem that printed no counts still has to count as a failure.
    [[ $f -gt 0 ]] || FAILED=$((FAILED + 1))
  fi
  step_time "dotnet test" $((SECONDS - t0))
fi

# --- conformance ---------------------------------------------------------------------------
if [[ $QUICK -eq 0 && ${#STEPS_FAILED[@]} -eq 0 ]]; then
  t0=$SECONDS
  echo "== test/conformance/run.sh (sluice serve)"
  rc=0
  test/conformance/run.sh --out "$WORK/conformance" --summary-file "$WORK/conformance.sum" || rc=$?
  if [[ -s "$WORK/conformance.sum" ]]; then
    read -r cp cf cs creg < "$WORK/conformance.sum"
    PASSED=$((PASSED + cp)); SKIPPED=$((SKIPPED + cs)); FAILED=$((FAILED + creg))
    echo "conformance: $cp passed, $cf failing ($creg below baseline, the rest known), $cs skipped"
  else
    FAILED=$((FAILED + 1))
  fi
  [[ $rc -eq 0 ]] || STEPS_FAILED+=("conformance (exit $rc)")
  step_time conformance $((SECONDS - t0))
fi

echo "== timings"
printf '  %s\n' "${TIMES[@]}"
if [[ ${#STEPS_FAILED[@]} -gt 0 ]]; then
  echo "FAILED steps: ${STEPS_FAILED[*]} (logs in $WORK)"
else
  rm -rf "$WORK"
fi
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[[ ${#STEPS_FAILED[@]} -eq 0 && $FAILED -eq 0 ]]
