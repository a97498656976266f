#!/usr/bin/env bash
# containerd's own snapshotter conformance suite (snapshots/testsuite, through containerd's
# proxy client over gRPC, as containerd's [proxy_plugins] use it) against lazysnapd, with a
# fresh daemon and state directory per test case. Needs root (the suite mounts).
#
#   BUILD=build-dir test/integration/conformance_test.sh [go test flags, e.g. -test.run Walk]
#
# BUILD (or LAZYSNAP_BUILD_DIR, as scripts/test sets it) defaults to build/ in the repository;
# lazysnapd is built there if missing. Prints SKIP and exits 0 only when the shared
# conformance runner ($(git rev-parse --show-toplevel)/../shared/conformance) is absent.
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
RUNNER_DIR="$ROOT/../shared/conformance"
if [ ! -d "$RUNNER_DIR" ]; then
  echo "SKIP conformance: $RUNNER_DIR does not exist"
  exit 0
fi
BUILD=${BUILD:-${LAZYSNAP_BUILD_DIR:-$ROOT/build}}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
DAEMON="$BUILD/cmd/lazysnapd/lazysnapd"
if [ ! -x "$DAEMON" ]; then
  [ -f "$BUILD/build.ninja" ] || cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
  ninja -C "$BUILD" lazysnapd
fi
log=$(mktemp /tmp/lazysnapd-conformance.XXXXXX.log)
rc=0
"$RUNNER_DIR/run" "$DAEMON --root {root} --address {socket} --log-level debug" "$@" >"$log" 2>&1 || rc=$?
grep -E '^\s*--- (PASS|FAIL|SKIP)' "$log" || true
# Every case must have passed; only the suite's own unconditional skips are allowed.
if [ "$rc" = 0 ] && ! grep -qE '^\s*--- FAIL' "$log" && grep -qE '^\s*--- PASS: TestConformance/' "$log"; then
  echo "PASS conformance"
  rm -f "$log"
  exit 0
fi
tail -n 60 "$log"
echo "FAIL conformance (exit $rc, full log: $log)"
exit 1
