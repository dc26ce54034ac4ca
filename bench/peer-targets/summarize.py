#!/usr/bin/env python3
"""Summarize bench/peer-targets.sh results into markdown tables.

Input: the run's results.tsv (one line per run, see the header the script writes) and meta.env
(KEY=VALUE lines: date, machine, command, rounds...). Output: markdown on stdout.

Every figure is a median over rounds with its spread (min-max); ratios are medians of the
per-round paired ratios (the runs of one round sit next to each other in time, so they share
the machine's drift), with their min-max.
"""
import csv
import statistics
import sys
from collections import defaultdict

TARGET_ORDER = ["tgt", "istgt", "sluice"]


def load_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                meta[k] = v
    return meta


def fnum(x):
    try:
        v = float(x)
        return v if v == v else None  # NaN -> None
    except (TypeError, ValueError):
        return None


def med_span(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    m = statistics.median(values)
    if len(values) == 1:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(values))}–{fmt(max(values))})"


def f_iops(v):
    return f"{v / 1000:.1f}k" if v >= 10000 else f"{v:.0f}"


def f_mbs(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def f_ratio(v):
    return f"{v:.2f}×"


def f_pct(v):
    return f"{v * 100:.1f}%"


def main():
    results, meta_path = sys.argv[1], sys.argv[2]
    meta = load_meta(meta_path)
    rows = []
    syscalls = {}  # (workload, target) -> syscalls per I/O, from the separate strace runs
    with open(results) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            if r["round"] == "strace":
                syscalls[(r["workload"], r["target"])] = fnum(r["syscalls_per_io"])
            else:
                rows.append(r)

    workloads = []
    for r in rows:
        if r["workload"] != "loopback" and r["workload"] not in workloads:
            workloads.append(r["workload"])
    desc = {r["workload"]: r["desc"] for r in rows}

    # (workload, target) -> round -> row
    by = defaultdict(dict)
    for r in rows:
        by[(r["workload"], r["target"])][r["round"]] = r

    loop_mbs = {rd: fnum(r["mbps"]) for rd, r in by[("loopback", "iperf3")].items()}
    loop_vals = [v for v in loop_mbs.values() if v]

    out = []
    p = out.append
    p(f"Measured {meta.get('DATE', '?')} on {meta.get('MACHINE', '?')}.")
    p("")
    p(f"Versions: {meta.get('VERSIONS', '?')}. Sluice LUN: `{meta.get('SLUICE_LUN', '?')}`; "
      f"tgt and istgt: a {meta.get('SIZE_MIB', '?')} MiB file in /dev/shm. "
      f"{meta.get('ROUNDS', '?')} rounds of {meta.get('DURATION', '?')} s per run, targets in rotation "
      f"within each workload; initiator on the same 2 cores.")
    p("")
    if loop_vals:
        p(f"Loopback ceiling (iperf3, one TCP stream on 127.0.0.1): "
          f"{med_span([v * 8 / 1000 for v in loop_vals], lambda v: f'{v:.1f}')} Gbit/s "
          f"= {med_span(loop_vals, f_mbs)} MB/s.")
        p("")
    p("Command: `" + meta.get("COMMAND", "?") + "`")
    p("")

    # The README table: one line per workload.
    p("| workload | tgt | istgt | sluice | sluice/tgt | sluice/istgt | sluice % of loopback |")
    p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for w in workloads:
        cells = []
        for t in TARGET_ORDER:
            rs = by.get((w, t), {})
            iops = [fnum(r["iops"]) for r in rs.values()]
            mbs = [fnum(r["mbps"]) for r in rs.values()]
            if not any(v is not None for v in iops):
                cells.append("n/a")
            elif "1m" in w or "64k" in w:
                cells.append(med_span(mbs, f_mbs) + " MB/s")
            else:
                cells.append(med_span(iops, f_iops) + " IOPS")
        ratios = []
        for peer in ("tgt", "istgt"):
            rr = []
            for rd, s in by.get((w, "sluice"), {}).items():
                o = by.get((w, peer), {}).get(rd)
                sv, ov = fnum(s["iops"]), fnum(o["iops"]) if o else None
                if sv and ov:
                    rr.append(sv / ov)
            ratios.append(med_span(rr, f_ratio))
        frac = []
        for rd, s in by.get((w, "sluice"), {}).items():
            sv, lv = fnum(s["mbps"]), loop_mbs.get(rd)
            if sv and lv:
                frac.append(sv / lv)
        cells += ratios + [med_span(frac, f_pct)]
        p(f"| {desc.get(w, w)} | " + " | ".join(cells) + " |")
    p("")
    p("Cells: median (min–max) over rounds. Ratios: median (min–max) of per-round paired ratios.")
    p("")

    # Detail: IOPS, MB/s, CPU per GB and per I/O, syscalls per I/O where measured.
    have_sys = any(v is not None for v in syscalls.values())
    p("| workload | target | IOPS | MB/s | target CPU s/GB | target CPU µs/IO" +
      (" | syscalls/IO |" if have_sys else " |"))
    p("| --- | --- | ---: | ---: | ---: | ---:" + (" | ---: |" if have_sys else " |"))
    for w in workloads:
        for t in TARGET_ORDER:
            rs = by.get((w, t), {})
            if not rs:
                continue
            iops = [fnum(r["iops"]) for r in rs.values()]
            mbs = [fnum(r["mbps"]) for r in rs.values()]
            cpu = sum(fnum(r["cpu_s"]) or 0 for r in rs.values() if fnum(r["iops"]))
            byts = sum(fnum(r["bytes"]) or 0 for r in rs.values() if fnum(r["iops"]))
            ios = sum(fnum(r["ios"]) or 0 for r in rs.values() if fnum(r["iops"]))
            per_gb = f"{cpu / (byts / 1e9):.2f}" if byts else "n/a"
            per_io = f"{cpu * 1e6 / ios:.1f}" if ios else "n/a"
            line = (f"| {desc.get(w, w)} | {t} | {med_span(iops, f_iops)} | {med_span(mbs, f_mbs)} | "
                    f"{per_gb} | {per_io}")
            if have_sys:
                sc = syscalls.get((w, t))
                line += f" | {sc:.2f}" if sc is not None else " | n/a"
            p(line + " |")
    p("")
    p("CPU: the target process's utime+stime (/proc/PID/stat, all threads) over its runs, divided "
      "by the bytes or I/Os those runs moved; 10 ms tick resolution." +
      (" Syscalls/IO: one extra run per cell under `strace -c -f` (slower, but the count per I/O holds)."
       if have_sys else ""))
    print("\n".join(out))


if __name__ == "__main__":
    main()
