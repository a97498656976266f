#!/usr/bin/env bash
# Corrupt seekable layers are refused with a clear error, never served: for a layer made by
# `lazysnap image convert` in each format (the test image's small special layer), a byte flipped
# in a chunk's compressed data, in the TOC, in the footer, and truncations of the blob each make
# layer_dump (OpenLayer + ReadFile of every file) exit 1 with "layer_dump: ... <STATUS CODE>: ..."
# on stderr; no crash (ASan/UBSan builds report through the same exit), no hang.
# Prints PASS/FAIL.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result corrupt_layer

ls_build lazysnap layer_dump >/dev/null
LAZYSNAP=$(ls_tool lazysnap)
DUMP=$(ls_tool layer_dump)
IMAGE=$(ls_python_image)
ls_tmpdir corrupt
T=$LS_TMP
fails=0

# flip FILE OFFSET: inverts the byte at OFFSET.
flip() {
  "$LS_PYTHON" - "$1" "$2" <<'EOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
EOF
}

# expect_error WHAT FILE [layer_dump options...]: layer_dump must fail cleanly.
expect_error() {
  local what=$1 file=$2 rc=0
  shift 2
  timeout 120 "$DUMP" blob "$file" "$@" >/dev/null 2>"$T/err" || rc=$?
  local msg
  msg=$(head -c 400 "$T/err")
  if [ "$rc" = 1 ] && grep -qE '^layer_dump: .*(DATA_LOSS|INVALID_ARGUMENT|FAILED_PRECONDITION|OUT_OF_RANGE|NOT_FOUND)' "$T/err"; then
    ls_log "ok: $what -> $msg"
  else
    ls_log "FAIL: $what: exit $rc, stderr: $msg"
    fails=$((fails + 1))
  fi
}

# expect_no_crash WHAT FILE [options...]: layer_dump may accept or refuse, but must not crash.
expect_no_crash() {
  local what=$1 file=$2 rc=0
  shift 2
  timeout 120 "$DUMP" blob "$file" "$@" >/dev/null 2>"$T/err" || rc=$?
  if [ "$rc" = 0 ] || { [ "$rc" = 1 ] && grep -q '^layer_dump: ' "$T/err"; }; then
    ls_log "ok: $what -> exit $rc $(head -c 200 "$T/err")"
  else
    ls_log "FAIL: $what: exit $rc, stderr: $(head -c 400 "$T/err")"
    fails=$((fails + 1))
  fi
}

for fmt in estargz zstd-chunked; do
  args=()
  [ "$fmt" = estargz ] || args=(--format "$fmt")
  "$LAZYSNAP" image convert "${args[@]}" --oci-layout "$IMAGE:python-special" "$T/$fmt:conv" >"$T/convert.log" 2>&1 ||
    { cat "$T/convert.log" >&2; ls_die "lazysnap image convert ($fmt) failed"; }
  m=$(ls_oci_manifest "$T/$fmt" conv)
  last=$(($(jq '.layers | length' "$m") - 1))
  good=$T/$fmt.layer
  cp "$(ls_oci_blob "$T/$fmt" "$(jq -r ".layers[$last].digest" "$m")")" "$good"
  mapfile -t ann < <(ls_layer_annotation_args "$m" "$last")
  size=$(stat -c %s "$good")

  # The intact layer reads, with and without its annotations.
  "$DUMP" blob "$good" "${ann[@]}" >/dev/null || { ls_log "FAIL: intact $fmt layer does not read"; fails=$((fails + 1)); continue; }
  "$DUMP" blob "$good" >/dev/null || { ls_log "FAIL: intact $fmt layer does not read without annotations"; fails=$((fails + 1)); }
  "$DUMP" chunks "$good" "${ann[@]}" >"$T/chunks"
  toc_offset=$(head -1 "$T/chunks" | sed -E 's/^toc_offset=([0-9]+) .*/\1/')
  [ -n "$toc_offset" ] && [ "$toc_offset" -gt 0 ] && [ "$toc_offset" -lt "$size" ] ||
    { ls_log "FAIL: $fmt: bad toc_offset '$toc_offset'"; fails=$((fails + 1)); continue; }

  # A byte flipped in the compressed data of the first and the last chunk of the multi-chunk
  # file, and of a small file. In a big chunk, mid-way; in a small one, just past the gzip
  # member header (an eStargz chunk's range also holds the next entry's tar header, which a
  # reader of this file never decodes).
  for sel in 'special/multi-chunk file_offset=0 ' 'special/multi-chunk' 'special/dir/small-1 '; do
    mapfile -t lines < <(grep -F -- "$sel" "$T/chunks")
    [ ${#lines[@]} -gt 0 ] || { ls_log "FAIL: $fmt: no chunk matching '$sel'"; fails=$((fails + 1)); continue; }
    [ "$sel" = special/multi-chunk ] && [ ${#lines[@]} -lt 2 ] &&
      { ls_log "FAIL: $fmt: special/multi-chunk (8 MiB) is not chunked: ${#lines[@]} chunk"; fails=$((fails + 1)); }
    line=${lines[$((${#lines[@]} - 1))]}
    co=$(sed -E 's/.* compressed_offset=([0-9]+) .*/\1/' <<<"$line")
    cs=$(sed -E 's/.* compressed_size=([0-9]+).*/\1/' <<<"$line")
    at=$((co + 12))
    [ "$cs" -le 4096 ] || at=$((co + cs / 2))
    cp "$good" "$T/bad"
    flip "$T/bad" "$at"
    expect_error "$fmt: byte flipped at $at in chunk ($line)" "$T/bad" "${ann[@]}"
  done

  # The TOC: a flipped byte in its compressed bytes; with the annotations (the TOC digest /
  # manifest checksum is then checked) it must be refused; without, it must not crash.
  for off in $((toc_offset + 30)) $((toc_offset + 300)); do
    cp "$good" "$T/bad"
    flip "$T/bad" "$off"
    expect_error "$fmt: byte flipped in the TOC at $off (annotated)" "$T/bad" "${ann[@]}"
    expect_no_crash "$fmt: byte flipped in the TOC at $off (no annotations)" "$T/bad"
  done

  # The footer: its last byte (part of the magic) and a byte of the TOC position it records.
  cp "$good" "$T/bad"
  flip "$T/bad" $((size - 1))
  expect_error "$fmt: footer magic corrupted" "$T/bad"
  cp "$good" "$T/bad"
  if [ "$fmt" = estargz ]; then
    # 51-byte footer: gzip header, then an extra field "%016xSTARGZ" from byte 16 of it.
    flip "$T/bad" $((size - 51 + 16 + 15))
  else
    # The blob ends with an 8-byte skippable frame header and the 64-byte footer payload,
    # whose bytes 0..7 are the manifest offset (little-endian): flip its second byte.
    flip "$T/bad" $((size - 64 + 1))
  fi
  expect_error "$fmt: footer's TOC position corrupted" "$T/bad"

  # Truncations. Without annotations the reader finds the TOC through the footer, so any cut
  # must be refused; with them (zstd:chunked: the manifest position) only cuts into the TOC or
  # the data matter.
  for cut in 1 51 $((size - toc_offset)) $((size / 2)) $((size - 1)); do
    head -c $((size - cut)) "$good" >"$T/bad"
    expect_error "$fmt: truncated by $cut bytes" "$T/bad"
  done
  for cut in $((size - toc_offset)) $((size / 2)) $((size - 1)); do
    head -c $((size - cut)) "$good" >"$T/bad"
    expect_error "$fmt: truncated by $cut bytes (annotated)" "$T/bad" "${ann[@]}"
  done
  : >"$T/bad"
  expect_error "$fmt: empty blob" "$T/bad"
done

ls_log "$fails failure(s)"
[ "$fails" = 0 ]
