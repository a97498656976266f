#!/usr/bin/env bash
# `lazysnap image pull` against real components, each started here with its own state:
# docker-registry on loopback (access log on), lazysnapd, containerd 1.6 with
# [proxy_plugins.lazysnap]. The debootstrap python image (scripts/lib.sh) is pushed to
# REG/src (gzip) and converted registry to registry with `lazysnap image convert` to
# REG/python:esgz (and its two-layer python-special variant to :esgz-special). Then:
#  1. `lazysnap image pull` of the eStargz image: every layer mounted remotely (JSON outcome
#     "remote"), no layer blob in containerd's content store, lease released; `ctr run
#     --snapshotter lazysnap` prints hello; the registry's access log shows that only a
#     fraction of the layer's bytes were sent;
#  2. the two-layer eStargz image: the shared base layer is found present, the second is
#     mounted remotely on top of it; runs;
#  3. the gzip (not seekable) two-layer image: both layers fetched and applied (fallback);
#     runs with the lazysnap snapshotter;
#  4. the converted image pulls and runs with containerd's default overlayfs snapshotter
#     (`ctr image pull` + `ctr run`);
#  5. bad input: an unknown tag, an unreachable registry, a malformed reference, no
#     containerd: clear error, exit status 1 (2 for the reference), no image record and no
#     lease left in containerd.
# LAZYSNAP_BUILD_DIR: the build directory (default build/). Needs root.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result image_pull
ls_require_root "containerd, FUSE, overlay"
ls_require_tools containerd ctr runc skopeo docker-registry jq curl

ls_build lazysnap lazysnapd || ls_die "build failed"
LAZYSNAP=$(ls_tool lazysnap)
IMAGE=$(ls_python_image)

ls_tmpdir pull
T=$LS_TMP
ls_watch_log "$T/lazysnapd.log" 20

# ---- daemons -----------------------------------------------------------------------------------
# docker-registry reads REGISTRY_* overrides of its config from the environment: the access
# log (one line per request, with the bytes sent) tells what crossed the wire.
export REGISTRY_LOG_ACCESSLOG_DISABLED=false
ls_start_registry "$T/reg"
unset REGISTRY_LOG_ACCESSLOG_DISABLED
REG=$LS_REGISTRY
ls_start_lazysnapd "$T"
ls_start_containerd "$T/c" "$LS_LAZYSNAPD_SOCK"
SOCK=$LS_CTR_SOCK

pull() { # NAMESPACE REF [ARGS...]: lazysnap image pull into containerd
  local ns=$1 ref=$2
  shift 2
  "$LAZYSNAP" image pull -a "$SOCK" -n "$ns" --plain-http "$@" "$ref"
}
run_hello() { # NAMESPACE REF NAME [CTR RUN ARGS...]: asserts "hello" (container ls_ctr_id NAME)
  local ns=$1 ref=$2 id out
  id=$(ls_ctr_id "$3")
  shift 3
  out=$(ctr -a "$SOCK" -n "$ns" run --rm --runc-root "$LS_RUNC_ROOT" "$@" "$ref" "$id" \
    python3 -c 'print("hello")' 2>&1) ||
    ls_fail "ctr run $ref: $out"
  [ "$out" = hello ] || ls_fail "ctr run $ref printed: $out"
  ls_log "ok: $ref printed hello ($ns)"
}
no_leases() { # NAMESPACE
  [ -z "$(ctr -a "$SOCK" -n "$1" leases ls -q)" ] || ls_fail "leases left in $1: $(ctr -a "$SOCK" -n "$1" leases ls)"
}
# Bytes the registry sent for blob DIGEST (GET and ranged GET answers), from its access log.
bytes_sent() {
  { grep -F "\"GET /v2/" "$T/reg/registry.log" || true; } | { grep -F "/blobs/$1 " || true; } |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\//) { s += $(i + 2); break } } END { print s + 0 }'
}

# ---- images ------------------------------------------------------------------------------------
ls_log "pushing the python images and converting them registry to registry"
skopeo copy -q --dest-tls-verify=false "oci:$IMAGE:python" "docker://$REG/src:latest"
skopeo copy -q --dest-tls-verify=false "oci:$IMAGE:python-special" "docker://$REG/src:special"
start=$EPOCHREALTIME
"$LAZYSNAP" image convert -q --plain-http "$REG/src:latest" "$REG/python:esgz" || ls_fail "convert"
"$LAZYSNAP" image convert -q --plain-http "$REG/src:special" "$REG/python:esgz-special" ||
  ls_fail "convert special"
ls_log "converted in $(ls_elapsed "$start") s"
manifest=$(skopeo inspect --raw --tls-verify=false "docker://$REG/python:esgz")
layer=$(jq -r '.layers[0].digest' <<<"$manifest")
layer_size=$(jq -r '.layers[0].size' <<<"$manifest")
sent_before=$(bytes_sent "$layer")  # the conversion's own upload checks read nothing back

# ---- 1. lazy pull of the eStargz image ----------------------------------------------------------
start=$EPOCHREALTIME
pull test "$REG/python:esgz" --json >"$T/pull.json" || ls_fail "pull esgz"
ls_log "lazysnap image pull: $(ls_elapsed "$start") s"
jq -e '.layers | length == 1 and all(.outcome == "remote")' "$T/pull.json" >/dev/null ||
  ls_fail "layers not remote: $(cat "$T/pull.json")"
jq -e --arg n "$REG/python:esgz" '.name == $n and .snapshotter == "lazysnap"' "$T/pull.json" \
  >/dev/null || ls_fail "pull.json: $(cat "$T/pull.json")"
ctr -a "$SOCK" -n test images ls -q | grep -qxF "$REG/python:esgz" || ls_fail "no image record"
! ctr -a "$SOCK" -n test content ls -q | grep -qxF "$layer" || ls_fail "the layer blob was downloaded"
no_leases test
chain=$(jq -r '.layers[-1].chainID' "$T/pull.json")
ctr -a "$SOCK" -n test snapshots --snapshotter lazysnap info "$chain" | grep -qF "$chain" ||
  ls_fail "no committed snapshot $chain"
start=$EPOCHREALTIME
run_hello test "$REG/python:esgz" pull-esgz --snapshotter lazysnap
ls_log "run: $(ls_elapsed "$start") s"
sent=$(($(bytes_sent "$layer") - sent_before))
ls_log "registry sent $sent of $layer_size layer bytes for the pull and the run"
[ "$sent" -gt 0 ] && [ $((sent * 4)) -lt "$layer_size" ] ||
  ls_fail "registry sent $sent of $layer_size layer bytes (none, or more than a quarter)"
# Pulling again finds everything present.
pull test "$REG/python:esgz" --json >"$T/again.json" || ls_fail "pull again"
jq -e 'all(.layers[]; .outcome == "present")' "$T/again.json" >/dev/null ||
  ls_fail "second pull: $(cat "$T/again.json")"

# ---- 2. two layers, the base shared ----------------------------------------------------------------
pull test "$REG/python:esgz-special" --json >"$T/special.json" || ls_fail "pull esgz-special"
jq -e '[.layers[].outcome] == ["present", "remote"]' "$T/special.json" >/dev/null ||
  ls_fail "esgz-special: $(cat "$T/special.json")"
run_hello test "$REG/python:esgz-special" pull-special --snapshotter lazysnap
ctr -a "$SOCK" -n test run --rm --runc-root "$LS_RUNC_ROOT" --snapshotter lazysnap \
  "$REG/python:esgz-special" "$(ls_ctr_id pull-ls)" \
  ls / >"$T/ls.txt" 2>&1 || ls_fail "ls in esgz-special: $(cat "$T/ls.txt")"

# ---- 3. gzip: not seekable, fetched and applied ---------------------------------------------------
pull gz "$REG/src:special" --json >"$T/gzip.json" || ls_fail "pull gzip"
jq -e '[.layers[].outcome] == ["applied", "applied"]' "$T/gzip.json" >/dev/null ||
  ls_fail "gzip: $(cat "$T/gzip.json")"
ctr -a "$SOCK" -n gz content ls -q | grep -qxF "$(jq -r '.layers[0].digest' "$T/gzip.json")" ||
  ls_fail "the applied layer is not in the content store"
no_leases gz
run_hello gz "$REG/src:special" pull-gzip --snapshotter lazysnap

# ---- 4. the converted image with containerd's own pull and overlayfs -------------------------------
ctr -a "$SOCK" -n ovl image pull --plain-http "$REG/python:esgz" >/dev/null || ls_fail "ctr image pull"
run_hello ovl "$REG/python:esgz" pull-ovl

# ---- 5. bad input --------------------------------------------------------------------------------
expect_fail() { # STATUS PATTERN ARGS...: lazysnap image pull fails so
  local want=$1 pattern=$2 rc=0
  shift 2
  "$LAZYSNAP" image pull -a "$SOCK" -n bad --timeout 5 "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" = "$want" ] || ls_fail "pull $*: exit $rc (want $want): $(cat "$T/err")"
  grep -qiE "$pattern" "$T/err" || ls_fail "pull $*: unclear error: $(cat "$T/err")"
  ls_log "ok: pull $* -> $rc: $(head -1 "$T/err")"
}
expect_fail 1 "not found|unknown" --plain-http "$REG/python:nope"
expect_fail 1 "$REG/nothing" --plain-http "$REG/nothing:latest"
port=$(ls_free_port)
expect_fail 1 "127.0.0.1:$port" --plain-http "127.0.0.1:$port/python:esgz"
expect_fail 2 "not an image reference" "Bad//Ref"
rc=0
"$LAZYSNAP" image pull -a "$T/none.sock" "$REG/python:esgz" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] && grep -qF "cannot connect to containerd at $T/none.sock (no socket there)" "$T/err" ||
  ls_fail "no containerd: exit $rc: $(cat "$T/err")"
[ -z "$(ctr -a "$SOCK" -n bad images ls -q)" ] || ls_fail "image records left by failed pulls"
no_leases bad
ls_log "ok: bad input refused, nothing left in containerd"
