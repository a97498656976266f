#!/usr/bin/env bash
# zstd:chunked interoperability with containers/storage's Go implementation, both ways:
# a thin wrapper around test/interop/zstd_chunked/run.sh (see it for what is checked).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result zstd_chunked_interop
ls_build zstd_chunked_test >/dev/null
GOCACHE="$LS_BUILD/test/gocache" bash "$LS_ROOT/test/interop/zstd_chunked/run.sh" "$LS_BUILD"
