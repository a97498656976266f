#!/usr/bin/env bash
# Round trip of every layer of the Debian python test image (plus a layer holding devices, fifos,
# xattrs, setuid files, hard links, long names, big ids and whiteouts) through
# `lazysnap image convert --oci-layout`, in both formats (eStargz, zstd:chunked):
#  1. the output layout is valid: blobs hash to their descriptors, diff_ids match;
#  2. GNU tar extracts each output layer to exactly the tree it extracts from the input layer
#     (content, types, modes, owners, mtimes to the nanosecond, xattrs, symlink targets,
#     hard-link groups, device numbers), as test/tools/layer_dump's tree mode prints them
#     (eStargz's own entries, stargz.index.json and the landmark files, left out);
#  3. lazysnap's reader (layer_dump blob mode: OpenLayer + ReadFile, every chunk verified, the
#     TOC checked against the layer's annotations) gives that same tree. eStargz TOCs hold
#     mtimes in whole seconds, so that comparison is at second precision (rounded, as the
#     reference writer does).
# Needs root (device nodes, owners, trusted.* xattrs). Prints PASS/FAIL.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result format_roundtrip
[ "$(id -u)" = 0 ] || ls_die "needs root"

ls_build lazysnap layer_dump >/dev/null
LAZYSNAP=$(ls_tool lazysnap)
DUMP=$(ls_tool layer_dump)
IMAGE=$(ls_python_image)
TAG=python-special
ls_tmpdir roundtrip
T=$LS_TMP
fails=0

in_manifest=$(ls_oci_manifest "$IMAGE" "$TAG")
n=$(jq '.layers | length' "$in_manifest")
[ "$n" -ge 2 ] || ls_die "test image has $n layers"

# The input layers' trees, extracted once.
for ((i = 0; i < n; i++)); do
  d=$(jq -r ".layers[$i].digest" "$in_manifest")
  ls_extract_layer "$(ls_oci_blob "$IMAGE" "$d")" "$T/in-$i"
  "$DUMP" tree "$T/in-$i" >"$T/in-$i.txt"
  "$DUMP" tree "$T/in-$i" --mtime-seconds >"$T/in-$i.sec.txt"
  rm -rf "$T/in-$i"
done
# The special layer must hold what it was made to hold, or the comparisons prove little.
for want in 'special/null type=chr' 'special/loop7 type=blk' 'special/fifo type=fifo' \
  'special/setuid type=reg mode=04755' 'special/sticky type=dir mode=01777' \
  'special/biguid type=reg mode=00644 uid=3000000 gid=4000000' 'special/links/b type=reg mode=00644 uid=0 gid=0 size=15 mtime' \
  'hl=special/dir/sub/c xattrs=-' 'xattrs=trusted.lazysnap=' 'etc/.wh.motd type=reg' 'opt/opaque/.wh..wh..opq type=reg' \
  'special/dir/\xc3\xbcn'; do
  grep -qF -- "$want" "$T/in-$((n - 1)).txt" || { ls_log "test image lacks: $want"; fails=$((fails + 1)); }
done

for fmt in estargz zstd-chunked; do
  out=$T/out-$fmt
  args=()
  [ "$fmt" = estargz ] || args=(--format "$fmt")
  start=$EPOCHREALTIME
  if ! "$LAZYSNAP" image convert "${args[@]}" --oci-layout "$IMAGE:$TAG" "$out:conv" >"$T/convert-$fmt.log" 2>&1; then
    cat "$T/convert-$fmt.log" >&2
    ls_log "FAIL: lazysnap image convert ($fmt)"
    fails=$((fails + 1))
    continue
  fi
  ls_log "converted to $fmt in $(ls_elapsed "$start") s"
  ls_check_layout "$out" conv || fails=$((fails + 1))
  m=$(ls_oci_manifest "$out" conv)
  [ "$(jq '.layers | length' "$m")" = "$n" ] || { ls_log "$fmt: layer count changed"; fails=$((fails + 1)); continue; }
  for ((i = 0; i < n; i++)); do
    d=$(jq -r ".layers[$i].digest" "$m")
    blob=$(ls_oci_blob "$out" "$d")
    mt=$(jq -r ".layers[$i].mediaType" "$m")
    case "$fmt" in
      estargz) [ "$mt" = application/vnd.oci.image.layer.v1.tar+gzip ] ;;
      zstd-chunked) [ "$mt" = application/vnd.oci.image.layer.v1.tar+zstd ] ;;
    esac || { ls_log "$fmt layer $i: media type $mt"; fails=$((fails + 1)); }
    # 2. GNU tar: output extraction == input extraction, full precision.
    ls_extract_layer "$blob" "$T/x"
    "$DUMP" tree "$T/x" | ls_strip_format_files >"$T/$fmt-$i.tar.txt"
    rm -rf "$T/x"
    ls_same "$fmt layer $i: GNU tar extraction of output vs input" "$T/in-$i.txt" "$T/$fmt-$i.tar.txt" ||
      fails=$((fails + 1))
    # 3. lazysnap's reader.
    mapfile -t ann < <(ls_layer_annotation_args "$m" "$i")
    ref=$T/in-$i.txt
    sec=()
    if [ "$fmt" = estargz ]; then
      ref=$T/in-$i.sec.txt
      sec=(--mtime-seconds)
      [ -n "$(ls_layer_annotation "$m" "$i" containerd.io/snapshot/stargz/toc.digest)" ] ||
        { ls_log "$fmt layer $i: no TOC digest annotation"; fails=$((fails + 1)); }
    else
      [ -n "$(ls_layer_annotation "$m" "$i" io.github.containers.zstd-chunked.manifest-checksum)" ] ||
        { ls_log "$fmt layer $i: no manifest-checksum annotation"; fails=$((fails + 1)); }
    fi
    if "$DUMP" blob "$blob" "${ann[@]}" "${sec[@]}" >"$T/$fmt-$i.blob.raw" 2>"$T/$fmt-$i.blob.err"; then
      ls_strip_format_files <"$T/$fmt-$i.blob.raw" >"$T/$fmt-$i.blob.txt"
      ls_same "$fmt layer $i: lazysnap reader vs input extraction" "$ref" "$T/$fmt-$i.blob.txt" ||
        fails=$((fails + 1))
    else
      ls_log "FAIL: layer_dump blob ($fmt layer $i): $(cat "$T/$fmt-$i.blob.err")"
      fails=$((fails + 1))
    fi
  done
done

ls_log "$fails failure(s)"
[ "$fails" = 0 ]
