#!/usr/bin/env bash
# `lazysnap image convert --oci-layout` against the ecosystem's own tools:
#  1. builds a small two-layer image with umoci (regular files, an executable, a symlink, a hard
#     link, an empty file, a big multi-chunk file, a deleted file = whiteout in layer 2);
#  2. converts it to eStargz (into another layout), to zstd:chunked (with --json) and in place
#     (same layout, new tag);
#  3. checks `skopeo inspect` / `skopeo copy` and `umoci ls` / `umoci unpack` accept each
#     result, that the converted manifest and config agree (layer count, diff_ids), and that the
#     unpacked rootfs equals the unpacked source rootfs: `diff -r` plus a comparison of every
#     entry's type, mode, owner, size, link count, symlink target and mtime. eStargz layers
#     carry stargz.index.json and landmark files as tar entries; those are left out of the
#     comparison.
# $LAZYSNAP: the lazysnap binary (default ${LAZYSNAP_BUILD_DIR:-build}/cmd/lazysnap).
# Exits non-zero on the first failure; prints PASS at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LAZYSNAP=${LAZYSNAP:-${LAZYSNAP_BUILD_DIR:-$ROOT/build}/cmd/lazysnap}
[ -x "$LAZYSNAP" ] || { echo "FAIL: no lazysnap binary at $LAZYSNAP" >&2; exit 1; }
for tool in umoci skopeo jq; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done

T=$(mktemp -d /tmp/image_convert_test.XXXXXX)
trap 'rm -rf "$T"' EXIT
ROOTLESS=()
[ "$(id -u)" = 0 ] || ROOTLESS=(--rootless)
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }

# ---- 1. the source image --------------------------------------------------------------------
step "building the source image with umoci"
umoci init --layout "$T/src"
umoci new --image "$T/src:base"
umoci unpack "${ROOTLESS[@]}" --image "$T/src:base" "$T/bundle" >/dev/null
R=$T/bundle/rootfs
mkdir -p "$R/etc" "$R/usr/bin" "$R/data/sub/deeper"
echo hello >"$R/etc/greeting"
printf '#!/bin/sh\necho hi\n' >"$R/usr/bin/hello"
chmod 0755 "$R/usr/bin/hello"
chmod 0600 "$R/etc/greeting"
head -c 3000000 /dev/urandom >"$R/data/big.bin"
seq 1 200000 >"$R/data/sub/deeper/numbers.txt"
: >"$R/data/empty"
: >"$R/data/to-delete"
ln -s ../etc/greeting "$R/data/link"
ln -s /nonexistent/target "$R/data/dangling"
ln "$R/etc/greeting" "$R/data/hardlink"
find "$R" -mindepth 1 -exec touch -h -d @1700000000 {} +
umoci repack --refresh-bundle --image "$T/src:v1" "$T/bundle"
# Layer 2: a deletion (whiteout), a new file and a changed one.
rm "$R/data/to-delete"
echo two >"$R/etc/v2"
echo changed >"$R/data/sub/deeper/numbers.txt"
touch -h -d @1700000100 "$R/etc/v2" "$R/data/sub/deeper/numbers.txt"
umoci repack --image "$T/src:v2" "$T/bundle"
umoci config --image "$T/src:v2" --config.cmd /usr/bin/hello
umoci unpack "${ROOTLESS[@]}" --image "$T/src:v2" "$T/ref" >/dev/null
[ -x "$T/ref/rootfs/usr/bin/hello" ] || fail "source image lacks its files"
[ ! -e "$T/ref/rootfs/data/to-delete" ] || fail "source image lacks the whiteout"

# tree DIR: one line per entry (type, mode, owner, size, links, target, mtime), sorted.
tree() {
  (cd "$1" && find . -mindepth 1 \
    ! -name stargz.index.json ! -name .prefetch.landmark ! -name .no.prefetch.landmark \
    -printf '%p %y %m %U:%G size=%s links=%n target=%l mtime=%T@\n' | LC_ALL=C sort)
}
tree "$T/ref/rootfs" >"$T/ref.tree"

# check LAYOUT TAG [zstd]: the ecosystem's tools accept the image and it unpacks to the source
# tree.
check() {
  local layout=$1 tag=$2 out=$T/out-$2
  step "checking $layout:$tag"
  skopeo inspect "oci:$layout:$tag" >"$T/inspect.json" || fail "skopeo inspect $tag"
  [ "$(jq '.Layers | length' "$T/inspect.json")" = 2 ] || fail "$tag: skopeo sees no 2 layers"
  skopeo copy "oci:$layout:$tag" "dir:$T/copy-$tag" >/dev/null || fail "skopeo copy $tag"
  umoci ls --layout "$layout" | grep -x "$tag" >/dev/null || fail "umoci ls does not list $tag"
  local unpack_from=$layout:$tag
  if [ "${3:-}" = zstd ]; then
    # umoci 0.4 cannot read zstd layers: let skopeo decompress them (and recompress as gzip).
    skopeo copy --dest-compress --dest-compress-format gzip "oci:$layout:$tag" "oci:$T/regz:$tag" \
      >/dev/null || fail "skopeo copy --dest-compress-format gzip $tag"
    unpack_from=$T/regz:$tag
  fi
  umoci unpack "${ROOTLESS[@]}" --image "$unpack_from" "$out" >/dev/null || fail "umoci unpack $tag"
  diff -r --no-dereference -x stargz.index.json -x .prefetch.landmark -x .no.prefetch.landmark \
    "$T/ref/rootfs" "$out/rootfs" || fail "$tag: unpacked content differs"
  tree "$out/rootfs" >"$T/$tag.tree"
  diff "$T/ref.tree" "$T/$tag.tree" || fail "$tag: unpacked metadata differs"
  # Manifest and config agree, and the config is the source's apart from diff_ids.
  local manifest config
  manifest=$(skopeo inspect --raw "oci:$layout:$tag")
  config=$(skopeo inspect --config --raw "oci:$layout:$tag")
  [ "$(jq '.layers | length' <<<"$manifest")" = "$(jq '.rootfs.diff_ids | length' <<<"$config")" ] ||
    fail "$tag: layers and diff_ids differ in number"
  [ "$(jq -c '.config' <<<"$config")" = "$(skopeo inspect --config --raw "oci:$T/src:v2" | jq -c .config)" ] ||
    fail "$tag: config changed"
  rm -rf "$out" "$T/copy-$tag"
}

# ---- 2. conversions ---------------------------------------------------------------------------
step "converting to eStargz"
"$LAZYSNAP" image convert --oci-layout --quiet "$T/src:v2" "$T/dst:v2-estargz" ||
  fail "convert to eStargz"
manifest=$(skopeo inspect --raw "oci:$T/dst:v2-estargz")
for i in 0 1; do
  jq -e ".layers[$i].annotations[\"containerd.io/snapshot/stargz/toc.digest\"] | startswith(\"sha256:\")" \
    <<<"$manifest" >/dev/null || fail "eStargz layer $i has no TOC digest annotation"
done
check "$T/dst" v2-estargz

step "prioritized files"
printf '# startup files\n/etc/greeting\n./usr/bin/hello\n\nmissing/file\n' >"$T/prio.txt"
"$LAZYSNAP" image convert --oci-layout --prioritize-list "$T/prio.txt" --prioritize-file data/link \
  "$T/src:v2" "$T/dst:v2-prio" >/dev/null 2>"$T/prio.err" || fail "convert with --prioritize-list"
grep -x "lazysnap: warning: prioritized file missing/file is in no layer" "$T/prio.err" >/dev/null ||
  fail "no warning for the missing prioritized file: $(cat "$T/prio.err")"
[ "$(grep -c warning "$T/prio.err")" = 1 ] || fail "warnings for files that exist: $(cat "$T/prio.err")"
check "$T/dst" v2-prio

step "converting to zstd:chunked"
"$LAZYSNAP" image convert --oci-layout --json --format zstd-chunked --chunk-size 1MiB -j 2 \
  "$T/src:v2" "$T/dst:v2-zstd" >"$T/result.json" || fail "convert to zstd:chunked"
jq -e '.manifests[0].layers | length == 2 and all(.converted)' "$T/result.json" >/dev/null ||
  fail "--json result: $(cat "$T/result.json")"
[ "$(jq -r .digest "$T/result.json")" = "$(skopeo inspect "oci:$T/dst:v2-zstd" | jq -r .Digest)" ] ||
  fail "--json digest is not what the tag points at"
jq -e '.layers | all(.mediaType == "application/vnd.oci.image.layer.v1.tar+zstd")' \
  <<<"$(skopeo inspect --raw "oci:$T/dst:v2-zstd")" >/dev/null || fail "zstd layers' media type"
check "$T/dst" v2-zstd zstd

step "converting in place"
"$LAZYSNAP" image convert --oci-layout "$T/src:v2" "$T/src:v2-seekable" >/dev/null ||
  fail "convert in place"
check "$T/src" v2-seekable
umoci ls --layout "$T/src" | grep -x v2 >/dev/null || fail "in-place conversion lost the source tag"

step "converting a converted image again keeps it"
"$LAZYSNAP" image convert --oci-layout --json "$T/src:v2-seekable" "$T/src:again" >"$T/again.json"
jq -e '.manifests[0].layers | all(.converted | not)' "$T/again.json" >/dev/null ||
  fail "seekable layers were converted again"

step "multi-platform index"
umoci config --image "$T/src:v2" --tag arm64 --architecture arm64
desc() { # TAG: the index.json descriptor of TAG, with a platform added
  jq -c --arg t "$1" --arg a "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)
    | del(.annotations) | .platform = {os: "linux", architecture: $a}' "$T/src/index.json"
}
jq -cn --argjson a "$(desc v2 amd64)" --argjson b "$(desc arm64 arm64)" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$a, $b]}' >"$T/index.json"
digest=$(sha256sum "$T/index.json" | cut -d' ' -f1)
cp "$T/index.json" "$T/src/blobs/sha256/$digest"
jq --arg d "sha256:$digest" --argjson s "$(stat -c %s "$T/index.json")" \
  '.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
    annotations: {"org.opencontainers.image.ref.name": "multi"}}]' "$T/src/index.json" >"$T/new-index.json"
mv "$T/new-index.json" "$T/src/index.json"
"$LAZYSNAP" image convert --oci-layout --quiet --all-platforms "$T/src:multi" "$T/dst:multi-all" ||
  fail "convert --all-platforms"
"$LAZYSNAP" image convert --oci-layout --quiet --platform linux/arm64 "$T/src:multi" "$T/dst:multi-arm64" ||
  fail "convert --platform linux/arm64"
[ "$(skopeo inspect --raw "oci:$T/dst:multi-all" | jq '.manifests | length')" = 2 ] ||
  fail "--all-platforms index does not list 2 manifests"
[ "$(skopeo inspect --raw "oci:$T/dst:multi-arm64" | jq -r '[.manifests[].platform.architecture] | join(",")')" = arm64 ] ||
  fail "--platform linux/arm64 index is not arm64 only"
skopeo copy --all "oci:$T/dst:multi-all" "dir:$T/copy-multi" >/dev/null || fail "skopeo copy --all"
[ "$(skopeo inspect --override-arch arm64 "oci:$T/dst:multi-all" | jq -r .Architecture)" = arm64 ] ||
  fail "skopeo does not find the arm64 image"
rc=0
"$LAZYSNAP" image convert --oci-layout --platform linux/s390x "$T/src:multi" "$T/dst:x" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "a missing platform exits $rc, not 1"

# ---- 3. errors ---------------------------------------------------------------------------------
step "error exit codes"
rc=0
"$LAZYSNAP" image convert --oci-layout "$T/src:nope" "$T/dst:x" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "a missing tag exits $rc, not 1"
rc=0
"$LAZYSNAP" image convert --oci-layout --bogus "$T/src:v2" "$T/dst:x" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "a bad flag exits $rc, not 2"
umoci ls --layout "$T/dst" | grep -x x >/dev/null && fail "a failed conversion left a tag"

echo "PASS image_convert"
