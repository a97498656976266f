#!/usr/bin/env bash
# Where the lazy pull's time goes (docs/containerd.md, "Where a pull's time goes"): the python
# image's eStargz layer is pulled lazily through lazysnap-shaper (RATE, RTT), each run from
# fresh state (new lazysnapd root holding only the image's access trace, new containerd,
# page cache dropped), and the pull and create phases are timed; lazysnapd runs at debug level,
# so its log has one line per gRPC call (with its duration) and per HTTP exchange (with its
# time and whether it opened a connection). Prints, per run, the phases and those lines.
#
#   sudo bash bench/pull_breakdown.sh [RATE RTT RUNS PULLER]   (100mbit 20ms 3 ctr-remote)
#
# PULLER: ctr-remote (`ctr-remote image rpull --snapshotter lazysnap`) or lazysnap
# (`lazysnap image pull`). LAZYSNAP_BUILD_DIR: the build (default build/). Needs root.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
RATE=${1:-100mbit}
RTT=${2:-20ms}
RUNS=${3:-3}
PULLER=${4:-ctr-remote}
ls_require_root "containerd, FUSE, overlay"
ls_require_tools containerd ctr ctr-remote runc skopeo docker-registry
[ -x "$(ls_tool lazysnapd)" ] && [ -x "$(ls_tool lazysnap)" ] &&
  [ -x "$LS_BUILD/bench/shaper/lazysnap-shaper" ] ||
  ls_build lazysnap lazysnapd lazysnap-shaper || ls_die "build failed"
LAZYSNAP=$(ls_tool lazysnap)
IMAGE=$(ls_python_image)

ls_tmpdir pull-breakdown
T=$LS_TMP
ls_start_registry "$T/reg"
REG=$LS_REGISTRY
ls_start_shaper "${REG##*:}" "$RATE" "$RTT" --aggregate
"$LAZYSNAP" image convert --oci-layout "$IMAGE:python" "$T/esgz:lz" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$T/esgz:lz" "docker://$REG/python:esgz"
REF=127.0.0.1:$LS_SHAPER_PORT/python:esgz

pull() { # SOCK
  local trace=()
  # LAZYSNAP_STRACE=FILE: the puller's network and process calls, timed, into FILE.
  [ -z "${LAZYSNAP_STRACE:-}" ] || trace=(strace -f -tt -e trace=network,process -o "$LAZYSNAP_STRACE.$i")
  if [ "$PULLER" = lazysnap ]; then
    "${trace[@]}" "$LAZYSNAP" image pull --address "$1" --namespace bench --plain-http "$REF" >/dev/null
  else
    "${trace[@]}" ctr-remote -a "$1" -n bench image rpull --plain-http --snapshotter lazysnap "$REF" >/dev/null
  fi
}

node() { # DIR: fresh lazysnapd (debug log) and containerd under DIR
  mkdir -p "$1/certs.d"
  cat >"$1/lazysnapd.toml" <<EOF
root = "$1/lz"
address = "$1/lz.sock"
log_level = "debug"
[registry]
config_path = "$1/certs.d"
[prefetch]
registry_lookup = false
quiet_period = "1s"
EOF
  touch "$1/lazysnapd.log"
  "$(ls_tool lazysnapd)" --config "$1/lazysnapd.toml" >>"$1/lazysnapd.log" 2>&1 &
  LZD=$!
  ls_on_exit "ls_kill $LZD"
  ls_wait_for 60 eval "grep -q 'lazysnapd serving on' '$1/lazysnapd.log' || ! kill -0 $LZD" ||
    ls_die "lazysnapd did not start"
  ls_start_containerd "$1/c" "$1/lz.sock"
  CTR="ctr -a $LS_CTR_SOCK -n bench"
}

i=0
ls_log "recording run (the trace every measured run starts with)"
node "$T/rec"
pull "$LS_CTR_SOCK"
$CTR run --rm --runc-root "$LS_RUNC_ROOT" --snapshotter lazysnap "$REF" "$(ls_ctr_id rec)" \
  python3 -c 'print("hello")' >/dev/null
sleep 3
ls_kill "$LZD"
[ -n "$(ls "$T/rec/lz/traces" 2>/dev/null)" ] || ls_die "no trace recorded"

for i in $(seq 1 "$RUNS"); do
  D=$T/run$i
  mkdir -p "$D/lz"
  cp -r "$T/rec/lz/traces" "$D/lz/"
  node "$D"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  mark=$(wc -l <"$D/lazysnapd.log")
  t0=$EPOCHREALTIME
  pull "$LS_CTR_SOCK"
  t1=$EPOCHREALTIME
  $CTR container create --snapshotter lazysnap -- "$REF" "$(ls_ctr_id "c$i")" \
    python3 -c 'print("hello")' >/dev/null
  t2=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v r="$i" -v p="$PULLER" \
    'BEGIN { printf "run %d (%s): pull %.3f s, create %.3f s\n", r, p, b - a, c - b }'
  # The same clock as lazysnapd's log lines (UTC), to place its Prepare within the pull.
  printf 'pull from %s to %s, create to %s\n' "$(date -u -d "@$t0" +%T.%3N)" \
    "$(date -u -d "@$t1" +%T.%3N)" "$(date -u -d "@$t2" +%T.%3N)"
  tail -n +"$mark" "$D/lazysnapd.log" | grep -E "grpc: |http: |mounted at|TOC|prefetch" |
    grep -v "grpc: Stat .* NOT_FOUND" | cut -c1-230 || true
  ls_kill "$LZD"
  ls_kill "$LS_CONTAINERD_PID"
  ls_umount_below "$D" || true
done
