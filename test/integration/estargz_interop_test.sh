#!/usr/bin/env bash
# eStargz interoperability with the reference implementation (stargz-snapshotter 0.12's
# ctr-remote and its estargz Go package), both ways, on the Debian python test image:
#  A. ctr-remote's eStargz -> lazysnap's reader: for every layer `ctr-remote image convert
#     --estargz` makes, layer_dump (OpenLayer + ReadFile, TOC digest and every chunk verified)
#     prints exactly what the reference reader (estargz_ref) prints, and the same tree GNU tar
#     extracts from the original layer (mtimes at the TOC's precision, whole seconds; eStargz's
#     own entries, stargz.index.json and the landmarks, left out).
#  B. lazysnap's eStargz -> the reference tools: estargz_ref opens every layer
#     `lazysnap image convert` makes, verifies its TOC digest annotation and every chunk digest,
#     and lists the original layer's tree; containerd imports and unpacks the image (as plain
#     tar.gz, checking diff_ids); `ctr-remote image get-toc-digest` reports the annotated TOC
#     digest; and `ctr run` of the image prints the python greeting.
# Starts its own containerd (own root, state, socket, config). Needs root. Prints PASS/FAIL.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result estargz_interop
[ "$(id -u)" = 0 ] || ls_die "needs root"

ls_build lazysnap layer_dump estargz_ref_go >/dev/null
LAZYSNAP=$(ls_tool lazysnap)
DUMP=$(ls_tool layer_dump)
REF=$(ls_tool estargz_ref)
IMAGE=$(ls_python_image)
TAG=python-special
ls_tmpdir interop
T=$LS_TMP
fails=0

in_manifest=$(ls_oci_manifest "$IMAGE" "$TAG")
n=$(jq '.layers | length' "$in_manifest")
for ((i = 0; i < n; i++)); do
  d=$(jq -r ".layers[$i].digest" "$in_manifest")
  ls_extract_layer "$(ls_oci_blob "$IMAGE" "$d")" "$T/in-$i"
  "$DUMP" tree "$T/in-$i" --mtime-seconds >"$T/in-$i.txt"
  rm -rf "$T/in-$i"
done

ls_start_containerd "$T/c"
CTR_REMOTE="ctr-remote -a $LS_CTR_SOCK -n test"
tar -C "$IMAGE" --exclude=.complete -cf "$T/image.tar" .
$LS_CTR images import --base-name localhost/python "$T/image.tar" >/dev/null

# ---- A: ctr-remote's eStargz read by lazysnap --------------------------------------------------
start=$EPOCHREALTIME
$CTR_REMOTE images convert --estargz --oci "localhost/python:$TAG" localhost/python:ctr-esgz >/dev/null
ls_log "ctr-remote image convert --estargz: $(ls_elapsed "$start") s"
$LS_CTR images export "$T/ctr-esgz.tar" localhost/python:ctr-esgz
mkdir "$T/ctr-esgz"
tar -C "$T/ctr-esgz" -xf "$T/ctr-esgz.tar"
cm=$(jq -r '.manifests[0].digest' "$T/ctr-esgz/index.json")
cm=$(ls_oci_blob "$T/ctr-esgz" "$cm")
[ "$(jq '.layers | length' "$cm")" = "$n" ] || ls_die "ctr-remote changed the layer count"
for ((i = 0; i < n; i++)); do
  d=$(jq -r ".layers[$i].digest" "$cm")
  blob=$(ls_oci_blob "$T/ctr-esgz" "$d")
  toc=$(ls_layer_annotation "$cm" "$i" containerd.io/snapshot/stargz/toc.digest)
  [ -n "$toc" ] || { ls_log "ctr-remote layer $i has no TOC digest"; fails=$((fails + 1)); continue; }
  "$REF" -toc-digest "$toc" "$blob" >"$T/A-$i.ref.raw" || { fails=$((fails + 1)); continue; }
  ls_strip_format_files <"$T/A-$i.ref.raw" >"$T/A-$i.ref.txt"
  if "$DUMP" blob "$blob" --toc-digest "$toc" --mtime-seconds >"$T/A-$i.ours.raw" 2>"$T/A-$i.err"; then
    ls_strip_format_files <"$T/A-$i.ours.raw" >"$T/A-$i.ours.txt"
    ls_same "ctr-remote layer $i: lazysnap reader vs reference reader" "$T/A-$i.ref.txt" "$T/A-$i.ours.txt" ||
      fails=$((fails + 1))
    ls_same "ctr-remote layer $i: lazysnap reader vs original extraction" "$T/in-$i.txt" "$T/A-$i.ours.txt" ||
      fails=$((fails + 1))
  else
    ls_log "FAIL: layer_dump on ctr-remote layer $i: $(cat "$T/A-$i.err")"
    fails=$((fails + 1))
  fi
  # A wrong TOC digest must be refused.
  if "$DUMP" blob "$blob" --toc-digest "sha256:$(printf '%064d' 0)" --no-content >/dev/null 2>&1; then
    ls_log "FAIL: layer_dump accepted a wrong TOC digest"
    fails=$((fails + 1))
  fi
done

# ---- B: lazysnap's eStargz read by the reference tools ----------------------------------------
start=$EPOCHREALTIME
if ! "$LAZYSNAP" image convert --oci-layout "$IMAGE:$TAG" "$T/lz:esgz" >"$T/convert.log" 2>&1; then
  cat "$T/convert.log" >&2
  ls_die "lazysnap image convert failed"
fi
ls_log "lazysnap image convert: $(ls_elapsed "$start") s"
lm=$(ls_oci_manifest "$T/lz" esgz)
[ "$(jq '.layers | length' "$lm")" = "$n" ] || ls_die "lazysnap changed the layer count"
declare -a lz_toc
for ((i = 0; i < n; i++)); do
  d=$(jq -r ".layers[$i].digest" "$lm")
  blob=$(ls_oci_blob "$T/lz" "$d")
  toc=$(ls_layer_annotation "$lm" "$i" containerd.io/snapshot/stargz/toc.digest)
  lz_toc[i]=$toc
  [ -n "$toc" ] || { ls_log "lazysnap layer $i has no TOC digest annotation"; fails=$((fails + 1)); continue; }
  if "$REF" -toc-digest "$toc" "$blob" >"$T/B-$i.ref.raw" 2>"$T/B-$i.err"; then
    ls_strip_format_files <"$T/B-$i.ref.raw" >"$T/B-$i.ref.txt"
    ls_same "lazysnap layer $i: reference reader vs original extraction" "$T/in-$i.txt" "$T/B-$i.ref.txt" ||
      fails=$((fails + 1))
  else
    ls_log "FAIL: reference reader on lazysnap layer $i: $(cat "$T/B-$i.err")"
    fails=$((fails + 1))
  fi
  usize=$(ls_layer_annotation "$lm" "$i" io.containers.estargz.uncompressed-size)
  real=$(gzip -dc "$blob" | wc -c)
  [ "$usize" = "$real" ] || { ls_log "lazysnap layer $i: uncompressed-size annotation $usize, real $real"; fails=$((fails + 1)); }
done

# containerd pulls it the ordinary way (tar.gz), checks diff_ids, and runs it.
tar -C "$T/lz" -cf "$T/lz.tar" .
if $LS_CTR images import --base-name localhost/lz "$T/lz.tar" >"$T/import.log" 2>&1; then
  for ((i = 0; i < n; i++)); do
    d=$(jq -r ".layers[$i].digest" "$lm")
    got=$($CTR_REMOTE images get-toc-digest "$d" 2>&1) || true
    if [ "$got" = "${lz_toc[i]}" ]; then
      ls_log "ok: ctr-remote get-toc-digest of lazysnap layer $i = annotation"
    else
      ls_log "FAIL: ctr-remote get-toc-digest of lazysnap layer $i: '$got', annotation '${lz_toc[i]}'"
      fails=$((fails + 1))
    fi
  done
  out=$($LS_CTR run --rm localhost/lz:esgz lazysnap-interop-$$ 2>&1) || true
  if [ "$out" = "hello from python" ]; then
    ls_log "ok: ctr run of lazysnap's eStargz image printed: $out"
  else
    ls_log "FAIL: ctr run of lazysnap's eStargz image printed: $out"
    fails=$((fails + 1))
  fi
else
  cat "$T/import.log" >&2
  ls_log "FAIL: containerd did not import/unpack lazysnap's image"
  fails=$((fails + 1))
fi

ls_log "$fails failure(s)"
[ "$fails" = 0 ]
