#!/usr/bin/env bash
# Access traces through a registry, with real components each started here with its own state:
# docker-registry on loopback, and three "nodes", each a lazysnapd (own root and socket) with
# its own containerd 1.6 ([proxy_plugins.lazysnap]). The debootstrap python image, converted to
# eStargz with `lazysnap image convert`, is pushed with skopeo. Then:
#  A. node A pulls it lazily (ctr-remote rpull) and runs python3 -c 'print("hello")' with
#     [prefetch] record on: lazysnapd stores the access trace; `lazysnap trace push` publishes
#     it as an OCI artifact referring to the image manifest (docker-registry 2.8: tag schema,
#     checked with skopeo: the sha256-<hex> tag is an OCI index listing one trace artifact);
#  B. node B (empty root, registry_lookup on, recording off) pulls and runs the image cold:
#     lazysnapd finds the trace in the registry by itself, stores it, and prefetches with it;
#  C. node C (empty root, registry_lookup off) gets the trace with `lazysnap trace pull`, then
#     pulls and runs the image cold: it prefetches with the pulled trace.
# B and C must report prefetched bytes (lazysnapd's per-layer figures), and their traces equal
# A's. Also: CLI errors (no trace for an image: exit 1; bad arguments: exit 2).
# LAZYSNAP_BUILD_DIR: the build directory (default build/). Needs root.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result trace_registry
ls_require_root "containerd, FUSE, overlay"
ls_require_tools containerd ctr ctr-remote runc skopeo docker-registry jq

ls_build lazysnap lazysnapd || ls_die "build failed"
LAZYSNAP=$(ls_tool lazysnap)
IMAGE=$(ls_python_image)
TRACE_TYPE=application/vnd.lazysnap.trace.v1+json

ls_tmpdir trreg
T=$LS_TMP

ls_start_registry "$T/reg"
REG=$LS_REGISTRY
REF=$REG/python:esgz
ls_push_esgz_python "$T/esgz" "$REF"
MANIFEST=$LS_MANIFEST
LAYER=$(skopeo inspect --raw --tls-verify=false "docker://$REF" | jq -r '.layers[0].digest')
ls_log "image $REF: manifest $MANIFEST, layer $LAYER"

# start_node NAME PREFETCH_TOML: lazysnapd with root $T/NAME/lz and [prefetch] PREFETCH_TOML,
# then a containerd using it. Sets PID_<NAME>, CTR_<NAME> and RUNC_<NAME> (its runc root).
start_node() {
  local name=$1 prefetch=$2 d=$T/$1
  ls_start_lazysnapd "$d" "[prefetch]
$prefetch"
  ls_start_containerd "$d/c" "$LS_LAZYSNAPD_SOCK"
  printf -v "PID_$name" %s "$LS_LAZYSNAPD_PID"
  printf -v "CTR_$name" %s "$LS_CTR"
  printf -v "RUNC_$name" %s "$LS_RUNC_ROOT"
}

# run_node NAME: lazy pull and run of the image on node NAME; asserts "hello".
run_node() {
  local name=$1 ctr runc out start=$EPOCHREALTIME
  ctr=CTR_$name
  runc=RUNC_$name
  ctr-remote -a "$T/$name/c/containerd.sock" -n test image rpull --plain-http \
    --snapshotter lazysnap "$REF" >/dev/null || ls_fail "rpull on $name"
  out=$(${!ctr} run --rm --runc-root "${!runc}" --snapshotter lazysnap "$REF" \
    "$(ls_ctr_id "tr-$name")" python3 -c 'print("hello")' 2>&1) ||
    ls_fail "run on $name: $out"
  [ "$out" = hello ] || ls_fail "run on $name printed: $out"
  ls_log "node $name: pull and run to hello in $(ls_elapsed "$start") s"
}

# stop_lazysnapd NAME: stops the node's lazysnapd (SIGTERM: recordings end, traces are stored,
# layers unmounted with their figures logged).
stop_lazysnapd() {
  local pid=PID_$1
  ls_kill "${!pid}"
}

# prefetched NAME: "BYTES READ" from lazysnapd NAME's figures for the layer at its unmount:
# bytes prefetched, and prefetched chunks the workload then read.
prefetched() {
  grep -F "remote layer unmounted" "$T/$1/lazysnapd.log" | grep -F "$LAYER" | tail -1 |
    sed -nE 's/.*; prefetch: ([0-9]+) bytes prefetched in [0-9]+ requests, [0-9]+ chunks, ([0-9]+) of them read.*/\1 \2/p'
}

# ---- A: record, push ---------------------------------------------------------------------------
start_node A 'record = true
registry_lookup = false'
run_node A
stop_lazysnapd A
"$LAZYSNAP" trace list --root "$T/A/lz" -q | grep -qxF "$MANIFEST" ||
  ls_fail "node A stored no trace of $MANIFEST: $("$LAZYSNAP" trace list --root "$T/A/lz")"
"$LAZYSNAP" trace show "$MANIFEST" --root "$T/A/lz" --json >"$T/trace-A.json"
chunks=$(jq '[.layers[].chunks | length] | add' "$T/trace-A.json")
[ "$chunks" -gt 0 ] || ls_fail "node A's trace lists no chunks"
ls_log "node A recorded $chunks chunks"

rc=0
"$LAZYSNAP" trace push --plain-http "$REF" --root "$T/B/lz" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] && grep -qF "no trace of" "$T/err" || ls_fail "push without a trace: exit $rc, $(cat "$T/err")"
rc=0
"$LAZYSNAP" trace push --plain-http --root "$T/A/lz" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || ls_fail "push without IMAGE_REF: exit $rc"
rc=0
"$LAZYSNAP" trace pull --plain-http "$REF" --root "$T/C/lz" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] && grep -qF "no trace of" "$T/err" || ls_fail "pull before push: exit $rc, $(cat "$T/err")"

"$LAZYSNAP" trace push --plain-http "$REF" --root "$T/A/lz" --json >"$T/push.json" ||
  ls_fail "trace push"
ARTIFACT=$(jq -r .artifact "$T/push.json")
skopeo inspect --raw --tls-verify=false "docker://$REG/python:sha256-${MANIFEST#sha256:}" >"$T/referrers.json" ||
  ls_fail "no referrers tag after the push"
[ "$(jq -r '.mediaType' "$T/referrers.json")" = application/vnd.oci.image.index.v1+json ] &&
  [ "$(jq -r '.manifests | length' "$T/referrers.json")" = 1 ] &&
  [ "$(jq -r '.manifests[0].digest' "$T/referrers.json")" = "$ARTIFACT" ] &&
  [ "$(jq -r '.manifests[0].artifactType' "$T/referrers.json")" = "$TRACE_TYPE" ] ||
  ls_fail "referrers index: $(cat "$T/referrers.json")"
skopeo inspect --raw --tls-verify=false "docker://$REG/python@$ARTIFACT" >"$T/artifact.json"
[ "$(jq -r .subject.digest "$T/artifact.json")" = "$MANIFEST" ] &&
  [ "$(jq -r .artifactType "$T/artifact.json")" = "$TRACE_TYPE" ] &&
  [ "$(jq -r .config.mediaType "$T/artifact.json")" = application/vnd.oci.empty.v1+json ] ||
  ls_fail "artifact manifest: $(cat "$T/artifact.json")"
ls_log "ok: trace pushed as $ARTIFACT (referrers tag sha256-${MANIFEST#sha256:})"

# ---- B: automatic registry lookup ----------------------------------------------------------------
start_node B 'record = false
registry_lookup = true'
run_node B
grep -qF "found in $REG/python" "$T/B/lazysnapd.log" || ls_fail "node B did not find the trace"
stop_lazysnapd B
"$LAZYSNAP" trace show "$MANIFEST" --root "$T/B/lz" --json | cmp -s - "$T/trace-A.json" ||
  ls_fail "node B's stored trace differs from A's"
read -r bytes used < <(prefetched B) || ls_fail "node B: no prefetch figures logged"
[ "$bytes" -gt 0 ] && [ "$used" -gt 0 ] || ls_fail "node B: $bytes bytes prefetched, $used prefetched chunks read"
ls_log "ok: node B found the trace in the registry and prefetched $bytes bytes ($used prefetched chunks read)"

# ---- C: lazysnap trace pull --------------------------------------------------------------------
"$LAZYSNAP" trace pull --plain-http "$REF" --root "$T/C/lz" >"$T/pull.txt" || ls_fail "trace pull"
grep -qF "$MANIFEST" "$T/pull.txt" || ls_fail "trace pull printed: $(cat "$T/pull.txt")"
"$LAZYSNAP" trace show "$MANIFEST" --root "$T/C/lz" --json | cmp -s - "$T/trace-A.json" ||
  ls_fail "the pulled trace differs from A's"
start_node C 'record = false
registry_lookup = false'
run_node C
stop_lazysnapd C
! grep -qF "found in $REG" "$T/C/lazysnapd.log" || ls_fail "node C looked the trace up"
read -r bytes used < <(prefetched C) || ls_fail "node C: no prefetch figures logged"
[ "$bytes" -gt 0 ] && [ "$used" -gt 0 ] || ls_fail "node C: $bytes bytes prefetched, $used prefetched chunks read"
ls_log "ok: node C pulled the trace with lazysnap trace pull and prefetched $bytes bytes ($used prefetched chunks read)"
