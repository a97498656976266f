#!/usr/bin/env bash
# Prefetch never delays an on-demand read behind it (issue 7), with real components each
# started here with its own state: docker-registry on loopback behind lazysnap-shaper (a slow
# link: RATE per connection, RTT added), lazysnapd (own root and socket) and containerd 1.6
# with [proxy_plugins.lazysnap]. The python image (one 68 MB layer), converted to eStargz with
# `lazysnap image convert`, is pushed to the registry directly; lazysnapd and containerd pull
# it through the shaper. Two nodes, each from empty state:
#  A. baseline: no prefetch at all. rpull, a warm-up run (sh, date, sha256sum and their
#     libraries), then a run that times `sha256sum` of files stored at the end of the layer
#     (READ_FILES): the cost of that read on this link, B seconds.
#  B. heavy prefetch: [prefetch] background_fetch = true: right after the mount the whole
#     layer is fetched in blob order by 2 workers in 16 MiB range requests. The same warm-up
#     and timed read run while it is in progress. Asserts:
#       - the read's files are not yet cached when it ends (SIGUSR1: the layer's cached bytes
#         below its total, and the "prefetch of ... done" line not yet logged);
#       - the read took L <= B + SLACK seconds (default 2), and at most 3 x (its on-demand
#         bytes / RATE + one RTT per on-demand request) + 1 s: it did not wait on prefetch
#         requests; draining the prefetch takes ~68 MB / (2 x RATE), about 14 s at 20mbit;
#       - the prefetch then finishes (its "done" line), at least 3 x L after the read started:
#         the read was served well before the prefetch it overtook;
#       - both nodes' sha256 of every file equals the original image layer's file.
# RATE / RTT (default 20mbit / 20ms), SLACK. LAZYSNAP_BUILD_DIR: the build directory (default
# build/). Needs root.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result prefetch_priority
[ "$(id -u)" = 0 ] || ls_die "needs root (containerd, FUSE, overlay)"
for tool in containerd ctr ctr-remote runc skopeo docker-registry jq; do
  command -v "$tool" >/dev/null || ls_die "$tool is not installed"
done

ls_build lazysnap lazysnapd lazysnap-shaper || ls_die "build failed"
LAZYSNAP=$(ls_tool lazysnap)
IMAGE=$(ls_python_image)
RATE=${RATE:-20mbit}
RTT=${RTT:-20ms}
SLACK=${SLACK:-2}
# Files near the end of the layer's blob (last of the background fetch's blob order), which
# neither the container's start nor the warm-up reads: ~2 MB.
READ_FILES=(/var/cache/debconf/templates.dat /var/cache/debconf/templates.dat-old
  /var/lib/dpkg/info/libstdc++6:amd64.symbols /var/lib/dpkg/info/tzdata.templates
  /usr/share/zoneinfo/tzdata.zi)

ls_tmpdir pfp
T=$LS_TMP
# The expected sha256 of each file, from the original (gzip) layer of the image.
LAYER=$(ls_oci_blob "$IMAGE" "$(ls_oci_layers "$IMAGE" python | head -1 | cut -d' ' -f1)")
mkdir -p "$T/orig"
tar -xzf "$LAYER" -C "$T/orig" "${READ_FILES[@]#/}" || ls_fail "files missing from the image layer"
WANT=$(cd "$T/orig" && sha256sum "${READ_FILES[@]#/}" | sed 's|  |  /|')

ls_start_registry "$T/reg"
REG_PORT=${LS_REGISTRY##*:}
"$LAZYSNAP" image convert --oci-layout "$IMAGE:python" "$T/esgz:lz" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$T/esgz:lz" "docker://$LS_REGISTRY/python:esgz"
ls_start_shaper "$REG_PORT" "$RATE" "$RTT"
REF=127.0.0.1:$LS_SHAPER_PORT/python:esgz # localhost: plain HTTP for lazysnapd
# RATE in bytes/s and RTT in seconds (for the bound below): 20mbit, 500kbit; 20ms, 0.05s.
RATE_BPS=$(awk -v r="$RATE" 'BEGIN { m = 1; if (r ~ /gbit$/) m = 1e9; else if (r ~ /mbit$/) m = 1e6;
  else if (r ~ /kbit$/) m = 1e3; v = r + 0; if (v <= 0) exit 1; print v * m / 8 }') ||
  ls_die "RATE $RATE: want NNmbit, NNkbit or NNgbit"
RTT_S=$(awk -v t="$RTT" 'BEGIN { v = t + 0; print (t ~ /ms$/) ? v / 1000 : v }')
BLOB_SIZE=$(jq -r '.layers[0].size' "$(ls_oci_manifest "$T/esgz" lz)")
ls_log "image $REF (layer: $BLOB_SIZE bytes), link $RATE per connection, rtt $RTT"

# start_node NAME PREFETCH_TOML: lazysnapd with root $T/NAME/lz, then its containerd.
# Sets LZD_PID, CTR, NODE_SOCK, LZD_LOG.
start_node() {
  local d=$T/$1
  ls_start_lazysnapd "$d" "[prefetch]
record = false
replay = false
landmark = false
registry_lookup = false
$2"
  LZD_LOG=$d/lazysnapd.log
  LZD_PID=$LS_LAZYSNAPD_PID
  ls_start_containerd "$d/c" "$d/lz.sock"
  CTR=$LS_CTR
  NODE_SOCK=$LS_CTR_SOCK
}

# run_node NAME: rpull, warm-up, then the timed read. Sets T0 and T1 (epoch ns, in the
# container, around the read), READ_S (seconds) and GOT (sha256sum's output).
run_node() {
  local out
  ctr-remote -a "$NODE_SOCK" -n test image rpull --plain-http --snapshotter lazysnap "$REF" \
    >/dev/null || ls_fail "rpull on $1"
  out=$($CTR run --rm --runc-root "$LS_RUNC_ROOT" --snapshotter lazysnap "$REF" \
    "$(ls_ctr_id "pfp-$1-warm")" \
    sh -c 'date +%s%N; sha256sum /etc/hostname' 2>&1) || ls_fail "warm-up run on $1: $out"
  fetched_before=$(ondemand_figures)
  # shellcheck disable=SC2016
  out=$($CTR run --rm --runc-root "$LS_RUNC_ROOT" --snapshotter lazysnap "$REF" \
    "$(ls_ctr_id "pfp-$1")" sh -c \
    't0=$(date +%s%N); s=$(sha256sum "$@"); t1=$(date +%s%N); echo "T $t0 $t1"; echo "$s"' \
    sh "${READ_FILES[@]}" 2>&1) || ls_fail "timed run on $1: $out"
  read -r _ T0 T1 <<<"$(grep '^T ' <<<"$out")" || ls_fail "run on $1 printed: $out"
  GOT=$(grep -v '^T ' <<<"$out")
  READ_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  read -r req0 bytes0 <<<"$fetched_before"
  read -r req1 bytes1 <<<"$(ondemand_figures)"
  READ_REQUESTS=$((req1 - req0))
  READ_BYTES=$((bytes1 - bytes0))
  [ "$GOT" = "$WANT" ] || ls_fail "node $1 read wrong content:"$'\n'"$GOT"$'\nwant:\n'"$WANT"
}

# layer_line: the layer's SIGUSR1 figures line (the one naming blob bytes fetched).
layer_line() {
  local n
  n=$(grep -c "prefetch totals:" "$LZD_LOG" || true)
  kill -USR1 "$LZD_PID"
  ls_wait_for 10 eval "[ \$(grep -c 'prefetch totals:' '$LZD_LOG') -gt $n ]" ||
    ls_fail "no prefetch totals logged"
  grep "blob bytes fetched" "$LZD_LOG" | tail -1
}

# ondemand_figures: the layer's on-demand requests and blob bytes so far (all requests and bytes
# less prefetch's).
ondemand_figures() {
  local l
  l=$(layer_line)
  sed -E 's/.*: ([0-9]+) requests, ([0-9]+) of [0-9]+ blob bytes fetched.*; prefetch: ([0-9]+) bytes prefetched in ([0-9]+) requests.*/\1 \2 \3 \4/' <<<"$l" |
    awk '{ print $1 - $4, $2 - $3 }'
}

# ---- A. baseline: the same read with no prefetch ----------------------------------------------
start_node A 'background_fetch = false'
run_node A
B_S=$READ_S
line=$(layer_line)
grep -qF "; prefetch: 0 bytes prefetched in 0 requests" <<<"$line" || ls_fail "node A prefetched: $line"
ls_log "node A (no prefetch): the read took $B_S s; ${line#*: }"

# ---- B. the same read during a background fetch of the whole layer ------------------------------
start_node B 'background_fetch = true
workers = 2'
run_node B
L_S=$READ_S
line=$(layer_line) # right after the read
done_line=$(grep -F "prefetch of " "$LZD_LOG" | grep -F " done in " || true)
[ -z "$done_line" ] || ls_fail "the prefetch finished before the read ended: $done_line"
cached=$(sed -E 's/.* chunks \(([0-9]+)\/([0-9]+) bytes\) cached.*/\1 \2/' <<<"$line")
read -r have total <<<"$cached"
[ -n "$total" ] && [ "$have" -lt "$total" ] || ls_fail "layer fully cached after the read: $line"
ls_log "node B (background fetch): the read took $L_S s; then $have of $total bytes cached;" \
  "${line#*; }"
awk -v l="$L_S" -v b="$B_S" -v s="$SLACK" 'BEGIN { exit !(l <= b + s) }' ||
  ls_fail "the read took $L_S s during prefetch, $B_S s without (> +$SLACK s): delayed behind it"
# What the link allows: its on-demand bytes at RATE plus one RTT per request (an upper bound:
# requests taken one after another), x3 + 1 s for the processes and FUSE.
bound=$(awk -v b="$READ_BYTES" -v n="$READ_REQUESTS" -v r="$RATE_BPS" -v t="$RTT_S" \
  'BEGIN { printf "%.2f", 3 * (b / r + n * t) + 1 }')
ls_log "node B: the read fetched $READ_BYTES blob bytes in $READ_REQUESTS on-demand requests;" \
  "bound from the link: $bound s"
[ "$READ_REQUESTS" -gt 0 ] || ls_fail "the read fetched nothing on demand (were its files prefetched?)"
awk -v l="$L_S" -v b="$bound" 'BEGIN { exit !(l <= b) }' ||
  ls_fail "the read took $L_S s, over $bound s (its bytes at $RATE, one RTT a request, x3 + 1 s)"

ls_wait_for 150 grep -qF " done in " "$LZD_LOG" || ls_fail "the prefetch did not finish"
done_line=$(grep -F "prefetch of " "$LZD_LOG" | grep -F " done in " | tail -1)
# The log's time stamp (UTC, ms) as epoch ns.
done_ns=$(date -d "$(cut -d' ' -f1 <<<"$done_line")" +%s%N)
ahead=$(awk -v a="$T1" -v b="$done_ns" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
since=$(awk -v a="$T0" -v b="$done_ns" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
ls_log "prefetch: ${done_line#*prefetch of }; it ended $ahead s after the read did"
awk -v l="$L_S" -v s="$since" 'BEGIN { exit !(s >= 3 * l) }' ||
  ls_fail "the prefetch ended $since s after the read started, less than 3 x the read's $L_S s"
line=$(layer_line)
grep -qF "$total/$total bytes) cached" <<<"$line" || ls_fail "layer not complete after prefetch: $line"
ls_log "ok: read of ${#READ_FILES[@]} files at the layer's end: $L_S s during prefetch," \
  "$B_S s without; served $ahead s before the prefetch finished; content verified"
