#!/usr/bin/env bash
# zstd:chunked interop between lazysnap and containers/storage's independent Go implementation
# (Debian 12: golang-github-containers-storage-dev 1.43, installed by scripts/setup).
#
#   test/interop/zstd_chunked/run.sh BUILD_DIR
#
# 1. builds two Go programs against Debian's containers/storage sources (offline, GOPATH mode):
#    writer/ (c/storage's compressor.ZstdCompressor) and reader/ (c/storage's own manifest
#    reader and TOC parser, reached through shim/ in a private copy of pkg/chunked);
# 2. makes a tar with the awkward cases (empty, multi-chunk, long zero runs, hard links,
#    symlinks, odd names, deep paths), writes it as zstd:chunked with the Go writer;
# 3. checks c/storage reads its own layer back (sanity of the harness) and plain zstd decodes it;
# 4. runs lazysnap's BUILD_DIR/zstd_chunked_test --gtest_filter=ZstdChunkedInterop.* on it:
#    lazysnap must find the TOC by annotation and by footer and rebuild every file equal to
#    the original, each chunk verified;
# 5. the other way: lazysnap converts the same tar (format/convert.h), plain zstd must give the
#    tar back byte for byte, c/storage's reader must extract every file equal to the original,
#    and vbatts/tar-split must rebuild the exact tar from lazysnap's tar-split.
# Exits non-zero on any mismatch. Needs: go, tar, zstd, diff.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_dir="${1:?usage: run.sh BUILD_DIR}"
test_bin="${ZSTD_CHUNKED_TEST_BIN:-$build_dir/zstd_chunked_test}"
[ -x "$test_bin" ] || { echo "run.sh: $test_bin not built (ninja zstd_chunked_test)" >&2; exit 1; }
cs_src=/usr/share/gocode/src/github.com/containers/storage
[ -d "$cs_src/pkg/chunked" ] || {
  echo "run.sh: $cs_src missing: install golang-github-containers-storage-dev" >&2; exit 1; }

work="$(mktemp -d /tmp/lazysnap-zstd-interop.XXXXXX)"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

# --- Go programs -----------------------------------------------------------------------------
# A private copy of containers/storage (3 MB) with the shim added to pkg/chunked: GOPATH mode
# cannot overlay one package of a tree that lives in another GOPATH entry.
gopath="$work/gopath"
mkdir -p "$gopath/src/github.com/containers" "$gopath/src/lazysnap-interop"
cp -r "$cs_src" "$gopath/src/github.com/containers/storage"
cp "$here/shim/zz_lazysnap_interop.go" "$gopath/src/github.com/containers/storage/pkg/chunked/"
cp -r "$here/writer" "$here/reader" "$gopath/src/lazysnap-interop/"
export GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOPROXY=off
export GOCACHE="${GOCACHE:-$work/gocache}"
(cd "$gopath/src/lazysnap-interop/writer" && go build -o "$work/cs-writer" .)
(cd "$gopath/src/lazysnap-interop/reader" && go build -o "$work/cs-reader" .)

# --- the input tar ---------------------------------------------------------------------------
root="$work/root"
mkdir -p "$root/etc" "$root/usr/lib/deep/er/still" "$root/empty-dir" "$root/odd names"
printf 'hello\n' >"$root/etc/hosts"
: >"$root/etc/empty"
head -c 1000000 /dev/urandom >"$root/usr/lib/random.bin"            # several rolling chunks
{ head -c 5000 /dev/urandom; head -c 200000 /dev/zero; head -c 5000 /dev/urandom; } \
  >"$root/usr/lib/holes.bin"                                          # a "zeros" chunk
head -c 70000 /dev/zero >"$root/usr/lib/zeros.bin"
seq 1 200000 >"$root/usr/lib/deep/er/still/numbers.txt"               # compressible
printf 'x' >"$root/odd names/sp ace é ñ.txt"
chmod 4755 "$root/usr/lib/random.bin"
ln "$root/etc/hosts" "$root/etc/hosts.hardlink"
ln -s ../usr/lib/random.bin "$root/etc/link-to-random"
ln -s /nonexistent/target "$root/dangling"
tar -C "$root" --numeric-owner -b 1 -cf "$work/layer.tar" .

# --- containers/storage writes, containers/storage and zstd read ------------------------------
"$work/cs-writer" "$work/layer.tar" "$work/layer.zst" "$work/annotations.json"
echo "run.sh: c/storage wrote $(stat -c %s "$work/layer.zst") bytes; annotations:"
cat "$work/annotations.json"
mkdir -p "$work/plain"
zstd -q -dc "$work/layer.zst" | tar -C "$work/plain" -xf - 2>/dev/null || true
diff -r --no-dereference "$root" "$work/plain" >/dev/null ||
  { echo "run.sh: plain zstd decoding of the layer differs from the input" >&2; exit 1; }
mkdir -p "$work/cs-out"
"$work/cs-reader" "$work/layer.zst" "$work/annotations.json" "$work/cs-out" "$work/manifest.json"
(cd "$work/cs-out" && find . -type f) | while IFS= read -r f; do
  cmp -s "$work/cs-out/$f" "$root/$f" || { echo "run.sh: c/storage's reader: $f differs" >&2; exit 1; }
done
for want in '"type":"chunk"' '"chunkType":"zeros"' '"type":"hardlink"' '"type":"symlink"'; do
  grep -q "$want" "$work/manifest.json" ||
    { echo "run.sh: the test layer has no $want entry; the test would not cover it" >&2; exit 1; }
done

# --- lazysnap reads it -----------------------------------------------------------------------
run_gtest() {  # run_gtest NAME [VAR=VALUE...]: the named interop test must run and pass
  local name="$1"; shift
  local log="$work/$name.log"
  env "$@" "$test_bin" --gtest_filter="ZstdChunkedInterop.$name" >"$log" 2>&1 || { cat "$log"; exit 1; }
  grep -E '^interop:' "$log" || true
  if grep -q 'SKIPPED' "$log" || ! grep -q '\[  PASSED  \] 1 test' "$log"; then
    cat "$log"; echo "run.sh: lazysnap test $name did not run" >&2; exit 1
  fi
}
run_gtest ReadsContainersStorageLayer \
  LAZYSNAP_INTEROP_ZSTD_CHUNKED_BLOB="$work/layer.zst" \
  LAZYSNAP_INTEROP_ZSTD_CHUNKED_ANNOTATIONS="$work/annotations.json" \
  LAZYSNAP_INTEROP_ZSTD_CHUNKED_ROOT="$root"
echo "run.sh: lazysnap read every file of containers/storage's layer"

# --- lazysnap writes, containers/storage (and plain zstd) read --------------------------------
run_gtest WritesLayerForContainersStorage \
  LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_TAR="$work/layer.tar" \
  LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_OUT="$work/lz.zst" \
  LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_ANNOTATIONS="$work/lz-annotations.json"
echo "run.sh: lazysnap wrote $(stat -c %s "$work/lz.zst") bytes"
zstd -q -dc "$work/lz.zst" | cmp -s - "$work/layer.tar" ||
  { echo "run.sh: lazysnap's layer does not decompress to the input tar" >&2; exit 1; }
mkdir -p "$work/lz-out"
"$work/cs-reader" "$work/lz.zst" "$work/lz-annotations.json" "$work/lz-out" \
  "$work/lz-manifest.json" "$work/lz-reassembled.tar"
(cd "$root" && find . -type f -links 1) | while IFS= read -r f; do
  cmp -s "$work/lz-out/$f" "$root/$f" ||
    { echo "run.sh: containers/storage read $f from lazysnap's layer wrong" >&2; exit 1; }
done
cmp -s "$work/lz-reassembled.tar" "$work/layer.tar" ||
  { echo "run.sh: tar reassembled from lazysnap's tar-split differs from the input" >&2; exit 1; }
echo "run.sh: containers/storage read every file of lazysnap's layer; its tar-split rebuilds the tar"
echo "run.sh: 2 passed, 0 failed"
