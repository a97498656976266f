#!/usr/bin/env bash
# End to end: lazy pulling with real components, each started here with its own state:
# docker-registry on loopback, lazysnapd (own root and socket), containerd 1.6 with
# [proxy_plugins.lazysnap]. The debootstrap python image (scripts/lib.sh) is
#  - converted with `lazysnap image convert` to eStargz and zstd:chunked, pushed with skopeo;
#  - converted with stargz-snapshotter's `ctr-remote image convert --estargz --oci`, pushed;
#  - pushed as it is (gzip).
# Then:
#  1. each seekable image is pulled with `ctr-remote image rpull --snapshotter lazysnap` and run
#     (`python3 -c 'print("hello")'`); lazysnapd's per-layer figures (logged at unmount) must
#     show that only a small fraction of the layer was fetched;
#  2. lazysnapd is restarted between pull and run (eStargz): the container still runs, and the
#     mounted layer's files equal the original layer's (every file read through FUSE); after
#     lazysnapd is killed (SIGKILL, dead FUSE mounts left behind) and started, images still run;
#  3. the gzip image: `ctr image pull` (no labels: ordinary snapshots) and `ctr-remote rpull`
#     (labels, not seekable: logged fallback) both run;
#  4. the registry is stopped and lazysnapd restarted: it starts, restores its remote
#     snapshots from the locally stored TOCs, and the fully cached layer still serves.
# LAZYSNAP_BUILD_DIR: the build directory (default build/). Needs root.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result e2e_lazy_pull
ls_require_root "containerd, FUSE, overlay"
ls_require_tools containerd ctr ctr-remote runc skopeo docker-registry jq

ls_build lazysnap lazysnapd layer_dump || ls_die "build failed"
LAZYSNAP=$(ls_tool lazysnap)
DUMP=$(ls_tool layer_dump)
IMAGE=$(ls_python_image)

ls_tmpdir e2e
T=$LS_TMP
ls_watch_log "$T/lazysnapd.log" 30

# ---- daemons -----------------------------------------------------------------------------------
ls_start_registry "$T/reg"
REG=$LS_REGISTRY
LZD_PID=
SOCK=
start_lazysnapd() { # and, once containerd runs, wait until it has reconnected to lazysnapd
  ls_start_lazysnapd "$T"
  LZD_PID=$LS_LAZYSNAPD_PID
  [ -z "${SOCK:-}" ] || ls_wait_snapshotter "$SOCK" || ls_fail "containerd did not reconnect to lazysnapd"
}
stop_lazysnapd() {
  ls_kill "$LZD_PID"
  ! kill -0 "$LZD_PID" 2>/dev/null || ls_fail "lazysnapd did not stop"
}
start_lazysnapd
ls_start_containerd "$T/c" "$T/lz.sock"
SOCK=$LS_CTR_SOCK
CTR="ctr -a $SOCK -n test"
# runc's state and the cgroups are shared with every other containerd on the machine (see
# ls_start_containerd): a private runc root and container IDs no concurrent run uses.
RUN_ARGS=(--rm --runc-root "$LS_RUNC_ROOT" --snapshotter lazysnap)

# ---- images ------------------------------------------------------------------------------------
ls_log "converting and pushing the python image"
"$LAZYSNAP" image convert --oci-layout "$IMAGE:python" "$T/esgz:lz" >/dev/null
"$LAZYSNAP" image convert --format zstd-chunked --oci-layout "$IMAGE:python" "$T/zstd:lz" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$T/esgz:lz" "docker://$REG/python:lz-esgz"
skopeo copy -q --dest-tls-verify=false "oci:$T/zstd:lz" "docker://$REG/python:lz-zstd"
skopeo copy -q --dest-tls-verify=false "oci:$IMAGE:python" "docker://$REG/python:gzip"
tar -C "$IMAGE" --exclude=.complete -cf "$T/image.tar" .
CONV="ctr -a $SOCK -n conv"
$CONV images import --base-name localhost/python "$T/image.tar" >/dev/null
ctr-remote -a "$SOCK" -n conv images convert --estargz --oci localhost/python:python \
  "$REG/python:ctr-esgz" >/dev/null
$CONV images push --plain-http "$REG/python:ctr-esgz" >/dev/null
layer_size() { # TAG: the (single) layer's blob size in the registry
  skopeo inspect --raw --tls-verify=false "docker://$REG/python:$1" | jq '.layers[0].size'
}

run_hello() { # REF NAME: runs the image with lazysnap, once (start_lazysnapd waited for
  # containerd to reconnect), and asserts "hello"
  local out
  out=$($CTR run "${RUN_ARGS[@]}" "$1" "$(ls_ctr_id "$2")" python3 -c 'print("hello")' 2>&1) ||
    ls_fail "ctr run $1: $out"
  [ "$out" = hello ] || ls_fail "ctr run $1 printed: $out"
  ls_log "ok: $1 printed hello"
}

# The figures lazysnapd logged for layer DIGEST at its last unmount: "REQUESTS FETCHED SIZE"
# (file data), and the bytes it read for the layer's footer and TOC.
fetched_figures() {
  grep -F "remote layer unmounted" "$T/lazysnapd.log" | grep -F "$1" | tail -1 |
    sed -E 's/.*: ([0-9]+) requests, ([0-9]+) of ([0-9]+) blob bytes fetched.*/\1 \2 \3/'
}
toc_bytes() {
  grep -F "layer $1: TOC" "$T/lazysnapd.log" | head -1 | sed -E 's/.* requests, ([0-9]+) bytes$/\1/'
}

# ---- 1. lazy pull and run each seekable image ---------------------------------------------------
declare -A layer_digest
for tag in lz-esgz lz-zstd ctr-esgz; do
  ref=$REG/python:$tag
  layer_digest[$tag]=$(skopeo inspect --raw --tls-verify=false "docker://$ref" | jq -r '.layers[0].digest')
  start=$EPOCHREALTIME
  ctr-remote -a "$SOCK" -n test image rpull --plain-http --snapshotter lazysnap "$ref" >/dev/null ||
    ls_fail "rpull $ref"
  ls_log "rpull $tag: $(ls_elapsed "$start") s"
  grep -qF "remote snapshot: prepared" "$T/lazysnapd.log" || ls_fail "$tag: no remote snapshot prepared"
  if [ "$tag" = lz-esgz ]; then
    # 2. restart between pull and run.
    stop_lazysnapd
    start_lazysnapd
    grep -qF "restored remote snapshot" "$T/lazysnapd.log" || ls_fail "no remote snapshot restored"
  fi
  start=$EPOCHREALTIME
  run_hello "$ref" "e2e-$tag"
  ls_log "run $tag: $(ls_elapsed "$start") s"
done
# Remote mounts stay until lazysnapd stops; it logs each layer's figures then.
stop_lazysnapd
for tag in lz-esgz lz-zstd ctr-esgz; do
  read -r requests fetched size < <(fetched_figures "${layer_digest[$tag]}") ||
    ls_fail "$tag: no figures logged for ${layer_digest[$tag]}"
  [ "$size" = "$(layer_size "$tag")" ] || ls_fail "$tag: logged size $size"
  toc=$(toc_bytes "${layer_digest[$tag]}")
  [ -n "$toc" ] || ls_fail "$tag: no TOC fetch logged"
  ls_log "$tag: $fetched of $size layer bytes fetched in $requests requests (+ $toc bytes of footer and TOC)"
  # "hello" needs python3, its libraries and a few modules: a small part of the layer.
  [ "$fetched" -gt 0 ] && [ $(((fetched + toc) * 4)) -lt "$size" ] ||
    ls_fail "$tag: fetched $fetched + $toc of $size bytes (more than a quarter)"
done
start_lazysnapd
[ "$(grep -c "restored remote snapshot" "$T/lazysnapd.log")" -ge 4 ] ||
  ls_fail "expected the three layers to be restored"

# The whole eStargz layer through FUSE equals the original layer (and ends fully cached).
esgz_hex=${layer_digest[lz-esgz]#sha256:}
# (Our lazysnapd's mount: a concurrent test may mount the same layer elsewhere.)
mnt=$(findmnt -rn -o TARGET,SOURCE | awk -v s="lazysnap:${esgz_hex:0:12}" -v d="$T/lz/" \
  '$2 == s && index($1, d) == 1 { print $1; exit }')
[ -n "$mnt" ] || ls_fail "no FUSE mount of ${layer_digest[lz-esgz]}"
orig_blob=$(ls_oci_blob "$IMAGE" "$(jq -r '.layers[0].digest' "$(ls_oci_manifest "$IMAGE" python)")")
ls_extract_layer "$orig_blob" "$T/orig"
"$DUMP" tree "$T/orig" --mtime-seconds | ls_strip_format_files >"$T/orig.txt"
rm -rf "$T/orig"
start=$EPOCHREALTIME
"$DUMP" tree "$mnt" --mtime-seconds | ls_strip_format_files >"$T/fuse.txt"
ls_same "FUSE mount of the eStargz layer vs the original layer ($(ls_elapsed "$start") s)" \
  "$T/orig.txt" "$T/fuse.txt" || ls_fail "FUSE tree differs"

# A crash leaves dead FUSE mounts behind: the next lazysnapd detaches them and mounts again.
kill -KILL "$LZD_PID"
wait "$LZD_PID" 2>/dev/null || true
start_lazysnapd
run_hello "$REG/python:lz-zstd" e2e-after-crash
ls_log "ok: lazysnapd killed (SIGKILL) and started again: the layers are mounted again"

# ---- 3. gzip: ordinary pull, and a remote-labelled pull that falls back ---------------------------
$CTR image pull --plain-http --snapshotter lazysnap "$REG/python:gzip" >/dev/null || ls_fail "pull gzip"
run_hello "$REG/python:gzip" e2e-gzip
ctr-remote -a "$SOCK" -n fb image rpull --plain-http --snapshotter lazysnap "$REG/python:gzip" \
  >/dev/null || ls_fail "rpull gzip"
grep -qF "not available remotely, falling back" "$T/lazysnapd.log" || ls_fail "no fallback logged"
out=$(ctr -a "$SOCK" -n fb run "${RUN_ARGS[@]}" "$REG/python:gzip" "$(ls_ctr_id e2e-fb)" \
  python3 -c 'print("hello")' 2>&1) || ls_fail "run fallback: $out"
[ "$out" = hello ] || ls_fail "fallback run printed: $out"
ls_log "ok: gzip image ran (ordinary pull and fallback)"

# ---- 4. registry down ---------------------------------------------------------------------------
stop_lazysnapd
ls_kill "$LS_REGISTRY_PID"
! curl -fsS "http://$REG/v2/" >/dev/null 2>&1 || ls_fail "registry still up"
start_lazysnapd
run_hello "$REG/python:lz-esgz" e2e-offline
ls_log "ok: with the registry down, lazysnapd restarted and the cached layer served"
