#!/usr/bin/env bash
# `lazysnap mount` of a real layer, lazily, from a real registry:
#  1. converts the cached debootstrap python image (scripts/lib.sh) to eStargz with
#     `lazysnap image convert`, pushes it with skopeo to a docker-registry the test starts;
#  2. mounts its layer lazily from the registry, runs `chroot MOUNT python3 -c 'print(1)'`,
#     stops the mount and prints the bytes fetched against the layer size;
#  3. remounts (same cache), starts reading the whole tree and kill -9's the mount process in
#     the middle of the fetches, cleans up the dead mount (umount -l);
#  4. remounts again: the whole tree (types, modes, owners, sizes, mtimes, content digests,
#     link targets, devices, hard links, xattrs; `layer_dump tree`) equals GNU tar's
#     extraction of the source layer and of the converted blob (minus its TOC and landmark
#     entries), directory mtimes aside (see step 4).
# Needs root, /dev/fuse, docker-registry, skopeo, jq. $LAZYSNAP_BUILD_DIR: the build to use.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result fusefs_lazy
[ "$(id -u)" = 0 ] || ls_die "needs root"
[ -e /dev/fuse ] || ls_die "needs /dev/fuse"
ls_build lazysnap layer_dump
LAZYSNAP=$(ls_tool lazysnap)
DUMP=$(ls_tool layer_dump)

ls_tmpdir fusefs
T=$LS_TMP
IMG=$(ls_python_image)

ls_log "converting the python image to eStargz"
"$LAZYSNAP" image convert --oci-layout -q "$IMG:python" "$T/oci:estargz"
read -r DIGEST MEDIA SIZE < <(ls_oci_layers "$T/oci" estargz)
BLOB=$(ls_oci_blob "$T/oci" "$DIGEST")
ls_log "layer $DIGEST ($MEDIA, $SIZE bytes)"

ls_start_registry "$T/registry"
skopeo copy -q --dest-tls-verify=false "oci:$T/oci:estargz" "docker://$LS_REGISTRY/python:estargz"
REF=$LS_REGISTRY/python:estargz

MNT=$T/mnt
mkdir -p "$MNT" "$T/cache"
MOUNT_PID=
# mount_layer LOG: starts `lazysnap mount` in the background and waits for the mount.
mount_layer() {
  "$LAZYSNAP" --log-level warn mount "$REF" --digest "$DIGEST" --plain-http \
    --cache-dir "$T/cache" "$MNT" >"$1" 2>&1 &
  MOUNT_PID=$!
  ls_wait_for 30 grep -qF " $MNT fuse.lazysnap " /proc/self/mounts ||
    { cat "$1" >&2; ls_die "the layer did not mount"; }
}
# stop_layer: SIGTERM, wait; the process unmounts and prints its counters.
stop_layer() {
  kill -TERM "$MOUNT_PID"
  wait "$MOUNT_PID" || ls_die "lazysnap mount exited with $?"
  MOUNT_PID=
  ! grep -qF " $MNT " /proc/self/mounts || ls_die "still mounted after SIGTERM"
}
ls_on_exit '[ -z "$MOUNT_PID" ] || kill -9 "$MOUNT_PID" 2>/dev/null; umount -l "$MNT" 2>/dev/null || true'

# ---- 2. a lazy python start ------------------------------------------------------------------
ls_log "mounting lazily and running python3"
mount_layer "$T/mount1.log"
START=$EPOCHREALTIME
OUT=$(chroot "$MNT" /usr/bin/python3 -c 'print(1)')
[ "$OUT" = 1 ] || ls_die "python3 printed '$OUT'"
ls_log "python3 ran in $(ls_elapsed "$START") s from a cold lazy mount"
stop_layer
FETCHED=$(grep -oE '^fetched [0-9]+' "$T/mount1.log" | awk '{print $2}')
[ -n "$FETCHED" ] || { cat "$T/mount1.log" >&2; ls_die "no fetch counters printed"; }
echo "python3 -c 'print(1)': fetched $FETCHED of $SIZE layer bytes" \
  "($(awk -v a="$FETCHED" -v b="$SIZE" 'BEGIN { printf "%.1f", 100 * a / b }')%)"
grep '^fetched' "$T/mount1.log"
[ "$FETCHED" -lt "$SIZE" ] || ls_die "fetched the whole layer for one python start"

# ---- 3. kill -9 in the middle of fetches ------------------------------------------------------
ls_log "remounting, reading everything, kill -9 mid-fetch"
mount_layer "$T/mount2.log"
(find "$MNT" -type f -exec cat {} + >/dev/null 2>&1 || true) &
READER=$!
sleep 1.5
kill -9 "$MOUNT_PID"
wait "$MOUNT_PID" 2>/dev/null || true
MOUNT_PID=
wait "$READER" 2>/dev/null || true
umount -l "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
! grep -qF " $MNT " /proc/self/mounts || ls_die "the dead mount is still there"
ls_log "cache after the kill: $(du -sh "$T/cache" | cut -f1)"

# ---- 4. remount: every file reads correctly ----------------------------------------------------
# Directory mtimes are left out: GNU tar leaves some at extraction time (a few directories of
# this layer, in the source layer's extraction as in the converted one's), where the mount
# shows the tar header's value.
ls_log "extracting the source layer and the converted blob with GNU tar"
read -r SRC_DIGEST _ _ < <(ls_oci_layers "$IMG" python)
mkdir "$T/ext" "$T/ext2"
tar --xattrs --xattrs-include='*' --numeric-owner -xpzf "$(ls_oci_blob "$IMG" "$SRC_DIGEST")" -C "$T/ext"
tar --xattrs --xattrs-include='*' --numeric-owner -xpzf "$BLOB" -C "$T/ext2"
rm -f "$T/ext2/stargz.index.json" "$T/ext2/.prefetch.landmark" "$T/ext2/.no.prefetch.landmark"
"$DUMP" tree "$T/ext" --mtime-seconds | sed -E '/ type=dir /s/ mtime=[0-9.]+//' >"$T/want.txt"
"$DUMP" tree "$T/ext2" --mtime-seconds | sed -E '/ type=dir /s/ mtime=[0-9.]+//' >"$T/want2.txt"

ls_log "remounting and comparing the whole tree"
mount_layer "$T/mount3.log"
"$DUMP" tree "$MNT" --mtime-seconds >"$T/got.raw" || ls_die "reading the mounted tree failed"
sed -E '/ type=dir /s/ mtime=[0-9.]+//' "$T/got.raw" >"$T/got.txt"
stop_layer
grep '^fetched' "$T/mount3.log"
if ! diff -u "$T/want.txt" "$T/got.txt" >"$T/diff.txt"; then
  head -40 "$T/diff.txt" >&2
  ls_die "the mounted tree differs from tar's extraction ($(grep -c '^[-+][^-+]' "$T/diff.txt") lines)"
fi
diff -u "$T/want2.txt" "$T/got.txt" >&2 || ls_die "the mounted tree differs from the converted blob's extraction"
echo "tree: $(wc -l <"$T/got.txt") entries identical to GNU tar's extraction of the source layer"
