#!/usr/bin/env bash
# Trace-driven prefetch end to end, with real components each started here with its own state:
# docker-registry on loopback, lazysnapd (own root and socket) and containerd 1.6 with
# [proxy_plugins.lazysnap]. The debootstrap python image, converted to eStargz with
# `lazysnap image convert`, is pushed with skopeo. Then:
#  1. first run: `ctr-remote image rpull` (a tag: lazysnapd resolves it to the manifest digest
#     once) and `python3 -c 'print("hello")'`; with [prefetch] record on, lazysnapd stores the
#     image's access trace once reads have been quiet for quiet_period;
#  2. the cache is wiped: lazysnapd and containerd stop, and a second pair starts from empty
#     state (a fresh lazysnapd root holding only a copy of the trace, a fresh containerd);
#  3. second cold start: rpull and run again. lazysnapd's SIGUSR1 "prefetch totals" line must
#     show that at least 90% of the chunks read were fetched by prefetch
#     (prefetched_chunks_read / (prefetched_chunks_read + ondemand_chunks)), in few requests.
# LAZYSNAP_BUILD_DIR: the build directory (default build/). Needs root.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result prefetch
ls_require_root "containerd, FUSE, overlay"
ls_require_tools containerd ctr ctr-remote runc skopeo docker-registry jq

ls_build lazysnap lazysnapd || ls_die "build failed"
LAZYSNAP=$(ls_tool lazysnap)
IMAGE=$(ls_python_image)
MAX_PREFETCH_REQUESTS=${MAX_PREFETCH_REQUESTS:-40}

ls_tmpdir pf
T=$LS_TMP

ls_start_registry "$T/reg"
REG=$LS_REGISTRY
REF=$REG/python:esgz
ls_push_esgz_python "$T/esgz" "$REF"
MANIFEST=$LS_MANIFEST
ls_log "image $REF: manifest $MANIFEST"

# start_node NAME: lazysnapd with root $T/NAME/lz (quiet period 2 s), then its containerd.
# Sets LZD_PID, CTRD_PID, CTR, NODE_SOCK.
start_node() {
  local d=$T/$1
  ls_start_lazysnapd "$d" '[prefetch]
record = true
quiet_period = "2s"
record_window = "60s"
replay = true
registry_lookup = false'
  LZD_PID=$LS_LAZYSNAPD_PID
  ls_start_containerd "$d/c" "$LS_LAZYSNAPD_SOCK"
  CTRD_PID=$LS_CONTAINERD_PID
  CTR=$LS_CTR
  NODE_SOCK=$LS_CTR_SOCK
}

# run_node NAME: lazy pull and run; asserts "hello".
run_node() {
  local out start=$EPOCHREALTIME
  ctr-remote -a "$NODE_SOCK" -n test image rpull --plain-http --snapshotter lazysnap "$REF" \
    >/dev/null || ls_fail "rpull on $1"
  out=$($CTR run --rm --runc-root "$LS_RUNC_ROOT" --snapshotter lazysnap "$REF" \
    "$(ls_ctr_id "pf-$1")" python3 -c 'print("hello")' 2>&1) ||
    ls_fail "run on $1: $out"
  [ "$out" = hello ] || ls_fail "run on $1 printed: $out"
  ls_log "node $1: pull and run to hello in $(ls_elapsed "$start") s"
}

# totals NAME: lazysnapd's "prefetch totals" figures after a SIGUSR1, as shell assignments.
totals() {
  local log=$T/$1/lazysnapd.log n
  n=$(grep -c "prefetch totals:" "$log" || true)
  kill -USR1 "$LZD_PID"
  ls_wait_for 10 eval "[ \$(grep -c 'prefetch totals:' '$log') -gt $n ]" ||
    ls_fail "no prefetch totals logged"
  grep "prefetch totals:" "$log" | tail -1 | sed -E 's/.*prefetch totals: //'
}

# ---- 1. first run records the trace -------------------------------------------------------------
start_node A
run_node A
ls_wait_for 30 grep -qF "trace of $MANIFEST recorded" "$T/A/lazysnapd.log" ||
  ls_fail "no trace recorded for $MANIFEST"
grep -F "trace of $MANIFEST recorded" "$T/A/lazysnapd.log" | tail -1 | sed 's/^/    /' >&2
TRACE=$T/A/lz/traces/${MANIFEST#sha256:}.json
[ -f "$TRACE" ] || ls_fail "no trace file $TRACE"
[ "$(jq -r .mediaType "$TRACE")" = application/vnd.lazysnap.trace.v1+json ] ||
  ls_fail "trace media type: $(jq -r .mediaType "$TRACE")"
recorded=$(jq '[.layers[].chunks | length] | add' "$TRACE")
[ "$recorded" -gt 10 ] || ls_fail "the trace lists $recorded chunks"
eval "$(totals A)"
A_REQUESTS=$ondemand_requests
ls_log "ok: first run recorded $recorded chunks; it read $ondemand_chunks chunks on demand in" \
  "$A_REQUESTS requests"

# ---- 2. wipe: a fresh node with only the trace ---------------------------------------------------
ls_kill "$CTRD_PID"
ls_kill "$LZD_PID"
mkdir -p "$T/B/lz/traces"
cp "$TRACE" "$T/B/lz/traces/"

# ---- 3. second cold start replays it ---------------------------------------------------------------
start_node B
run_node B
grep -qF "replaying" "$T/B/lazysnapd.log" || ls_fail "node B did not replay the trace"
! grep -qF "recording the access trace" "$T/B/lazysnapd.log" || ls_fail "node B recorded again"
eval "$(totals B)"
ls_log "node B: prefetched $prefetched_chunks chunks ($prefetch_bytes bytes) in $prefetch_requests" \
  "requests; read: $prefetched_chunks_read prefetched, $ondemand_chunks on demand" \
  "($ondemand_requests requests); $prefetched_bytes_unread prefetched bytes unread"
read_total=$((prefetched_chunks_read + ondemand_chunks))
[ "$read_total" -gt 0 ] || ls_fail "no chunk read on node B"
[ $((prefetched_chunks_read * 100)) -ge $((read_total * 90)) ] ||
  ls_fail "only $prefetched_chunks_read of $read_total chunks read were prefetched (< 90%)"
[ "$prefetch_requests" -gt 0 ] && [ "$prefetch_requests" -le "$MAX_PREFETCH_REQUESTS" ] ||
  ls_fail "$prefetch_requests prefetch requests (want 1..$MAX_PREFETCH_REQUESTS)"
ls_log "ok: $((prefetched_chunks_read * 100 / read_total))% of the chunks read were prefetched," \
  "in $prefetch_requests requests (the first run's on-demand reads: $A_REQUESTS requests)"
