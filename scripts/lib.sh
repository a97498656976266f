# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/demo and test/integration/*.sh. Source it:
#   source "$(dirname "$0")/../../scripts/lib.sh"
# It installs an EXIT trap that runs every cleanup registered with ls_on_exit, newest first.
# Everything here starts its own instances (own config, own state dir, loopback ports or unix
# sockets under a private temporary directory) and never touches the system's daemons.

LS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LS_CACHE=${LAZYSNAP_TEST_CACHE:-/var/cache/lazysnap-test}
LS_BUILD=${LAZYSNAP_BUILD_DIR:-$LS_ROOT/build}
LS_PYTHON=/usr/bin/python3
[ -x "$LS_PYTHON" ] || LS_PYTHON=python3

ls_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ls_die() { ls_log "FATAL: $*"; exit 1; }

# ---- cleanup stack ---------------------------------------------------------------------------
_LS_CLEANUPS=()
# ls_on_exit 'shell command': run at exit (in reverse order of registration).
ls_on_exit() { _LS_CLEANUPS+=("$*"); }
_ls_run_cleanups() {
  local rc=$? i
  trap - EXIT
  for ((i = ${#_LS_CLEANUPS[@]} - 1; i >= 0; i--)); do
    eval "${_LS_CLEANUPS[i]}" >/dev/null 2>&1 || true
  done
  if [ -n "${LS_TEST_NAME:-}" ]; then
    if [ "$rc" = 0 ]; then echo "PASS: $LS_TEST_NAME"; else echo "FAIL: $LS_TEST_NAME (exit $rc)"; fi
  fi
  exit "$rc"
}
trap _ls_run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Unmounts everything mounted at or below $1 (deepest first).
ls_umount_below() {
  local dir=$1 m
  [ -n "$dir" ] || return 0
  findmnt -rn -o TARGET 2>/dev/null | grep -F "$dir" | sort -r | while read -r m; do
    case "$m" in "$dir" | "$dir"/*) umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true ;; esac
  done
}

# ls_tmpdir NAME: makes a fresh directory under /tmp (short path: unix socket paths are limited
# to 108 bytes) and sets LS_TMP to it; removed at exit unless LAZYSNAP_KEEP_TMP=1. (Not to be
# called in $(...): the cleanup would be registered in the subshell.)
ls_tmpdir() {
  LS_TMP=$(mktemp -d "/tmp/ls-${1:-t}.XXXXXX")
  if [ "${LAZYSNAP_KEEP_TMP:-0}" = 1 ]; then
    ls_log "keeping $LS_TMP"
  else
    ls_on_exit "ls_umount_below '$LS_TMP'; rm -rf '$LS_TMP'"
  fi
}

# A TCP port on 127.0.0.1 that was free a moment ago.
ls_free_port() {
  "$LS_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ls_wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds or time runs out.
ls_wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

# Kills pid $1 (TERM, then KILL after 10 s) and reaps it if it is our child.
ls_kill() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# ls_elapsed START: seconds since START (a $EPOCHREALTIME value), two decimals.
ls_elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# ---- PASS/FAIL ------------------------------------------------------------------------------
# ls_test_result NAME: call once at the top of a *_test.sh; prints "PASS: NAME" when the script
# exits 0 and "FAIL: NAME" otherwise.
ls_test_result() {
  LS_TEST_NAME=$1
}

# ls_require_root WHY: dies unless run as root (WHY: what needs it, for the message).
ls_require_root() { [ "$(id -u)" = 0 ] || ls_die "needs root${1:+ ($1)}"; }

# ls_require_tools TOOL...: dies naming the first TOOL that is not in PATH.
ls_require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || ls_die "$tool is not installed"
  done
}

# ls_watch_log FILE [LINES]: ls_fail shows FILE's last LINES (default 25) lines. Once per FILE.
_LS_WATCHED=()
ls_watch_log() {
  local w
  for w in "${_LS_WATCHED[@]}"; do [ "${w#*:}" != "$1" ] || return 0; done
  _LS_WATCHED+=("${2:-25}:$1")
}

# ls_fail MSG...: logs "FAIL: MSG", prints the tails of the ls_watch_log files, exits 1.
ls_fail() {
  local w
  ls_log "FAIL: $*"
  for w in "${_LS_WATCHED[@]}"; do
    echo "---- ${w#*:}" >&2
    tail -n "${w%%:*}" "${w#*:}" >&2 || true
  done
  exit 1
}

# ---- build -----------------------------------------------------------------------------------
# ls_build [TARGETS...]: configures (once) and builds $LS_BUILD (RelWithDebInfo, Ninja). Quiet
# unless it fails.
ls_build() {
  local log rc=0
  log=$(mktemp)
  {
    if [ ! -f "$LS_BUILD/build.ninja" ]; then
      cmake -S "$LS_ROOT" -B "$LS_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    fi &&
      ninja -C "$LS_BUILD" -j"$(nproc)" "$@"
  } >"$log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || tail -40 "$log" >&2
  rm -f "$log"
  return "$rc"
}

# Paths of the tools the integration tests use (built by ls_build).
ls_tool() {
  case "$1" in
    lazysnap) echo "$LS_BUILD/cmd/lazysnap" ;;
    lazysnapd) echo "$LS_BUILD/cmd/lazysnapd/lazysnapd" ;;
    *) echo "$LS_BUILD/test/$1" ;;
  esac
}

# ---- docker-registry --------------------------------------------------------------------------
# ls_start_registry DIR: starts docker-registry on a free loopback port with its own config and
# storage under DIR; sets LS_REGISTRY (host:port). Stopped at exit.
ls_start_registry() {
  local dir=$1 port pid try
  mkdir -p "$dir/storage"
  for try in 1 2 3; do
    port=$(ls_free_port)
    cat >"$dir/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    pid=$!
    ls_on_exit "ls_kill $pid"
    if ls_wait_for 20 curl -fsS "http://127.0.0.1:$port/v2/"; then
      LS_REGISTRY=127.0.0.1:$port
      LS_REGISTRY_PID=$pid
      ls_log "docker-registry on $LS_REGISTRY (pid $pid)"
      return 0
    fi
    ls_kill "$pid"
  done
  cat "$dir/registry.log" >&2
  ls_die "docker-registry did not start"
}

# ---- containerd --------------------------------------------------------------------------------
# ls_start_containerd DIR [LAZYSNAPD_SOCKET]: starts containerd with root, state, socket and
# config under DIR (CRI disabled); with a socket, adds [proxy_plugins.lazysnap]. Sets LS_CTR_SOCK,
# LS_CTR (a ctr command line with -a and namespace "test") and LS_RUNC_ROOT (DIR/runc). Stopped,
# and its mounts removed, at exit.
# CAUTION: whatever containerd's root, the runc shim keeps its state in /run/containerd/runc/<ns>/
# <id> and the container's cgroup is /<ns>/<id>, both shared by every containerd on the machine.
# Two tests that run a container of the same namespace and ID at the same time break each other
# (runc: "container with given ID already exists", "unable to store init state", "cannot start
# a stopped process"). Name containers with ls_ctr_id and pass `ctr run --runc-root $LS_RUNC_ROOT`.
ls_start_containerd() {
  local dir=$1 snap_sock=${2:-} pid
  mkdir -p "$dir/root" "$dir/state" "$dir/opt" "$dir/runc"
  LS_RUNC_ROOT=$dir/runc
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
  if [ -n "$snap_sock" ]; then
    cat >>"$dir/config.toml" <<EOF
[proxy_plugins.lazysnap]
  type = "snapshot"
  address = "$snap_sock"
EOF
  fi
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  pid=$!
  ls_on_exit "ls_kill $pid; ls_umount_below '$dir'"
  LS_CTR_SOCK=$dir/containerd.sock
  LS_CTR="ctr -a $LS_CTR_SOCK -n test"
  if ! ls_wait_for 30 ctr -a "$LS_CTR_SOCK" version; then
    tail -50 "$dir/containerd.log" >&2
    ls_die "containerd did not start"
  fi
  LS_CONTAINERD_PID=$pid
  ls_log "containerd on $LS_CTR_SOCK (pid $pid)"
}

# ls_ctr_id NAME: a container ID no other script running now uses: NAME-<this script's pid>.
ls_ctr_id() { echo "$1-$$"; }

# ls_wait_snapshotter CTR_SOCK [SNAPSHOTTER] [SECONDS]: waits (default 30 s) until containerd
# answers a call to its proxy snapshotter (default lazysnap). After lazysnapd restarts,
# containerd's gRPC channel to it stays in reconnect backoff for up to a few seconds and fails
# calls fast ("connection error ... connection refused: unavailable", "connection closed:
# unavailable"); `ctr run` must not be retried through that (a failed attempt can leave its
# container and task behind), so wait with an idempotent call (List) before it.
ls_wait_snapshotter() {
  ls_wait_for "${3:-30}" ctr -a "$1" -n test snapshots --snapshotter "${2:-lazysnap}" ls
}

# ---- lazysnapd ---------------------------------------------------------------------------------
# ls_start_lazysnapd DIR [EXTRA_TOML]: starts lazysnapd (build it first) with DIR/lazysnapd.toml:
# root DIR/lz, socket DIR/lz.sock, [registry] config_path DIR/certs.d (empty), then EXTRA_TOML
# (e.g. a [prefetch] table). Appends to DIR/lazysnapd.log (watched, see ls_fail); waits for a
# new "serving" line; fails if it exits first or logs an unknown config key. Sets
# LS_LAZYSNAPD_PID and LS_LAZYSNAPD_SOCK (for ls_start_containerd). Stopped at exit.
ls_start_lazysnapd() {
  local dir=$1 extra=${2:-} log=$1/lazysnapd.log n lines pid
  mkdir -p "$dir/certs.d"
  cat >"$dir/lazysnapd.toml" <<EOF
root = "$dir/lz"
address = "$dir/lz.sock"
log_level = "info"
[registry]
config_path = "$dir/certs.d"
$extra
EOF
  echo "==== lazysnapd start $(date +%T)" >>"$log"
  lines=$(wc -l <"$log")
  n=$(grep -c "lazysnapd serving on" "$log" || true)
  "$(ls_tool lazysnapd)" --config "$dir/lazysnapd.toml" >>"$log" 2>&1 &
  pid=$!
  ls_on_exit "ls_kill $pid"
  ls_watch_log "$log"
  # Serving once it says so (a socket left by a killed daemon exists before that).
  ls_wait_for 60 eval "[ \$(grep -c 'lazysnapd serving on' '$log') -gt $n ] || ! kill -0 $pid" ||
    ls_fail "lazysnapd ($dir) did not start"
  kill -0 "$pid" 2>/dev/null || ls_fail "lazysnapd ($dir) exited"
  ! tail -n +"$lines" "$log" | grep -F "unknown key" >&2 || ls_fail "lazysnapd ($dir): unknown config key"
  LS_LAZYSNAPD_PID=$pid
  LS_LAZYSNAPD_SOCK=$dir/lz.sock
  ls_log "lazysnapd on $LS_LAZYSNAPD_SOCK (pid $pid)"
}

# ---- the test image ------------------------------------------------------------------------------
# The Debian mirror apt uses here (no other network is reachable).
ls_debian_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -E '^[[:space:]]*(deb[[:space:]]|URIs:)' | grep -oE 'https?://[^[:space:]]+' |
    grep -E '/debian/?$' | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}

# Runs "$@" holding the cache lock (so a demo and a test running together build once).
_ls_locked() {
  mkdir -p "$LS_CACHE"
  (
    flock 9
    "$@"
  ) 9>"$LS_CACHE/.lock"
}

# ls_rootfs_tar: prints the path of a cached tar of a Debian bookworm minbase rootfs with python3
# (debootstrap from the local mirror; built once, ~1 min).
ls_rootfs_tar() {
  local out=$LS_CACHE/bookworm-python3-rootfs.tar
  [ -s "$out" ] || _ls_locked _ls_build_rootfs_tar "$out"
  [ -s "$out" ] || ls_die "no rootfs tar"
  echo "$out"
}
_ls_build_rootfs_tar() {
  local out=$1 mirror tmp
  [ -s "$out" ] && return 0
  mirror=$(ls_debian_mirror)
  tmp=$(mktemp -d "$LS_CACHE/debootstrap.XXXXXX")
  ls_log "debootstrap bookworm minbase + python3 from $mirror (once; cached in $LS_CACHE)"
  local ok=0 try
  for try in 1 2; do # one retry: a mirror hiccup should not fail a whole test run
    if debootstrap --variant=minbase --include=python3 bookworm "$tmp/rootfs" "$mirror" \
      >"$tmp/debootstrap.log" 2>&1; then
      ok=1
      break
    fi
    ls_log "debootstrap attempt $try failed: $(tail -1 "$tmp/debootstrap.log")"
    ls_umount_below "$tmp/rootfs"
    rm -rf "$tmp/rootfs"
  done
  if [ "$ok" != 1 ]; then
    tail -30 "$tmp/debootstrap.log" >&2
    ls_umount_below "$tmp"
    rm -rf "$tmp"
    ls_die "debootstrap failed"
  fi
  ls_umount_below "$tmp"
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"* \
    "$tmp/rootfs/var/log/"*.log "$tmp/rootfs/debootstrap" 2>/dev/null || true
  tar --xattrs --xattrs-include='*' --numeric-owner -C "$tmp/rootfs" -cpf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
}

# ls_special_tree DIR: fills DIR with every kind of object a layer can hold: devices, fifos,
# setuid/setgid/sticky modes, xattrs (binary values too), hard links (also across directories
# and to a setuid file), symlinks (relative, absolute, dangling, long), long and non-ASCII names,
# big uids, sub-second mtimes, empty, chunk-sized and multi-chunk files, whiteouts.
ls_special_tree() {
  local d=$1 long i
  mkdir -p "$d/special/dir/sub" "$d/special/sticky" "$d/special/links" "$d/opt/opaque" "$d/etc"
  # devices and fifos
  mknod "$d/special/null" c 1 3
  mknod "$d/special/loop7" b 7 7
  mknod "$d/special/bigdev" c 259 65537
  mkfifo "$d/special/fifo"
  # modes
  printf '#!/bin/sh\necho setuid\n' >"$d/special/setuid"
  chmod 4755 "$d/special/setuid"
  printf 'setgid\n' >"$d/special/setgid"
  chmod 2711 "$d/special/setgid"
  chmod 1777 "$d/special/sticky"
  printf 'secret\n' >"$d/special/private"
  chmod 0600 "$d/special/private"
  : >"$d/special/nomode"
  chmod 0000 "$d/special/nomode"
  # owners
  printf 'owned\n' >"$d/special/owned"
  chown 1234:5678 "$d/special/owned"
  printf 'big uid\n' >"$d/special/biguid"
  chown 3000000:4000000 "$d/special/biguid"
  # xattrs
  printf 'xattrs\n' >"$d/special/xattrs"
  setfattr -n user.lazysnap.text -v "hello world" "$d/special/xattrs"
  setfattr -n user.lazysnap.binary -v 0x00ff10e2 "$d/special/xattrs"
  setfattr -n trusted.lazysnap -v "trusted value" "$d/special/xattrs"
  setfattr -n user.lazysnap.dir -v "on a directory" "$d/special/dir"
  # hard links
  printf 'linked content\n' >"$d/special/links/a"
  ln "$d/special/links/a" "$d/special/links/b"
  ln "$d/special/links/a" "$d/special/dir/sub/c"
  ln "$d/special/setuid" "$d/special/links/setuid-link"
  # symlinks
  ln -s ../links/a "$d/special/dir/rel-symlink"
  ln -s /etc/os-release "$d/special/abs-symlink"
  ln -s does-not-exist "$d/special/dangling"
  long=$(printf 'long-target-%.0s' $(seq 1 20))
  ln -s "$long" "$d/special/long-symlink"
  # names
  long=$(printf 'd%03d/' $(seq 1 40))
  mkdir -p "$d/special/deep/$long"
  printf 'deep\n' >"$d/special/deep/${long}file-with-a-rather-long-name-$(printf 'x%.0s' $(seq 1 150))"
  printf 'unicode\n' >"$d/special/dir/ünïcödé-名前.txt"
  printf 'spaces\n' >"$d/special/dir/name with spaces"
  # sizes: empty, exactly one 4 MiB chunk, several chunks with a zero run, one byte
  : >"$d/special/empty"
  head -c $((4 << 20)) /dev/urandom >"$d/special/exact-4MiB"
  {
    head -c $((5 << 20)) /dev/urandom
    head -c $((3 << 20)) /dev/zero
    head -c 12345 /dev/urandom
  } >"$d/special/multi-chunk"
  printf x >"$d/special/one-byte"
  for i in $(seq 1 50); do printf 'small file %d\n' "$i" >"$d/special/dir/small-$i"; done
  # whiteouts (of files of the base layer) and an opaque directory
  : >"$d/etc/.wh.motd"
  : >"$d/opt/opaque/.wh..wh..opq"
  printf 'in opaque dir\n' >"$d/opt/opaque/file"
  # sub-second mtimes, old and future times
  touch -h -d '2021-03-04 05:06:07.123456789 UTC' "$d/special/dir/rel-symlink" "$d/special/owned"
  touch -d '1971-01-01 00:00:01 UTC' "$d/special/empty"
  touch -d '2100-01-01 00:00:00.5 UTC' "$d/special/one-byte"
}

# ls_python_image: prints the path of a cached OCI image layout holding
#   python          one layer: the debootstrap rootfs, config cmd python3
#   python-special  python plus a second layer from ls_special_tree
# Layer 1 is made with umoci (init, new, unpack, copy the rootfs in, repack); layer 2 is a GNU
# tar (posix format, xattrs) added with `umoci raw add-layer`.
ls_python_image() {
  local out=$LS_CACHE/python-oci-v2  # bump the suffix when the recipe changes
  [ -f "$out/.complete" ] || {
    local rootfs
    rootfs=$(ls_rootfs_tar)
    _ls_locked _ls_build_python_image "$out" "$rootfs"
  }
  [ -f "$out/.complete" ] || ls_die "no python image"
  echo "$out"
}
_ls_build_python_image() {
  local out=$1 rootfs=$2 tmp
  [ -f "$out/.complete" ] && return 0
  rm -rf "$out"
  tmp=$(mktemp -d "$LS_CACHE/image.XXXXXX")
  ls_log "packing the python image with umoci (once; cached in $out)"
  # A child bash, so that `set -e` holds whatever the caller's context.
  if ! bash -c 'set -e; source "$0"; _ls_python_image_steps "$@"' "$LS_ROOT/scripts/lib.sh" \
    "$tmp" "$rootfs" >"$tmp/umoci.log" 2>&1; then
    cat "$tmp/umoci.log" >&2
    ls_umount_below "$tmp"
    rm -rf "$tmp"
    ls_die "building the python image failed"
  fi
  mv "$tmp/layout" "$out"
  touch "$out/.complete"
  rm -rf "$tmp"
}

_ls_python_image_steps() {
  local tmp=$1 rootfs=$2
  umoci init --layout "$tmp/layout"
  umoci new --image "$tmp/layout:python"
  umoci unpack --image "$tmp/layout:python" "$tmp/bundle" >/dev/null
  tar --xattrs --xattrs-include='*' --numeric-owner -C "$tmp/bundle/rootfs" -xpf "$rootfs"
  umoci repack --image "$tmp/layout:python" "$tmp/bundle"
  umoci config --image "$tmp/layout:python" --config.cmd python3 --config.cmd -c \
    --config.cmd 'print("hello from python")' \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --architecture amd64 --os linux
  mkdir "$tmp/special"
  ls_special_tree "$tmp/special"
  tar --sort=name --format=posix --pax-option='delete=atime,delete=ctime' --xattrs --xattrs-include='*' \
    --numeric-owner -C "$tmp/special" -cpf "$tmp/special.tar" .
  umoci raw add-layer --image "$tmp/layout:python" --tag python-special "$tmp/special.tar"
  umoci gc --layout "$tmp/layout"
}

# ls_push_esgz_python LAYOUT REF: converts the python image (ls_python_image, tag python) to
# eStargz with `lazysnap image convert` into the OCI layout LAYOUT (tag lz), pushes it to REF
# (plain HTTP) with skopeo, and sets LS_MANIFEST to the pushed manifest's digest.
ls_push_esgz_python() {
  local image
  image=$(ls_python_image)
  "$(ls_tool lazysnap)" image convert --oci-layout "$image:python" "$1:lz" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$1:lz" "docker://$2"
  LS_MANIFEST=sha256:$(skopeo inspect --raw --tls-verify=false "docker://$2" | sha256sum | cut -d' ' -f1)
}

# ---- OCI layout helpers (jq) --------------------------------------------------------------------
# ls_oci_manifest LAYOUT TAG: prints the path of TAG's manifest blob.
ls_oci_manifest() {
  local layout=$1 tag=$2 d
  d=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$layout/index.json" | head -1)
  [ -n "$d" ] || ls_die "no tag $tag in $layout"
  echo "$layout/blobs/${d/://}"
}
# ls_oci_layers LAYOUT TAG: prints one line per layer: DIGEST MEDIATYPE SIZE.
ls_oci_layers() {
  jq -r '.layers[] | "\(.digest) \(.mediaType) \(.size)"' "$(ls_oci_manifest "$1" "$2")"
}
# ls_oci_blob LAYOUT DIGEST: the blob's path.
ls_oci_blob() { echo "$1/blobs/${2/://}"; }
# ls_oci_config LAYOUT TAG: the path of TAG's config blob.
ls_oci_config() {
  local d
  d=$(jq -r '.config.digest' "$(ls_oci_manifest "$1" "$2")")
  ls_oci_blob "$1" "$d"
}

# ls_layer_annotation_args MANIFEST INDEX: "--annotation\nKEY=VALUE" lines for layer INDEX's
# annotations (read with mapfile, passed to layer_dump).
ls_layer_annotation_args() {
  jq -r --argjson i "$2" '.layers[$i].annotations // {} | to_entries[] | "--annotation", "\(.key)=\(.value)"' "$1"
}

# ls_layer_annotation MANIFEST INDEX KEY: the value ("" if absent).
ls_layer_annotation() {
  jq -r --argjson i "$2" --arg k "$3" '.layers[$i].annotations[$k] // ""' "$1"
}

# ls_decompress BLOB: writes the uncompressed tar of a layer blob (gzip, zstd or plain) to stdout.
ls_decompress() {
  local magic
  magic=$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')
  case "$magic" in
    1f8b*) gzip -dc "$1" ;;
    28b52ffd | 5?2a4d18) zstd -dcq "$1" ;;
    *) cat "$1" ;;
  esac
}

# ls_extract_layer BLOB DIR: extracts a layer with GNU tar as root, keeping owners, modes,
# xattrs (all namespaces), devices and hard links. --delay-directory-restore: without it GNU tar
# leaves some directories (those it later replaces symlink placeholders in) with the time of
# extraction instead of their mtime in the archive.
ls_extract_layer() {
  mkdir -p "$2"
  ls_decompress "$1" | tar --xattrs --xattrs-include='*' --numeric-owner --same-owner \
    --delay-directory-restore --warning=no-timestamp -C "$2" -xpf -
}

# ls_strip_format_files <DUMP >DUMP: drops the eStargz format's own entries (the TOC file
# stargz.index.json and the prefetch landmarks), which are in the tar of an eStargz layer but
# are not image content, from a layer_dump listing.
ls_strip_format_files() {
  grep -vE '^(stargz\.index\.json|\.prefetch\.landmark|\.no\.prefetch\.landmark) ' || true
}

# ls_check_layout LAYOUT TAG: checks that the manifest, config and every layer blob of TAG
# exist with the digest and size their descriptors claim, and that the config's diff_ids are
# the digests of the uncompressed layers. Prints what is wrong; returns 1 if anything is.
ls_check_layout() {
  local layout=$1 tag=$2 m cfg n i d size blob diffid got bad=0
  m=$(ls_oci_manifest "$layout" "$tag") || return 1
  cfg=$(ls_oci_config "$layout" "$tag")
  [ "sha256:$(sha256sum <"$cfg" | cut -d' ' -f1)" = "$(jq -r .config.digest "$m")" ] ||
    { ls_log "$layout:$tag: config digest mismatch"; bad=1; }
  n=$(jq '.layers | length' "$m")
  [ "$n" = "$(jq '.rootfs.diff_ids | length' "$cfg")" ] ||
    { ls_log "$layout:$tag: $n layers but $(jq '.rootfs.diff_ids | length' "$cfg") diff_ids"; bad=1; }
  for ((i = 0; i < n; i++)); do
    d=$(jq -r ".layers[$i].digest" "$m")
    size=$(jq -r ".layers[$i].size" "$m")
    blob=$(ls_oci_blob "$layout" "$d")
    if [ ! -f "$blob" ]; then ls_log "$layout:$tag: layer $i: blob $d missing"; bad=1; continue; fi
    [ "sha256:$(sha256sum <"$blob" | cut -d' ' -f1)" = "$d" ] ||
      { ls_log "$layout:$tag: layer $i: content does not hash to $d"; bad=1; }
    [ "$(stat -c %s "$blob")" = "$size" ] ||
      { ls_log "$layout:$tag: layer $i: size $(stat -c %s "$blob") != descriptor's $size"; bad=1; }
    diffid=$(jq -r ".rootfs.diff_ids[$i]" "$cfg")
    got="sha256:$(ls_decompress "$blob" | sha256sum | cut -d' ' -f1)"
    [ "$got" = "$diffid" ] || { ls_log "$layout:$tag: layer $i: diff_id $diffid, uncompressed tar is $got"; bad=1; }
  done
  return $bad
}

# ls_same WHAT EXPECTED ACTUAL: ok if the files are identical, else a diff excerpt and 1.
ls_same() {
  if cmp -s "$2" "$3"; then
    ls_log "ok: $1 ($(wc -l <"$2") entries)"
  else
    ls_log "MISMATCH: $1 (--- $2, +++ $3)"
    diff -u "$2" "$3" | head -${LS_DIFF_LINES:-40} >&2
    return 1
  fi
}

# ---- network shaping (bench/shaper) ------------------------------------------------------------
# ls_start_shaper UPSTREAM_PORT RATE RTT [EXTRA_ARGS...]: starts lazysnap-shaper (build it first:
# ls_build lazysnap-shaper) on a free loopback port, forwarding to 127.0.0.1:UPSTREAM_PORT with
# RATE each way per connection (100mbit, 1gbit, unlimited) and RTT added (20ms, 0). EXTRA_ARGS go
# to the shaper (e.g. --aggregate). Sets LS_SHAPER_PORT, LS_SHAPER_PID and LS_SHAPER_STATS (a JSON
# file: connections, bytes_up, bytes_down, kept up to date). Stopped at exit.
ls_start_shaper() {
  local upstream=$1 rate=$2 rtt=$3 dir pid bin=$LS_BUILD/bench/shaper/lazysnap-shaper
  shift 3
  [ -x "$bin" ] || ls_die "no $bin (ls_build lazysnap-shaper)"
  dir=$(mktemp -d /tmp/ls-shaper.XXXXXX)
  "$bin" --upstream "127.0.0.1:$upstream" --rate "$rate" --rtt "$rtt" \
    --stats-file "$dir/stats.json" "$@" >"$dir/port" 2>"$dir/shaper.log" &
  pid=$!
  ls_on_exit "ls_kill $pid; rm -rf '$dir'"
  if ! ls_wait_for 10 test -s "$dir/stats.json"; then
    cat "$dir/shaper.log" >&2
    ls_die "lazysnap-shaper did not start"
  fi
  LS_SHAPER_PORT=$(head -1 "$dir/port")
  LS_SHAPER_PID=$pid
  LS_SHAPER_STATS=$dir/stats.json
  ls_log "lazysnap-shaper on 127.0.0.1:$LS_SHAPER_PORT -> $upstream ($rate, rtt $rtt, pid $pid)"
}

# ---- benchmark workload images (bench/coldstart) ---------------------------------------------------
# ls_workload_image NAME: prints the path of a cached OCI layout whose tag NAME is a one-layer
# image of a Debian bookworm minbase rootfs (debootstrap from the local mirror, built once):
#   python    python3                      (the ls_python_image layout, tag python)
#   gcc       gcc, libc6-dev               (compile and run hello.c)
#   postgres  postgresql (cluster 15/main) (start the server, pg_isready)
#   numpy     python3-numpy, python3-scipy (import numpy and scipy)
ls_workload_image() {
  local name=$1 pkgs out
  case "$name" in
    python) ls_python_image; return ;;
    gcc) pkgs=gcc,libc6-dev ;;
    postgres) pkgs=postgresql ;;
    numpy) pkgs=python3-numpy,python3-scipy ;;
    *) ls_die "unknown workload image '$name'" ;;
  esac
  out=$LS_CACHE/$name-oci-v1 # bump the suffix when the recipe changes
  [ -f "$out/.complete" ] || _ls_locked _ls_build_workload_image "$name" "$pkgs" "$out"
  [ -f "$out/.complete" ] || ls_die "no $name image"
  echo "$out"
}
ls_gcc_image() { ls_workload_image gcc; }
ls_postgres_image() { ls_workload_image postgres; }
ls_numpy_image() { ls_workload_image numpy; }

_ls_build_workload_image() {
  local name=$1 pkgs=$2 out=$3 mirror tmp ok=0 try
  [ -f "$out/.complete" ] && return 0
  rm -rf "$out"
  mirror=$(ls_debian_mirror)
  tmp=$(mktemp -d "$LS_CACHE/$name.XXXXXX")
  ls_log "debootstrap bookworm minbase + $pkgs from $mirror (once; cached in $out)"
  for try in 1 2; do
    if debootstrap --variant=minbase --include="$pkgs" bookworm "$tmp/rootfs" "$mirror" \
      >"$tmp/debootstrap.log" 2>&1; then
      ok=1
      break
    fi
    ls_log "debootstrap attempt $try failed: $(tail -1 "$tmp/debootstrap.log")"
    ls_umount_below "$tmp/rootfs"
    rm -rf "$tmp/rootfs"
  done
  ls_umount_below "$tmp"
  if [ "$ok" != 1 ]; then
    tail -30 "$tmp/debootstrap.log" >&2
    rm -rf "$tmp"
    ls_die "debootstrap of $name failed"
  fi
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"* \
    "$tmp/rootfs/var/log/"*.log "$tmp/rootfs/debootstrap" 2>/dev/null || true
  if ! bash -c 'set -e; source "$0"; _ls_workload_image_steps "$@"' "$LS_ROOT/scripts/lib.sh" \
    "$tmp" "$name" >"$tmp/umoci.log" 2>&1; then
    cat "$tmp/umoci.log" >&2
    ls_umount_below "$tmp"
    rm -rf "$tmp"
    ls_die "building the $name image failed"
  fi
  mv "$tmp/layout" "$out"
  touch "$out/.complete"
  rm -rf "$tmp"
}
_ls_workload_image_steps() {
  local tmp=$1 name=$2
  umoci init --layout "$tmp/layout"
  umoci new --image "$tmp/layout:$name"
  umoci unpack --image "$tmp/layout:$name" "$tmp/bundle" >/dev/null
  tar --xattrs --xattrs-include='*' --numeric-owner -C "$tmp/rootfs" -cpf - . |
    tar --xattrs --xattrs-include='*' --numeric-owner -C "$tmp/bundle/rootfs" -xpf -
  rm -rf "$tmp/rootfs"
  umoci repack --image "$tmp/layout:$name" "$tmp/bundle"
  umoci config --image "$tmp/layout:$name" --config.cmd sh \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --architecture amd64 --os linux
  umoci gc --layout "$tmp/layout"
}
