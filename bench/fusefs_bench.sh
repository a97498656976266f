#!/usr/bin/env bash
# fusefs benchmark: the python image's layer (scripts/lib.sh), converted to eStargz, mounted
# with `lazysnap mount --blob` (a local blob: no network in these figures), against the same
# layer extracted by GNU tar on local disk. Prints:
#   - python3 startup (`chroot DIR python3 -c pass`): cold (nothing cached: every chunk fetched
#     from the blob), chunks cached + page cache dropped, page cache warm; vs local disk;
#   - sequential read of the layer's largest file, chunks cached, page cache dropped, vs disk;
#   - a stat-everything walk (find -printf of size/mode/owner): fresh mount vs the extracted tree
#     with the page cache dropped, and both warm;
#   - memory of the mount process per mounted file: RssAnon serving the python layer minus
#     RssAnon serving a ~150-entry layer, less the names, per entry (after a stat walk).
# Needs root and /dev/fuse. Drops the page cache (echo 3 > /proc/sys/vm/drop_caches) between
# runs. $LAZYSNAP_BUILD_DIR: the build to use. $REPEAT: runs per figure, default 5; the best
# (smallest) time is printed, the figure least disturbed by other work on the machine.
# $ONLY=memory: only the memory figures (no timing runs, no page cache drops); $ONLY=seqread:
# only the sequential read; $ONLY=opens: python3 startup with and without FUSE passthrough.
# Sequential read (issue #4: within 10 % of local disk): `dd bs=1M` of the file through the
# mount and from the extracted tree, INTERLEAVED (mount, disk, mount, disk, ...: $PAIRS pairs,
# default 3 x REPEAT), each after `sync; echo 3 > drop_caches`; prints the median and min-max
# of each and of the per-pair ratio, plus the best of each. $SEQ_IMAGE=gcc reads the gcc
# image's largest file (cc1, 33 MB) instead of the python layer's (python3.11, 6.8 MB; with
# ONLY=seqread only that image is converted). $MOUNT_ARGS: extra `lazysnap mount` flags (e.g.
# "--read-ahead-kb 4096 --max-read 262144"; "--passthrough-min-bytes 0": FUSE passthrough
# off, as before it) for A/B runs. Run it under
# `flock /tmp/lazysnap-bench.lock` on a shared machine.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
[ "$(id -u)" = 0 ] || ls_die "needs root"
REPEAT=${REPEAT:-5}
ls_build lazysnap
LAZYSNAP=$(ls_tool lazysnap)
ls_tmpdir fusefs-bench
T=$LS_TMP
ONLY=${ONLY:-all}
SEQ_IMAGE=${SEQ_IMAGE:-python}
if [ "$ONLY" = seqread ] && [ "$SEQ_IMAGE" = gcc ]; then
  IMG=$(ls_gcc_image)
  "$LAZYSNAP" image convert --oci-layout -q "$IMG:gcc" "$T/oci:estargz"
else
  IMG=$(ls_python_image)
  "$LAZYSNAP" image convert --oci-layout -q "$IMG:python" "$T/oci:estargz"
  # A small layer (the special tree, ~150 entries) for the memory figures' fixed costs.
  "$LAZYSNAP" image convert --oci-layout -q "$IMG:python-special" "$T/oci:special"
  SMALL_BLOB=$(ls_oci_blob "$T/oci" "$(ls_oci_layers "$T/oci" special | tail -1 | cut -d' ' -f1)")
fi
read -r DIGEST _ SIZE < <(ls_oci_layers "$T/oci" estargz | tail -1)
BLOB=$(ls_oci_blob "$T/oci" "$DIGEST")
mkdir -p "$T/ext" "$T/mnt"
tar --xattrs --xattrs-include='*' --numeric-owner -xpzf "$BLOB" -C "$T/ext"
MNT=$T/mnt
PID=
ls_on_exit '[ -z "$PID" ] || kill "$PID" 2>/dev/null; sleep 0.5; umount -l "$MNT" 2>/dev/null || true'

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }'; }
mount_blob() {  # CACHE_DIR [BLOB]
  # shellcheck disable=SC2086  # MOUNT_ARGS: several flags
  "$LAZYSNAP" mount ${MOUNT_ARGS:-} --blob "${2:-$BLOB}" --cache-dir "$1" "$MNT" >"$T/mount.log" 2>&1 &
  PID=$!
  ls_wait_for 30 grep -qF " $MNT fuse.lazysnap " /proc/self/mounts || ls_die "no mount"
}
unmount_blob() { kill -TERM "$PID"; wait "$PID" || true; PID=; }
rss_kb() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$PID/status"; }  # FIELD
# the best time (seconds, $TIMED_FMT) of running "$@" REPEAT times, each after `$PREP`.
timed() {
  local prep=$1 i s
  shift
  for i in $(seq "$REPEAT"); do
    eval "$prep"
    s=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    since "$s"
    echo
  done | sort -n | head -1 | awk -v f="${TIMED_FMT:-%.3f}" '{ printf f, $1 }'
}
row() { printf '%-58s %10s %10s\n' "$@"; }

ENTRIES=$(find "$T/ext" | wc -l)
BIG=$(cd "$T/ext" && find . -type f -printf '%s %P\n' | sort -n | tail -1 | cut -d' ' -f2)
BIGSIZE=$(stat -c %s "$T/ext/$BIG")
echo "layer: $SIZE bytes eStargz, $ENTRIES entries; largest file $BIG ($BIGSIZE bytes)"
row "" "lazysnap" "local disk"
WALK=(find . -printf '%s %m %u %g %T@\n')
walk() { (cd "$1" && "${WALK[@]}"); }
if [ "$ONLY" != memory ]; then

# ---- python startup ---------------------------------------------------------------------------
PY=(/usr/bin/python3 -c pass)
cold_python() {  # fresh cache and mount each run
  local i s
  for i in $(seq "$REPEAT"); do
    rm -rf "$T/cache"
    mkdir -p "$T/cache"
    mount_blob "$T/cache"
    drop
    s=$EPOCHREALTIME
    chroot "$MNT" "${PY[@]}"
    since "$s"
    echo
    unmount_blob
  done | sort -n | head -1 | awk '{ printf "%.3f", $1 }'
}
if [ "$ONLY" = all ]; then
COLD=$(cold_python)
row "python3 -c pass, cold (chunks from the blob), s" "$COLD" "$(timed drop chroot "$T/ext" "${PY[@]}")"
mount_blob "$T/cache"
row "python3 -c pass, chunks cached, page cache dropped, s" "$(timed drop chroot "$MNT" "${PY[@]}")" \
  "$(timed drop chroot "$T/ext" "${PY[@]}")"
row "python3 -c pass, page cache warm, s" "$(timed : chroot "$MNT" "${PY[@]}")" \
  "$(timed : chroot "$T/ext" "${PY[@]}")"
else
  mount_blob "$T/cache"
fi

# ---- the cost of answering opens (FUSE passthrough) ------------------------------------------
# $ONLY=opens: python3 startup through a mount with passthrough (the default: every open is
# answered, an OPEN and a RELEASE round trip a file) and through a second mount of the same
# blob without (--passthrough-min-bytes 0: the kernel skips opens), both with every chunk
# cached; INTERLEAVED $PAIRS pairs with the page cache warm, then $PAIRS with it dropped.
if [ "$ONLY" = opens ]; then
  MNT2=$T/mnt-off
  mkdir -p "$MNT2" "$T/cache-off"
  "$LAZYSNAP" mount --passthrough-min-bytes 0 --blob "$BLOB" --cache-dir "$T/cache-off" "$MNT2" \
    >"$T/mount-off.log" 2>&1 &
  PID2=$!
  ls_on_exit 'kill "$PID2" 2>/dev/null; sleep 0.5; umount -l "$MNT2" 2>/dev/null || true'
  ls_wait_for 30 grep -qF " $MNT2 fuse.lazysnap " /proc/self/mounts || ls_die "no mount"
  for i in 1 2 3; do chroot "$MNT" "${PY[@]}"; chroot "$MNT2" "${PY[@]}"; sleep 1; done
  one() { local s=$EPOCHREALTIME; chroot "$1" "${PY[@]}"; since "$s"; }
  PAIRS=${PAIRS:-21}
  for i in $(seq "$PAIRS"); do echo "$(one "$MNT") $(one "$MNT2")"; done >"$T/warm.txt"
  for i in $(seq "$PAIRS"); do echo "$(drop; one "$MNT") $(drop; one "$MNT2")"; done >"$T/cold.txt"
  med() {  # FILE COLUMN: "median (min-max)" in ms
    awk -v c="$2" '{ print $c * 1000 }' "$1" | sort -g |
      awk '{ v[NR] = $1 } END { printf "%.1f (%.1f-%.1f)", v[int((NR + 1) / 2)], v[1], v[NR] }'
  }
  echo "python3 -c pass, chunks cached, $PAIRS interleaved pairs, ms: median (min-max)"
  echo "  page cache warm:    passthrough $(med "$T/warm.txt" 1), opens skipped $(med "$T/warm.txt" 2)"
  echo "  page cache dropped: passthrough $(med "$T/cold.txt" 1), opens skipped $(med "$T/cold.txt" 2)"
  unmount_blob
  echo "  the mount's figures: $(grep -o '[0-9]* passthrough opens' "$T/mount.log" || echo 'none')"
  exit 0
fi

# ---- sequential read --------------------------------------------------------------------------
cat "$MNT/$BIG" >/dev/null  # all its chunks into the cache
# With FUSE passthrough (on unless MOUNT_ARGS has --passthrough-min-bytes 0), the daemon then
# copies the file for it in the background: wait for the copy, so every timed read uses it.
has_copy() { [ -n "$(find "$T/cache" -path '*/files/*' -size "${BIGSIZE}c" 2>/dev/null | head -1)" ]; }
if [[ "${MOUNT_ARGS:-}" != *"--passthrough-min-bytes 0"* ]]; then
  ls_wait_for 20 has_copy || echo "  (no passthrough copy of $BIG: reads go through the daemon)"
fi
# One pair: MB/s through the mount, then from the disk, each read timed to the microsecond
# (python3.11 takes ~10 ms) after dropping the page cache.
seq_mbps() {
  local s
  drop
  s=$EPOCHREALTIME
  dd if="$1" of=/dev/null bs=1M status=none
  awk -v b="$BIGSIZE" -v t="$(since "$s")" 'BEGIN { printf "%.0f", b / t / 1e6 }'
}
PAIRS=${PAIRS:-$((3 * REPEAT))}
for i in $(seq "$PAIRS"); do
  echo "$(seq_mbps "$MNT/$BIG") $(seq_mbps "$T/ext/$BIG")"
done >"$T/seq.txt"
[ -z "${SEQ_OUT:-}" ] || cp "$T/seq.txt" "$SEQ_OUT"  # the pairs, "MOUNT_MBPS DISK_MBPS" a line
stat_of() {  # AWK_EXPR: "median (min-max)" of it over the pairs
  awk "{ print $1 }" "$T/seq.txt" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%s (%s-%s)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
row "sequential read of $BIG, chunks cached, page cache dropped, MB/s" "$(stat_of '$1' | cut -d' ' -f1)" \
  "$(stat_of '$2' | cut -d' ' -f1)"
echo "  $PAIRS interleaved pairs, dd bs=1M; lazysnap $(stat_of '$1') MB/s, local disk $(stat_of '$2') MB/s"
echo "  lazysnap / local disk per pair: median (min-max) $(stat_of 'sprintf("%.3f", $1 / $2)');" \
  "best of each: $(awk '$1 > a { a = $1 } $2 > b { b = $2 } END { printf "%.3f", a / b }' "$T/seq.txt")"
unmount_blob
echo "  the mount's figures: $(grep -o '[0-9]* passthrough opens' "$T/mount.log" || echo 'no passthrough opens')"
[ "$ONLY" = seqread ] && exit 0

# ---- stat walk ----------------------------------------------------------------------------------
fresh_walk() {
  local i s
  for i in $(seq "$REPEAT"); do
    mount_blob "$T/cache"
    drop
    s=$EPOCHREALTIME
    walk "$MNT" >/dev/null
    since "$s"
    echo
    unmount_blob
  done | sort -n | head -1 | awk '{ printf "%.3f", $1 }'
}
row "stat walk of $ENTRIES entries, fresh mount / dropped caches, s" "$(fresh_walk)" \
  "$(timed drop walk "$T/ext")"
mount_blob "$T/cache"
walk "$MNT" >/dev/null
row "stat walk, warm, s" "$(timed : walk "$MNT")" "$(timed : walk "$T/ext")"

unmount_blob
fi

# ---- memory -------------------------------------------------------------------------------------
# RssAnon is the process's own memory (heap, stacks); VmRSS adds the shared libraries' pages.
# Per mounted file: the RssAnon of serving the python layer minus that of serving the small
# special layer (same process, same walk: the fixed costs cancel), less the names' bytes
# (base names + symlink targets, as the mount lists them), over the difference in entries.
names_bytes() { (cd "$1" && find . -mindepth 1 -printf '%f%l') | wc -c; }
mem_of() {  # CACHE_DIR BLOB: prints "RSS_KB RSSANON_KB_AFTER_MOUNT RSSANON_KB_AFTER_WALK ENTRIES NAME_BYTES"
  local r a0 a1 n b
  mount_blob "$1" "$2"
  a0=$(rss_kb RssAnon)
  n=$(walk "$MNT" | wc -l)
  b=$(names_bytes "$MNT")
  r=$(rss_kb VmRSS) a1=$(rss_kb RssAnon)
  unmount_blob
  echo "$r $a0 $a1 $n $b"
}
read -r R1 A0 A1 N1 B1 < <(mem_of "$T/cache" "$BLOB")
rm -rf "$T/cache-small" && mkdir -p "$T/cache-small"
read -r _ S0 S1 N2 B2 < <(mem_of "$T/cache-small" "$SMALL_BLOB")
awk -v r1="$R1" -v a0="$A0" -v a1="$A1" -v n1="$N1" -v b1="$B1" -v s0="$S0" -v s1="$S1" \
    -v n2="$N2" -v b2="$B2" 'BEGIN {
  printf "memory: mount process RSS %.1f MB, RssAnon %.1f MB after mount, %.1f MB after a stat walk of %d entries\n",
    r1 / 1024, a0 / 1024, a1 / 1024, n1
  printf "memory: same for a %d-entry layer (fixed costs): RssAnon %.1f MB after mount, %.1f MB after the walk\n",
    n2, s0 / 1024, s1 / 1024
  printf "memory per mounted file: %.0f bytes of RssAnon, %.0f bytes beside names (%.1f bytes of names per file)\n",
    (a1 - s1) * 1024 / (n1 - n2), ((a1 - s1) * 1024 - (b1 - b2)) / (n1 - n2), (b1 - b2) / (n1 - n2) }'
