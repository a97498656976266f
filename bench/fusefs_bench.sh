#!/usr/bin/env bash
# fusefs benchmark: the python image's layer (scripts/lib.sh), converted to eStargz, mounted
# with `lazysnap mount --blob` (a local blob: no network in these figures), against the same
# layer extracted by GNU tar on local disk. Prints:
#   - python3 startup (`chroot DIR python3 -c pass`): cold (nothing cached: every chunk fetched
#     from the blob), chunks cached + page cache dropped, page cache warm; vs local disk;
#   - sequential read of the layer's largest file, chunks cached, page cache dropped, vs disk;
#   - a stat-everything walk (find -printf of size/mode/owner): fresh mount vs the extracted tree
#     with the page cache dropped, and both warm;
#   - memory of the mount process per mounted file (RSS after mount and after the walk).
# Needs root and /dev/fuse. Drops the page cache (echo 3 > /proc/sys/vm/drop_caches) between
# runs. $LAZYSNAP_BUILD_DIR: the build to use. $REPEAT: runs per figure, default 5; the best
# (smallest) time is printed, the figure least disturbed by other work on the machine.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
[ "$(id -u)" = 0 ] || ls_die "needs root"
REPEAT=${REPEAT:-5}
ls_build lazysnap
LAZYSNAP=$(ls_tool lazysnap)
ls_tmpdir fusefs-bench
T=$LS_TMP
IMG=$(ls_python_image)
"$LAZYSNAP" image convert --oci-layout -q "$IMG:python" "$T/oci:estargz"
read -r DIGEST _ SIZE < <(ls_oci_layers "$T/oci" estargz)
BLOB=$(ls_oci_blob "$T/oci" "$DIGEST")
mkdir -p "$T/ext" "$T/mnt"
tar --xattrs --xattrs-include='*' --numeric-owner -xpzf "$BLOB" -C "$T/ext"
MNT=$T/mnt
PID=
ls_on_exit '[ -z "$PID" ] || kill "$PID" 2>/dev/null; sleep 0.5; umount -l "$MNT" 2>/dev/null || true'

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'; }
mount_blob() {  # CACHE_DIR
  "$LAZYSNAP" mount --blob "$BLOB" --cache-dir "$1" "$MNT" >"$T/mount.log" 2>&1 &
  PID=$!
  ls_wait_for 30 grep -qF " $MNT fuse.lazysnap " /proc/self/mounts || ls_die "no mount"
}
unmount_blob() { kill -TERM "$PID"; wait "$PID" || true; PID=; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$PID/status"; }
# the best time (seconds) of running "$@" REPEAT times, each after `$PREP`.
timed() {
  local prep=$1 i s
  shift
  for i in $(seq "$REPEAT"); do
    eval "$prep"
    s=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    since "$s"
    echo
  done | sort -n | head -1 | awk '{ printf "%.3f", $1 }'
}
row() { printf '%-58s %10s %10s\n' "$@"; }

ENTRIES=$(find "$T/ext" | wc -l)
BIG=$(cd "$T/ext" && find . -type f -printf '%s %P\n' | sort -n | tail -1 | cut -d' ' -f2)
BIGSIZE=$(stat -c %s "$T/ext/$BIG")
echo "layer: $SIZE bytes eStargz, $ENTRIES entries; largest file $BIG ($BIGSIZE bytes)"
row "" "lazysnap" "local disk"

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
COLD=$(cold_python)
row "python3 -c pass, cold (chunks from the blob), s" "$COLD" "$(timed drop chroot "$T/ext" "${PY[@]}")"
mount_blob "$T/cache"
row "python3 -c pass, chunks cached, page cache dropped, s" "$(timed drop chroot "$MNT" "${PY[@]}")" \
  "$(timed drop chroot "$T/ext" "${PY[@]}")"
row "python3 -c pass, page cache warm, s" "$(timed : chroot "$MNT" "${PY[@]}")" \
  "$(timed : chroot "$T/ext" "${PY[@]}")"

# ---- sequential read --------------------------------------------------------------------------
cat "$MNT/$BIG" >/dev/null  # all its chunks into the cache
FT=$(timed drop cat "$MNT/$BIG")
DT=$(timed drop cat "$T/ext/$BIG")
mbps() { awk -v b="$BIGSIZE" -v t="$1" 'BEGIN { printf "%.0f", b / t / 1e6 }'; }
row "sequential read of $BIG, chunks cached, page cache dropped, MB/s" "$(mbps "$FT")" "$(mbps "$DT")"
unmount_blob

# ---- stat walk ----------------------------------------------------------------------------------
WALK=(find . -printf '%s %m %u %g %T@\n')
walk() { (cd "$1" && "${WALK[@]}"); }
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

# ---- memory -------------------------------------------------------------------------------------
unmount_blob
mount_blob "$T/cache"
R0=$(rss_kb)
walk "$MNT" >/dev/null
R1=$(rss_kb)
unmount_blob
awk -v r0="$R0" -v r1="$R1" -v n="$ENTRIES" 'BEGIN {
  printf "memory: mount process RSS %.1f MB after mount, %.1f MB after the walk: %.0f bytes per mounted file (whole process), walk added %.0f bytes per file\n",
    r0 / 1024, r1 / 1024, r1 * 1024 / n, (r1 - r0) * 1024 / n }'
