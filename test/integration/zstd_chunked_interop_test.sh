#!/usr/bin/env bash
# zstd:chunked interoperability with containers/storage's Go implementation, both ways: a thin
# wrapper around test/interop/zstd_chunked/run.sh (see it for what is checked), run on its
# built-in tree and on ls_special_tree (devices, fifos, xattrs, odd modes, owners and names).
# LAZYSNAP_INTEROP_ROOTFS=1 adds the cached Debian python3 rootfs (about 4 minutes more).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result zstd_chunked_interop
[ "$(id -u)" = 0 ] || ls_die "needs root (device nodes in the special tree)"
ls_build zstd_chunked_interop_test >/dev/null
ls_tmpdir zstd-interop
mkdir -p "$LS_TMP/tree"
ls_special_tree "$LS_TMP/tree"
tar --xattrs --xattrs-include='*' --numeric-owner -C "$LS_TMP/tree" -cpf "$LS_TMP/special.tar" .
tars=("$LS_TMP/special.tar")
[ "${LAZYSNAP_INTEROP_ROOTFS:-0}" = 1 ] && tars+=("$(ls_rootfs_tar)")
GOCACHE="$LS_BUILD/test/gocache" bash "$LS_ROOT/test/interop/zstd_chunked/run.sh" "$LS_BUILD" "${tars[@]}"
