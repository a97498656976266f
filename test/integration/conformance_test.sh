#!/usr/bin/env bash
# containerd's own snapshotter conformance suite (snapshots/testsuite, through containerd's
# proxy client over gRPC, as containerd's [proxy_plugins] use it) against lazysnapd, with a
# fresh daemon and state directory per test case. Needs root (the suite mounts).
# Before the suite, the daemon's own contract: socket 0600 in a 0700 directory it creates,
# a stale socket replaced, a live one (or a root in use) refused, clean exit on SIGTERM/SIGINT.
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

# ---- the daemon's contract ---------------------------------------------------------------
fails=0
check() {  # check DESCRIPTION CMD...: runs CMD, prints ok/FAIL
  if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
wait_socket() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
# stop PID SIGNAL: signals the daemon and waits (10 s at most); the daemon's exit status.
stop() {
  kill "-$2" "$1"
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  local rc=0
  wait "$1" || rc=$?
  return $rc
}
T=$(mktemp -d /tmp/lazysnapd-daemon.XXXXXX)
trap 'rm -rf "$T"' EXIT
SOCK=$T/run/lazysnap/lazysnapd.sock
"$DAEMON" --config /dev/null --root "$T/root" --address "$SOCK" 2>"$T/d1.log" &
pid=$!
check "socket appears" wait_socket "$SOCK"
check "socket is 0600" test "$(stat -c %a "$SOCK")" = 600
check "socket directory is 0700" test "$(stat -c %a "$T/run/lazysnap")" = 700
check "state directory is 0700" test "$(stat -c %a "$T/root")" = 700
check "a second daemon on a live socket is refused" \
  bash -c '! "$0" --config /dev/null --root "$1/root2" --address "$2" 2>/dev/null' "$DAEMON" "$T" "$SOCK"
check "a second daemon on a used root is refused" \
  bash -c '! "$0" --config /dev/null --root "$1/root" --address "$1/other.sock" 2>/dev/null' "$DAEMON" "$T"
check "SIGTERM exits 0" stop "$pid" TERM
check "socket removed at exit" test ! -e "$SOCK"
# A socket left by a killed daemon is stale: the next one replaces it.
"$DAEMON" --config /dev/null --root "$T/root" --address "$SOCK" 2>"$T/d2.log" &
pid=$!
disown "$pid"  # no "Killed" job notice
wait_socket "$SOCK" && kill -KILL "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
"$DAEMON" --config /dev/null --root "$T/root" --address "$SOCK" 2>"$T/d3.log" &
pid=$!
check "restart over a stale socket" wait_socket "$SOCK"
sleep 0.3
check "SIGINT exits 0" stop "$pid" INT
if [ "$fails" != 0 ]; then
  cat "$T"/d*.log
  echo "FAIL conformance (daemon contract: $fails failed)"
  exit 1
fi

# ---- containerd's suite -------------------------------------------------------------------
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
