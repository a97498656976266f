#!/usr/bin/env bash
# First read of python's startup files at a given bandwidth (issue #4's benchmark): the python
# image's layer (scripts/lib.sh), converted to eStargz by lazysnap, mounted lazily by
# bench/first_read_bench (LayerFs + LayerCache, the blob read through a rate-limited link with
# an added RTT), then `chroot MNT python3 -c pass`. For each coalescing gap and readahead it
# prints the time, requests, bytes fetched and the compressed bytes of the chunks fetched
# (target: fetched within 1.2x of those). Needs root and /dev/fuse.
#   RATE_MBIT (default 100), RTT_MS (0), GAPS_KIB ("0,32,128,512"), READAHEAD_KIB ("128,1024"),
#   REPEAT (1), LAZYSNAP_BUILD_DIR: the build to use.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
[ "$(id -u)" = 0 ] || ls_die "needs root"
ls_build lazysnap first_read_bench || ls_die "build failed"
LAZYSNAP=$(ls_tool lazysnap)
BENCH=$LS_BUILD/bench/first_read_bench
ls_tmpdir first-read
T=$LS_TMP
IMG=$(ls_python_image)
"$LAZYSNAP" image convert --oci-layout -q "$IMG:python" "$T/oci:estargz"
read -r DIGEST _ _ < <(ls_oci_layers "$T/oci" estargz)
BLOB=$(ls_oci_blob "$T/oci" "$DIGEST")
"$BENCH" --blob="$BLOB" --dir="$T" --rate_mbit="${RATE_MBIT:-100}" --rtt_ms="${RTT_MS:-0}" \
  --gaps_kib="${GAPS_KIB:-0,32,128,512}" --readahead_kib="${READAHEAD_KIB:-128,1024}" \
  --repeat="${REPEAT:-1}"
