#!/usr/bin/env bash
# zstd:chunked interop between lazysnap and containers/storage's independent Go implementation
# (Debian 12: golang-github-containers-storage-dev 1.43, installed by scripts/setup).
#
#   test/interop/zstd_chunked/run.sh BUILD_DIR [MORE.tar...]
#
# 1. builds two Go programs against Debian's containers/storage sources (offline, GOPATH mode):
#    writer/ (c/storage's compressor.ZstdCompressor) and reader/ (c/storage's own manifest
#    reader and TOC parser, reached through shim/ in a private copy of pkg/chunked);
# 2. makes a tar with the awkward cases (empty, multi-chunk, long zero runs, hard links,
#    symlinks, odd names, deep paths), writes it as zstd:chunked with the Go writer;
# 3. checks c/storage reads its own layer back (sanity of the harness) and plain zstd decodes it;
# 4. runs lazysnap's BUILD_DIR/zstd_chunked_interop_test on it:
#    lazysnap must find the TOC by annotation and by footer and rebuild every file equal to
#    the original, each chunk verified;
# 5. the other way: lazysnap converts the same tar (format/convert.h), plain zstd must give the
#    tar back byte for byte, c/storage's reader must extract every file equal to the original,
#    and vbatts/tar-split must rebuild the exact tar from lazysnap's tar-split.
# Every tar given after BUILD_DIR goes through steps 3-5 as well (extracted as root to compare).
# Exits non-zero on any mismatch. Needs: go, tar, zstd, diff.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_dir="${1:?usage: run.sh BUILD_DIR [MORE.tar...]}"
test_bin="${ZSTD_CHUNKED_TEST_BIN:-$build_dir/zstd_chunked_interop_test}"
[ -x "$test_bin" ] || { echo "run.sh: $test_bin not built (ninja zstd_chunked_interop_test)" >&2; exit 1; }
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

# --- one tar through both directions ----------------------------------------------------------
run_gtest() {  # run_gtest NAME [VAR=VALUE...]: the named interop test must run and pass
  local name="$1"; shift
  local log="$work/$name.log"
  env "$@" "$test_bin" --gtest_filter="ZstdChunkedInterop.$name" >"$log" 2>&1 || { cat "$log"; exit 1; }
  grep -E '^interop:' "$log" || true
  if grep -q 'SKIPPED' "$log" || ! grep -q '\[  PASSED  \] 1 test' "$log"; then
    cat "$log"; echo "run.sh: lazysnap test $name did not run" >&2; exit 1
  fi
}

# same_files OUTDIR ROOT: every file c/storage's reader extracted to OUTDIR equals ROOT's, and
# there is one per regular file (hard-linked names count once).
same_files() {
  local out="$1" root="$2" n want
  (cd "$out" && find . -type f) | while IFS= read -r f; do
    cmp -s "$out/$f" "$root/$f" || { echo "run.sh: $out/$f differs from the original" >&2; exit 1; }
  done
  n=$(find "$out" -type f | wc -l)
  want=$(find "$root" -type f -printf '%i\n' | sort -u | wc -l)
  [ "$n" = "$want" ] || { echo "run.sh: $n files extracted to $out, want $want" >&2; exit 1; }
}

# check_tar NAME TAR ROOT: TAR (whose contents are extracted in ROOT) both ways.
check_tar() {
  local name="$1" tar="$2" root="$3" w="$work/$1" n
  mkdir -p "$w"
  echo "run.sh: --- $name ($(stat -c %s "$tar") bytes of tar)"

  # containers/storage writes; plain zstd, containers/storage and lazysnap read.
  timeout 900 "$work/cs-writer" "$tar" "$w/cs.zst" "$w/cs-annotations.json"
  echo "run.sh: c/storage wrote $(stat -c %s "$w/cs.zst") bytes"
  # c/storage 1.43 may drop the tar's trailing zero padding; everything before it must match.
  n=$(zstd -q -dc "$w/cs.zst" | wc -c)
  { zstd -q -dc "$w/cs.zst" | cmp -s -n "$n" - "$tar" &&
    [ "$(tail -c +"$((n + 1))" "$tar" | tr -d '\0' | wc -c)" = 0 ]; } ||
    { echo "run.sh: plain zstd decoding of c/storage's layer differs from the tar" >&2; exit 1; }
  mkdir -p "$w/cs-out"
  "$work/cs-reader" "$w/cs.zst" "$w/cs-annotations.json" "$w/cs-out" "$w/cs-manifest.json"
  same_files "$w/cs-out" "$root"
  run_gtest ReadsContainersStorageLayer \
    LAZYSNAP_INTEROP_ZSTD_CHUNKED_BLOB="$w/cs.zst" \
    LAZYSNAP_INTEROP_ZSTD_CHUNKED_ANNOTATIONS="$w/cs-annotations.json" \
    LAZYSNAP_INTEROP_ZSTD_CHUNKED_ROOT="$root"
  echo "run.sh: lazysnap read every file of containers/storage's layer"

  # lazysnap writes; plain zstd, containers/storage and tar-split read.
  run_gtest WritesLayerForContainersStorage \
    LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_TAR="$tar" \
    LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_OUT="$w/lz.zst" \
    LAZYSNAP_INTEROP_ZSTD_CHUNKED_WRITE_ANNOTATIONS="$w/lz-annotations.json"
  echo "run.sh: lazysnap wrote $(stat -c %s "$w/lz.zst") bytes"
  zstd -q -dc "$w/lz.zst" | cmp -s - "$tar" ||
    { echo "run.sh: lazysnap's layer does not decompress to the tar" >&2; exit 1; }
  mkdir -p "$w/lz-out"
  "$work/cs-reader" "$w/lz.zst" "$w/lz-annotations.json" "$w/lz-out" \
    "$w/lz-manifest.json" "$w/lz-reassembled.tar"
  same_files "$w/lz-out" "$root"
  cmp -s "$w/lz-reassembled.tar" "$tar" ||
    { echo "run.sh: tar reassembled from lazysnap's tar-split differs from the tar" >&2; exit 1; }
  echo "run.sh: c/storage read every file of lazysnap's layer; its tar-split rebuilds the tar"
  passed=$((passed + 1))
  rm -rf "$w"
}
passed=0

# --- the built-in tree --------------------------------------------------------------------------
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
tar -C "$root" --numeric-owner -b 1 -cf "$work/builtin.tar" .
timeout 900 "$work/cs-writer" "$work/builtin.tar" "$work/probe.zst" "$work/probe.json"
"$work/cs-reader" "$work/probe.zst" "$work/probe.json" "$work/probe-out" "$work/probe-manifest.json" >/dev/null
for want in '"type":"chunk"' '"chunkType":"zeros"' '"type":"hardlink"' '"type":"symlink"'; do
  grep -q "$want" "$work/probe-manifest.json" ||
    { echo "run.sh: the built-in tree has no $want entry; the test would not cover it" >&2; exit 1; }
done
check_tar builtin "$work/builtin.tar" "$root"

# --- more tars from the command line ------------------------------------------------------------
for extra in "${@:2}"; do
  name="$(basename "$extra" .tar)"
  xroot="$work/$name-root"
  mkdir -p "$xroot"
  tar --xattrs --xattrs-include='*' --numeric-owner --warning=no-timestamp -C "$xroot" -xpf "$extra"
  check_tar "$name" "$extra" "$xroot"
  rm -rf "$xroot"
done
echo "run.sh: $passed passed, 0 failed"
