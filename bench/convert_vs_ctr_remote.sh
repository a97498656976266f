#!/usr/bin/env bash
# Conversion throughput: lazysnap image convert against stargz-snapshotter's
# `ctr-remote image convert --estargz --oci`, on the same image, same machine, same run.
#
#   bash bench/convert_vs_ctr_remote.sh [RUNS]      (as root; default 3 runs of each)
#
# The image is the cached debootstrap Debian+python3 image (scripts/lib.sh). ctr-remote converts
# inside a containerd this script starts (own root, state and socket); lazysnap converts between
# OCI layouts. Both use every core. Prints one line per run and the median of each tool: wall
# seconds, CPU seconds, uncompressed MB/s and the output size. Figures, no pass/fail.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${1:-3}
[ "$(id -u)" = 0 ] || { echo "run as root (containerd)" >&2; exit 1; }
source scripts/lib.sh
ls_build lazysnap >/dev/null
LAZYSNAP=$(ls_tool lazysnap)
IMAGE=$(ls_python_image)
TAG=python
ls_tmpdir convert-bench
T=$LS_TMP
m=$(ls_oci_manifest "$IMAGE" "$TAG")
usize=0
for d in $(jq -r '.layers[].digest' "$m"); do
  usize=$((usize + $(gzip -dc "$(ls_oci_blob "$IMAGE" "$d")" | wc -c)))
done

ls_start_containerd "$T/c"
tar -C "$IMAGE" --exclude=.complete -cf "$T/image.tar" .
$LS_CTR images import --base-name localhost/python "$T/image.tar" >/dev/null

# timed LABEL CMD...: runs CMD, prints "LABEL wall cpu"; CPU = user+sys of CMD and its children.
timed() {
  local label=$1 start c0 c1 me=$BASHPID
  shift
  c0=$(awk '{print $14+$15+$16+$17}' "/proc/$me/stat")
  start=$EPOCHREALTIME
  "$@" >/dev/null
  local wall
  wall=$(ls_elapsed "$start")
  # Children's CPU (containerd's work for ctr-remote is in containerd itself: see below).
  c1=$(awk '{print $14+$15+$16+$17}' "/proc/$me/stat")
  echo "$label $wall $(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')"
}
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

results=()
for ((r = 1; r <= RUNS; r++)); do
  sync; echo 3 >/proc/sys/vm/drop_caches
  rm -rf "$T/out"
  line=$(timed lazysnap "$LAZYSNAP" image convert --quiet --oci-layout "$IMAGE:$TAG" "$T/out:conv")
  size=$(jq '[.layers[].size] | add' "$(ls_oci_manifest "$T/out" conv)")
  results+=("$line $size")
  echo "run $r: $line s wall/cpu, $(awk -v s="$size" 'BEGIN{printf "%.1f MB", s/1e6}')"

  sync; echo 3 >/proc/sys/vm/drop_caches
  $LS_CTR images rm "localhost/python:esgz-$r" >/dev/null 2>&1 || true
  cpu0=$(cpu_of "$LS_CONTAINERD_PID")
  line=$(timed ctr-remote ctr-remote -a "$LS_CTR_SOCK" -n test images convert --estargz --oci \
    "localhost/python:$TAG" "localhost/python:esgz-$r")
  cpu1=$(cpu_of "$LS_CONTAINERD_PID")
  # ctr-remote converts in its own process; containerd's share (content store writes) is added.
  set -- $line
  cpu=$(awk -v a="$3" -v b="$cpu0" -v c="$cpu1" 'BEGIN { printf "%.2f", a + c - b }')
  mfile=$($LS_CTR images ls | awk -v r="localhost/python:esgz-$r" '$1 == r { print $3 }')
  size=$($LS_CTR content get "$mfile" | jq '[.layers[].size] | add')
  results+=("ctr-remote $2 $cpu $size")
  echo "run $r: ctr-remote $2 $cpu s wall/cpu, $(awk -v s="$size" 'BEGIN{printf "%.1f MB", s/1e6}')"
done

echo
echo "image: $(jq '.layers | length' "$m") layer(s), $(awk -v u="$usize" 'BEGIN{printf "%.1f MB", u/1e6}') uncompressed; $(nproc) cores; $RUNS runs each"
printf '%-12s %10s %10s %12s %10s\n' tool "wall (s)" "cpu (s)" "MB/s (wall)" "out (MB)"
for tool in lazysnap ctr-remote; do
  printf '%s\n' "${results[@]}" | awk -v t="$tool" '$1 == t' | sort -k2 -n |
    awk -v u="$usize" -v n="$RUNS" '{ w[NR]=$2; c[NR]=$3; s[NR]=$4; t=$1 }
      END { m = int((NR + 1) / 2); printf "%-12s %10.2f %10.2f %12.1f %10.1f  (median; wall min %.2f max %.2f)\n",
            t, w[m], c[m], u / 1e6 / w[m], s[m] / 1e6, w[1], w[NR] }'
done
