#!/usr/bin/env bash
# The cold-start harness (bench/coldstart) in smoke mode, so CI keeps it working: the python
# image, one run, loopback through lazysnap-shaper, containerd overlayfs and lazysnap on demand.
# Checks that both modes produced a run with sane figures and that every output was written.
# (Full benchmark runs are manual: docs/benchmarks.md.) LAZYSNAP_BUILD_DIR: the build directory
# (default build/). Needs root.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result bench_smoke
ls_require_root "containerd, FUSE, overlay, drop_caches"
ls_require_tools containerd ctr ctr-remote runc skopeo docker-registry jq
ls_build lazysnap lazysnapd lazysnap-shaper || ls_die "build failed"
ls_python_image >/dev/null
ls_tmpdir bench
OUT=$LS_TMP/out

# Through `lazysnap bench`, the documented entry point (it runs bench/coldstart/coldstart.py).
ls_watch_log "$LS_TMP/bench.log" 40
"$(ls_tool lazysnap)" bench --smoke --build "$LS_BUILD" --out "$OUT" >"$LS_TMP/bench.log" 2>&1 ||
  ls_fail "lazysnap bench --smoke failed"
for f in results.json results.csv summary.json report.md coldstart-loopback.png; do
  [ -s "$OUT/$f" ] || ls_fail "no $f"
done
ls_watch_log "$OUT/report.md" 200
runs() { jq -r --arg m "$1" '[.runs[] | select(.mode == $m)] | length' "$OUT/results.json"; }
[ "$(runs overlayfs)" = 1 ] || ls_fail "no overlayfs run"
[ "$(runs lazysnap)" = 1 ] || ls_fail "no lazysnap run"
fig() { jq -r --arg m "$1" ".runs[] | select(.mode == \$m) | .$2" "$OUT/results.json"; }
# overlayfs pulls the whole layer; lazysnap fetches a fraction of it; both were timed.
ov_bytes=$(fig overlayfs bytes_down)
lz_bytes=$(fig lazysnap bytes_down)
layer=$(ls_oci_layers "$(ls_python_image)" python | awk '{ s += $3 } END { print s }')
[ "$ov_bytes" -ge "$layer" ] || ls_fail "overlayfs fetched $ov_bytes bytes, the layer has $layer"
[ "$lz_bytes" -gt 0 ] && [ $((lz_bytes * 4)) -lt "$layer" ] || ls_fail "lazysnap fetched $lz_bytes of $layer"
for m in overlayfs lazysnap; do
  awk -v t="$(fig $m total_s)" 'BEGIN { exit !(t > 0 && t < 120) }' || ls_fail "$m total $(fig $m total_s)"
  [ "$(fig $m requests)" -gt 0 ] || ls_fail "$m: no registry requests counted"
done
awk -v p="$(fig overlayfs present_s)" 'BEGIN { exit !(p > 0) }' || ls_fail "no floor measured"
[ "$(fig lazysnap snapshotter_peak_kb)" -gt 0 ] || ls_fail "no lazysnapd peak memory"
grep -q '| python | lazysnap |' "$OUT/report.md" || ls_fail "report.md has no lazysnap row"
ls_log "$(printf "ok: overlayfs %.2f s, %s B; lazysnap %.2f s, %s B" "$(fig overlayfs total_s)" "$ov_bytes" "$(fig lazysnap total_s)" "$lz_bytes")"
