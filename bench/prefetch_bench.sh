#!/usr/bin/env bash
# The prefetch benchmark (issue #7): cold start of a workload (default: the python image,
# python3 -c 'print("hello")') lazily pulled through lazysnap, without a trace (every chunk on
# demand) and with the access trace a first run recorded (pushed to the registry with
# `lazysnap trace push`, pulled into each fresh lazysnapd root with `lazysnap trace pull`),
# with the registry behind lazysnap-shaper (bandwidth and round-trip time).
#
# It drives the cold-start harness (bench/coldstart: fresh containerd and lazysnapd per run,
# page cache dropped, bytes counted by the shaper) with the modes lazysnap and lazysnap-trace,
# then prints one table: time from the start of the pull to "hello" (median and range), bytes
# through the link, registry requests, and the trace's gain. Needs root.
#
#   bash bench/prefetch_bench.sh [--runs N] [--networks LIST] [--workloads LIST] [--out DIR]
#
# Defaults: 3 runs; networks loopback,100mbit-20ms,20mbit-50ms (presets of
# bench/coldstart/workloads.py, or RATE-RTT such as 50mbit-10ms); workload python.
# LAZYSNAP_BUILD_DIR: the build directory (default build/). Figures: docs/prefetch.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
runs=3
networks=loopback,100mbit-20ms,20mbit-50ms
workloads=python
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --networks) networks=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "prefetch_bench: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "prefetch_bench: needs root" >&2; exit 2; }
[ -n "$out" ] || out=$(mktemp -d /tmp/ls-prefetch-bench.XXXXXX)
mkdir -p "$out"

python3 "$ROOT/bench/coldstart/coldstart.py" --workloads "$workloads" \
  --modes lazysnap,lazysnap-trace --networks "$networks" --runs "$runs" --no-charts \
  --out "$out" >"$out/harness.txt"

python3 - "$out/results.json" <<'EOF'
import json, statistics, sys
doc = json.load(open(sys.argv[1]))
cells = {}
for r in doc["runs"]:
    cells.setdefault((r["network"], r["workload"]), {}).setdefault(r["mode"], []).append(r)
def med(rows, k):
    v = [r[k] for r in rows if r.get(k) is not None]
    return statistics.median(v) if v else None
print(f"{'network':<14} {'workload':<9} {'mode':<15} {'runs':>4} {'to hello (s)':>12} "
      f"{'range (s)':>13} {'MB fetched':>10} {'requests':>8}  trace gain")
for (net, wl), modes in cells.items():
    base = med(modes.get("lazysnap", []), "total_s")
    for mode in ("lazysnap", "lazysnap-trace"):
        rows = modes.get(mode)
        if not rows:
            continue
        t = med(rows, "total_s")
        lo, hi = min(r["total_s"] for r in rows), max(r["total_s"] for r in rows)
        gain = f"{base / t:.2f}x" if mode == "lazysnap-trace" and base and t else ""
        print(f"{net:<14} {wl:<9} {mode:<15} {len(rows):>4} {t:>12.2f} {lo:>6.2f}-{hi:<6.2f} "
              f"{med(rows, 'bytes_down') / 1e6:>10.1f} {med(rows, 'requests'):>8.0f}  {gain}")
for n in doc.get("notes", []):
    print(f"note: {n}")
print(f"({doc['meta']['host']}; {doc['meta']['date']})")
EOF
echo "results: $out/results.json (harness log: $out/harness.txt)" >&2
