#!/usr/bin/env bash
# `lazysnap image optimize`: an optimized image's cold start needs fewer registry requests
# before "hello" than the plainly converted one.
#  1. the debootstrap python image (scripts/lib.sh) is pushed to a docker-registry on loopback
#     (with its access log on), then converted registry to registry twice: plainly
#     (`image convert`) and optimized (`image optimize -- python3 -c 'print("hello")'`, with
#     --print-files and --json): the recorded files are python's startup files, in order, and
#     the optimized layer's tar starts with them, then `.prefetch.landmark`;
#  2. each image is cold-started through containerd + lazysnapd (fresh state for every run:
#     `ctr-remote image rpull --snapshotter lazysnap`, then `ctr run --snapshotter lazysnap`),
#     with lazysnapd's landmark prefetch on and off (trace recording and replay off). The
#     registry's access log gives the GET requests for the layer blob from the pull to "hello";
#     lazysnapd's log gives on-demand and prefetch requests. The figures are printed; with the
#     landmark prefetch on, the optimized image must need fewer requests, and without it, no
#     more;
#  3. bad input: a workload that is not in the image (nothing converted, DST not tagged), a
#     workload killed at --timeout (what it opened still counts), --wait-for with --env, an
#     already seekable source (its layers are kept: a warning says they are not reordered).
# LAZYSNAP_BUILD_DIR: the build directory (default build/). Needs root.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result image_optimize
ls_require_root "chroot, fanotify, containerd, FUSE"
ls_require_tools containerd ctr ctr-remote runc skopeo docker-registry jq curl
ls_build lazysnap lazysnapd || ls_die "build failed"
LAZYSNAP=$(ls_tool lazysnap)
IMAGE=$(ls_python_image)

ls_tmpdir opt
T=$LS_TMP

# ---- a registry with its access log -----------------------------------------------------------
mkdir -p "$T/reg/storage"
port=$(ls_free_port)
cat >"$T/reg/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $T/reg/storage
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$T/reg/registry.yml" >"$T/reg/log" 2>&1 &
ls_on_exit "ls_kill $!"
ls_wait_for 20 curl -fsS "http://127.0.0.1:$port/v2/" || ls_fail "docker-registry did not start"
R=127.0.0.1:$port
skopeo copy -q --dest-tls-verify=false "oci:$IMAGE:python" "docker://$R/python:src"

# ---- 1. convert plainly and optimized -----------------------------------------------------------
start=$EPOCHREALTIME
"$LAZYSNAP" image convert -q --plain-http "$R/python:src" "$R/python:plain" || ls_fail "convert"
ls_log "plain conversion: $(ls_elapsed "$start") s"
start=$EPOCHREALTIME
"$LAZYSNAP" image optimize --plain-http --json "$R/python:src" "$R/python:opt" \
  -- python3 -c 'print("hello")' >"$T/opt.json" 2>"$T/opt.err" ||
  ls_fail "optimize: $(cat "$T/opt.err")"
ls_log "optimize (unpack, run, convert): $(ls_elapsed "$start") s; $(grep 'workload' "$T/opt.err")"
grep -qx hello "$T/opt.err" || ls_fail "the workload's output is not on stderr: $(cat "$T/opt.err")"
jq -e '.optimize.exitCode == 0 and (.prioritizedFiles | length) > 5 and
       (.prioritizedFiles[0] | test("^usr/bin/python3"))' "$T/opt.json" >/dev/null ||
  ls_fail "recorded files: $(jq -c '{optimize, prioritizedFiles}' "$T/opt.json")"
for f in usr/lib/x86_64-linux-gnu/libc.so.6 etc/ld.so.cache; do
  jq -e --arg f "$f" '.prioritizedFiles | index($f)' "$T/opt.json" >/dev/null ||
    ls_fail "$f not recorded: $(jq -c .prioritizedFiles "$T/opt.json")"
done
nfiles=$(jq '.prioritizedFiles | length' "$T/opt.json")
ls_log "recorded $nfiles files: $(jq -r '.prioritizedFiles[:6] | join(" ")' "$T/opt.json") ..."
# The layer's tar: the recorded files first, in order, then the landmark.
layer=$(skopeo inspect --tls-verify=false --raw "docker://$R/python:opt" | jq -r '.layers[0].digest')
curl -fsS "http://$R/v2/python/blobs/$layer" 2>/dev/null | tar tzf - 2>/dev/null |
  grep -v '/$' | grep -vx '\.' | head -$((nfiles + 1)) >"$T/head.txt" || true
{ jq -r '.prioritizedFiles[]' "$T/opt.json"; echo .prefetch.landmark; } >"$T/want.txt"
ls_same "optimized layer starts with the recorded files, then the landmark" "$T/want.txt" \
  "$T/head.txt" || ls_fail "optimized layer order"

# ---- 2. cold starts --------------------------------------------------------------------------
# cold_start TAG LANDMARK(true|false): fresh lazysnapd + containerd, rpull, run; sets FIG to
# "REGISTRY_GETS ONDEMAND_REQUESTS PREFETCH_REQUESTS FETCHED_BYTES".
run_n=0
cold_start() {
  local tag=$1 landmark=$2 d lzpid cpid out before after digest line
  run_n=$((run_n + 1))
  d=$T/run$run_n
  ls_start_lazysnapd "$d" "[prefetch]
record = false
replay = false
registry_lookup = false
background_fetch = false
landmark = $landmark"
  lzpid=$LS_LAZYSNAPD_PID
  ls_start_containerd "$d/c" "$LS_LAZYSNAPD_SOCK"
  cpid=$LS_CONTAINERD_PID
  digest=$(skopeo inspect --tls-verify=false --raw "docker://$R/python:$tag" | jq -r '.layers[0].digest')
  before=$(wc -l <"$T/reg/log")
  ctr-remote -a "$LS_CTR_SOCK" -n test image rpull --plain-http --snapshotter lazysnap \
    "$R/python:$tag" >/dev/null || ls_fail "rpull $tag: $(tail -5 "$d/lazysnapd.log")"
  out=$($LS_CTR run --rm --runc-root "$LS_RUNC_ROOT" --snapshotter lazysnap "$R/python:$tag" \
    "$(ls_ctr_id "opt-$run_n")" \
    python3 -c 'print("hello")' 2>&1) || ls_fail "ctr run $tag: $out"
  [ "$out" = hello ] || ls_fail "ctr run $tag printed: $out"
  after=$(tail -n +"$((before + 1))" "$T/reg/log" | grep -c "\"GET /v2/python/blobs/$digest " || true)
  ls_kill "$cpid"
  ls_umount_below "$d/c" || true
  ls_kill "$lzpid"
  line=$(grep -F "remote layer unmounted" "$d/lazysnapd.log" | grep -F "$digest" | tail -1)
  [ -n "$line" ] || ls_fail "$tag: lazysnapd logged no figures: $(tail -5 "$d/lazysnapd.log")"
  FIG="$after $(sed -E 's/.*; on demand: [0-9]+ chunks in ([0-9]+) requests.*/\1/' <<<"$line") \
$(sed -E 's/.*prefetch: [0-9]+ bytes prefetched in ([0-9]+) requests.*/\1/' <<<"$line") \
$(sed -E 's/.*: [0-9]+ requests, ([0-9]+) of [0-9]+ blob bytes fetched.*/\1/' <<<"$line")"
}

declare -A gets
printf '%-10s %-9s %14s %10s %9s %14s\n' image landmark "registry GETs" "on demand" prefetch \
  "bytes fetched" >"$T/figures"
for landmark in true false; do
  for tag in plain opt; do
    cold_start "$tag" "$landmark"
    read -r g od pf bytes <<<"$FIG"
    gets[$tag-$landmark]=$g
    printf '%-10s %-9s %14s %10s %9s %14s\n' "$tag" "$landmark" "$g" "$od" "$pf" "$bytes" >>"$T/figures"
  done
done
ls_log "cold start of python3 -c 'print(\"hello\")', requests for the layer blob from pull to hello:"
cat "$T/figures" >&2
[ "${gets[opt-true]}" -lt "${gets[plain-true]}" ] ||
  ls_fail "with landmark prefetch, optimized ${gets[opt-true]} >= plain ${gets[plain-true]} requests"
# Without prefetch the layout should cost nothing: the same files read on demand, give or take
# a request as files sit elsewhere in the blob and reads split at other chunk boundaries (10%).
[ "${gets[opt-false]}" -le $((gets[plain-false] + gets[plain-false] / 10)) ] ||
  ls_fail "without prefetch, optimized ${gets[opt-false]} > plain ${gets[plain-false]} requests + 10%"

# ---- 3. bad input ------------------------------------------------------------------------------
rc=0
"$LAZYSNAP" image optimize -q --plain-http "$R/python:src" "$R/python:bad" -- no-such-command \
  2>"$T/err" || rc=$?
[ "$rc" = 1 ] && grep -q "opened no file of the image" "$T/err" ||
  ls_fail "missing workload command: exit $rc, $(cat "$T/err")"
! skopeo inspect --tls-verify=false --raw "docker://$R/python:bad" >/dev/null 2>&1 ||
  ls_fail "a failed optimize tagged python:bad"
mkdir "$T/tmp"
"$LAZYSNAP" image optimize --print-files --timeout 3 --temp-dir "$T/tmp" --plain-http "$R/python:src" \
  "$R/python:timeout" -- python3 -c 'import json; print("up", flush=True); import time; time.sleep(60)' \
  >"$T/timeout.txt" 2>"$T/err" || ls_fail "--timeout run failed: $(cat "$T/err")"
grep -q "killed at --timeout" "$T/err" || ls_fail "no timeout reported: $(cat "$T/err")"
grep -q 'json/__pycache__/__init__' "$T/timeout.txt" || ls_fail "json not recorded before the kill"
start=$EPOCHREALTIME
"$LAZYSNAP" image optimize --print-files --wait-for "up 42" --env LZ_X=42 --timeout 120 \
  --plain-http "$R/python:src" "$R/python:waitfor" \
  -- python3 -c 'import os; print("up", os.environ["LZ_X"], flush=True); import time; time.sleep(60); import json' \
  >"$T/waitfor.txt" 2>"$T/err" || ls_fail "--wait-for run failed: $(cat "$T/err")"
grep -q "stopped at --wait-for" "$T/err" || ls_fail "--wait-for not reported: $(cat "$T/err")"
! grep -q 'json/' "$T/waitfor.txt" || ls_fail "recorded after --wait-for"
"$LAZYSNAP" image optimize --plain-http "$R/python:plain" "$R/python:reopt" -- python3 -c pass \
  >/dev/null 2>"$T/err" || ls_fail "optimize of an eStargz image: $(cat "$T/err")"
grep -q "already seekable and was kept" "$T/err" || ls_fail "no warning for kept layers: $(cat "$T/err")"
ls_log "ok: bad workload refused; --timeout, --wait-for and --env; kept layers warned about"
[ -z "$(ls -A "$T/tmp")" ] || ls_fail "left in --temp-dir: $(ls -A "$T/tmp")"
