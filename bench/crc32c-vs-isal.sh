#!/usr/bin/env bash
# Side-by-side CRC32C throughput: Sluice's start-up kernel vs Intel ISA-L crc32_iscsi (its own
# dispatch) and ISA-L's SSE4.2 path (crc32_iscsi_00). The two run in alternation, ROUNDS times,
# so a noisy shared machine hits both alike. Each run is 7 x ~100 ms per size; the table shows the
# median (min-max) over all runs of all rounds, in GB/s (1e9 bytes/s), single thread.
#
#   bench/crc32c-vs-isal.sh                       # 5 rounds at 512 4096 65536 1048576
#   ROUNDS=3 SIZES="4096 65536" bench/crc32c-vs-isal.sh
#   ARTIFACTS=/tmp/art-crc (default) is the private dotnet artifacts path for the build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-5}
SIZES=${SIZES:-"512 4096 65536 1048576"}
ARTIFACTS=${ARTIFACTS:-/tmp/art-crc}

if [[ ! -f /usr/include/isa-l/crc.h ]]; then
    echo "installing libisal-dev" >&2
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y libisal-dev; else sudo apt-get install -y libisal-dev; fi
fi

WORK=$(mktemp -d /tmp/crc32c-vs-isal.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

gcc -O2 -Wall -Wextra -std=c11 -o "$WORK/isal_bench" "$ROOT/bench/crc32c-isal/isal_bench.c" -lisal
if ! dotnet build "$ROOT/bench/Sluice.Benchmarks" -c Release --artifacts-path "$ARTIFACTS" -nologo >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    exit 1
fi
SLUICE=(dotnet "$ARTIFACTS/bin/Sluice.Benchmarks/release/Sluice.Benchmarks.dll" crc-gbps)

# shellcheck disable=SC2086 # SIZES is a word list on purpose
for ((round = 1; round <= ROUNDS; round++)); do
    echo "round $round/$ROUNDS" >&2
    "${SLUICE[@]}" $SIZES >>"$WORK/sluice.txt"
    "$WORK/isal_bench" iscsi $SIZES >>"$WORK/isal.txt"
    "$WORK/isal_bench" sse $SIZES >>"$WORK/isal-sse.txt"
done

# "size median min max run1..run7" lines -> median(min-max) over every run of every round.
stats() { # file size -> "median min max"
    awk -v s="$2" '$1 == s { for (i = 5; i <= NF; i++) print $i }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f %.2f", m, v[1], v[NR] }'
}

echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "Sluice: $(grep -m1 '^#' "$WORK/sluice.txt" | sed 's/^# sluice //')"
echo "ISA-L: crc32_iscsi (dispatched) and crc32_iscsi_00 (SSE4.2); $ROUNDS rounds x 7 runs, GB/s median (min-max)"
echo
printf '%-9s | %-22s | %-22s | %-6s | %-22s | %-9s\n' size "Sluice" "ISA-L crc32_iscsi" ratio "ISA-L SSE4.2 (_00)" "ratio sse"
printf -- '----------+------------------------+------------------------+--------+------------------------+----------\n'
for size in $SIZES; do
    read -r sm smin smax <<<"$(stats "$WORK/sluice.txt" "$size")"
    read -r im imin imax <<<"$(stats "$WORK/isal.txt" "$size")"
    read -r em emin emax <<<"$(stats "$WORK/isal-sse.txt" "$size")"
    printf '%-9s | %6.2f (%6.2f-%6.2f) | %6.2f (%6.2f-%6.2f) | %6.2f | %6.2f (%6.2f-%6.2f) | %6.2f\n' \
        "$size" "$sm" "$smin" "$smax" "$im" "$imin" "$imax" "$(awk -v a="$sm" -v b="$im" 'BEGIN{printf "%.2f", a/b}')" \
        "$em" "$emin" "$emax" "$(awk -v a="$sm" -v b="$em" 'BEGIN{printf "%.2f", a/b}')"
done
