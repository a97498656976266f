#!/usr/bin/env bash
# `lazysnap image convert` between registries and OCI layouts, against docker-registry on
# loopback and skopeo/umoci:
#  1. pushes the cached debootstrap python image (scripts/lib.sh; REGISTRY_CONVERT_IMAGE=DIR:TAG
#     picks another OCI layout) to 127.0.0.1:PORT/src:latest with skopeo;
#  2. converts src:latest -> dst:latest (--plain-http, --json): the raw manifest's layers are
#     eStargz (toc.digest annotation), skopeo inspects it, and the image copied back with skopeo
#     and unpacked with umoci has the same rootfs as the source (diff -r, landmarks and
#     stargz.index.json left out);
#  3. converts again: no blob is uploaded again (the --json "upload" counters);
#  4. converts dst:latest (already eStargz) to another repository: layers kept and
#     cross-repository mounted, not uploaded; registry -> oci: layout and back; a registry
#     name mapped to the loopback registry by --hosts-dir (hosts.toml); a registry with basic
#     auth, refused without credentials and with a wrong password, written with credentials
#     from $DOCKER_CONFIG (the default) and from --docker-config;
#  4b. an index made of the python and python-special images (as linux/amd64 and linux/arm64):
#     --all-platforms converts both (the shared layer once), --platform picks one;
#  5. bad input fails with a clear message and exit status 1: unknown repository, a closed
#     port, a non-image manifest (an artifact), a digest naming a blob, an image whose layer
#     is garbage, a missing platform, a wrong password (4a); 2 for a malformed reference. None
#     of them tags anything, and an existing DST tag stays where it was.
# $LAZYSNAP: the lazysnap binary (default ${LAZYSNAP_BUILD_DIR:-build}/cmd/lazysnap).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ls_test_result registry_convert
LAZYSNAP=${LAZYSNAP:-$LS_BUILD/cmd/lazysnap}
[ -x "$LAZYSNAP" ] || ls_die "no lazysnap binary at $LAZYSNAP"
for tool in umoci skopeo jq docker-registry curl; do
  command -v "$tool" >/dev/null || ls_die "$tool is not installed"
done
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }

T=$(mktemp -d /tmp/registry_convert_test.XXXXXX)
ls_on_exit "rm -rf $T"
ROOTLESS=()
[ "$(id -u)" = 0 ] || ROOTLESS=(--rootless)

SRC_IMAGE=${REGISTRY_CONVERT_IMAGE:-$(ls_python_image):python}
ls_start_registry "$T/registry"
R=$LS_REGISTRY
step "pushing $SRC_IMAGE to $R/src:latest"
skopeo copy -q --dest-tls-verify=false "oci:$SRC_IMAGE" "docker://$R/src:latest"

convert() { "$LAZYSNAP" image convert -q --plain-http --json "$@"; }

# ---- 2. registry -> registry ----------------------------------------------------------------
step "converting $R/src:latest -> $R/dst:latest"
start=$EPOCHREALTIME
convert "$R/src:latest" "$R/dst:latest" >"$T/first.json" || fail "first conversion failed"
ls_log "converted in $(ls_elapsed "$start") s"
jq -e '.manifests[0].layers | length > 0 and all(.converted)' "$T/first.json" >/dev/null ||
  fail "layers not converted: $(cat "$T/first.json")"
jq -e '.upload.blobsUploaded > 0' "$T/first.json" >/dev/null || fail "nothing uploaded"
skopeo inspect --tls-verify=false --raw "docker://$R/dst:latest" >"$T/manifest.json"
jq -e '.layers | length > 0 and all(.annotations["containerd.io/snapshot/stargz/toc.digest"] | startswith("sha256:"))' \
  "$T/manifest.json" >/dev/null || fail "dst layers are not eStargz: $(cat "$T/manifest.json")"
[ "$(jq -r .digest "$T/first.json")" = "sha256:$(sha256sum <"$T/manifest.json" | cut -d' ' -f1)" ] ||
  fail "the tag does not point at the reported manifest"
skopeo inspect --tls-verify=false "docker://$R/dst:latest" >/dev/null || fail "skopeo inspect"

step "comparing the converted rootfs with the source"
skopeo copy -q --src-tls-verify=false "docker://$R/src:latest" "oci:$T/back:src"
skopeo copy -q --src-tls-verify=false "docker://$R/dst:latest" "oci:$T/back:dst"
umoci unpack "${ROOTLESS[@]}" --image "$T/back:src" "$T/u-src" >/dev/null
umoci unpack "${ROOTLESS[@]}" --image "$T/back:dst" "$T/u-dst" >/dev/null
for f in stargz.index.json .prefetch.landmark .no.prefetch.landmark; do
  rm -f "$T/u-dst/rootfs/$f"
done
# diff -r compares contents (and says nothing useful of devices); the listing compares every
# entry's type, mode, owner, link target, device numbers and mtime.
diff -r --no-dereference "$T/u-src/rootfs" "$T/u-dst/rootfs" 2>&1 |
  grep -v 'is a character special file while file .* is a character special file' >"$T/diff" || true
[ ! -s "$T/diff" ] || fail "rootfs differs: $(head -20 "$T/diff")"
listing() {
  (cd "$1" && find . -mindepth 1 -exec stat -c '%n|%F|%a|%u|%g|%t:%T|%N|%Y' {} + | sort)
}
listing "$T/u-src/rootfs" >"$T/list-src"
listing "$T/u-dst/rootfs" >"$T/list-dst"
diff "$T/list-src" "$T/list-dst" >"$T/list-diff" || fail "metadata differs: $(head -20 "$T/list-diff")"

# ---- 3. again: nothing new uploaded ---------------------------------------------------------
step "converting again"
convert "$R/src:latest" "$R/dst:latest" >"$T/second.json" || fail "second conversion failed"
jq -e '.upload.blobsUploaded == 0 and .upload.bytesUploaded == 0' "$T/second.json" >/dev/null ||
  fail "blobs uploaded again: $(jq -c .upload "$T/second.json")"
[ "$(jq -r .digest "$T/second.json")" = "$(jq -r .digest "$T/first.json")" ] ||
  fail "the second conversion gave another manifest"

# ---- 4. kept layers, mounts, layouts --------------------------------------------------------
step "converting an eStargz image to another repository (kept, mounted)"
convert "$R/dst:latest" "$R/other:v1" >"$T/kept.json" || fail "conversion of dst failed"
jq -e '(.manifests[0].layers | all(.converted | not)) and .upload.blobsMounted > 0
       and .upload.blobsUploaded <= 1' "$T/kept.json" >/dev/null ||
  fail "expected kept layers and mounts: $(cat "$T/kept.json")"
step "registry -> oci: layout -> registry"
convert "$R/src:latest" "oci:$T/layout:conv" >"$T/to-layout.json" || fail "registry -> layout"
skopeo inspect "oci:$T/layout:conv" >/dev/null || fail "skopeo inspect of the layout"
convert "oci:$T/layout:conv" "$R/fromlayout:v1" >"$T/from-layout.json" || fail "layout -> registry"
[ "$(jq -r .digest "$T/from-layout.json")" = "$(jq -r .digest "$T/first.json")" ] ||
  fail "layout round trip changed the image"

step "--hosts-dir: a name served by the loopback registry (streamed copy across registries)"
mkdir -p "$T/certs.d/registry.test:5000"
printf 'server = "http://%s"\n' "$R" >"$T/certs.d/registry.test:5000/hosts.toml"
"$LAZYSNAP" image convert -q --json --hosts-dir "$T/certs.d" registry.test:5000/dst:latest \
  "$R/viahosts:v1" >"$T/hosts.json" || fail "--hosts-dir conversion failed"
[ "$(jq -r .digest "$T/hosts.json")" = "$(jq -r .digest "$T/first.json")" ] ||
  fail "--hosts-dir conversion changed the image"
jq -e '.upload.blobsMounted == 0 and .upload.blobsUploaded > 0' "$T/hosts.json" >/dev/null ||
  fail "expected uploads, not mounts, across registry names: $(jq -c .upload "$T/hosts.json")"

# ---- 4a. credentials from a Docker config -----------------------------------------------------
if command -v htpasswd >/dev/null; then
  step "a registry with basic auth: --docker-config"
  mkdir -p "$T/auth/storage"
  htpasswd -Bbn tester s3cret >"$T/auth/htpasswd"
  aport=$(ls_free_port)
  cat >"$T/auth/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $T/auth/storage
auth:
  htpasswd:
    realm: test
    path: $T/auth/htpasswd
http:
  addr: 127.0.0.1:$aport
YML
  docker-registry serve "$T/auth/registry.yml" >"$T/auth/log" 2>&1 &
  ls_on_exit "ls_kill $!"
  ls_wait_for 20 curl -sS -o /dev/null "http://127.0.0.1:$aport/v2/" || fail "auth registry did not start"
  A=127.0.0.1:$aport
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$A" "$(printf tester:s3cret | base64 -w0)" \
    >"$T/docker-config.json"
  printf '{"auths":{}}' >"$T/empty-config.json"
  rc=0
  "$LAZYSNAP" image convert -q --timeout 10 --docker-config "$T/empty-config.json" \
    "$R/dst:latest" "$A/auth:v1" 2>"$T/err" || rc=$?
  [ "$rc" = 1 ] && grep -Eqi "401|unauthori|denied|credential" "$T/err" ||
    fail "no credentials: exit $rc, $(cat "$T/err")"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$A" "$(printf tester:wrong | base64 -w0)" \
    >"$T/wrong-config.json"
  rc=0
  "$LAZYSNAP" image convert -q --timeout 10 --docker-config "$T/wrong-config.json" \
    "$R/dst:latest" "$A/auth:v1" 2>"$T/err" || rc=$?
  [ "$rc" = 1 ] && grep -Eqi "401|unauthori|denied|credential" "$T/err" ||
    fail "wrong password: exit $rc, $(cat "$T/err")"
  ! grep -q s3cret "$T/err" || fail "the error message shows a password"
  ! skopeo inspect --tls-verify=false --creds tester:s3cret --raw "docker://$A/auth:v1" \
    >/dev/null 2>&1 || fail "refused conversions tagged auth:v1"
  ls_log "as expected (wrong password): $(head -1 "$T/err")"
  # Credentials from $DOCKER_CONFIG by default (no --docker-config).
  mkdir -p "$T/dockercfg"
  cp "$T/docker-config.json" "$T/dockercfg/config.json"
  DOCKER_CONFIG=$T/dockercfg "$LAZYSNAP" image convert -q --json \
    "$R/dst:latest" "$A/auth:v1" >"$T/auth.json" || fail "conversion with \$DOCKER_CONFIG failed"
  "$LAZYSNAP" image convert -q --docker-config "$T/docker-config.json" "$R/dst:latest" \
    "$A/auth:v2" || fail "conversion with --docker-config failed"
  skopeo inspect --tls-verify=false --creds tester:s3cret --raw "docker://$A/auth:v1" |
    jq -e '.layers | all(.annotations["containerd.io/snapshot/stargz/toc.digest"])' >/dev/null ||
    fail "the image pushed with credentials is missing or not eStargz"
fi

# ---- 4b. an index: every platform, or the chosen one -------------------------------------------
if [ -z "${REGISTRY_CONVERT_IMAGE:-}" ]; then
  step "multi-platform index: --all-platforms and --platform"
  skopeo copy -q --dest-tls-verify=false "oci:$(ls_python_image):python-special" \
    "docker://$R/src:special"
  entry() {  # TAG ARCH: an index entry for the manifest of src:TAG, labelled linux/ARCH
    skopeo inspect --tls-verify=false --raw "docker://$R/src:$1" >"$T/m-$1"
    jq -n --arg d "sha256:$(sha256sum <"$T/m-$1" | cut -d' ' -f1)" --argjson s "$(stat -c %s "$T/m-$1")" \
      --arg a "$2" '{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d,
        size: $s, platform: {os: "linux", architecture: $a}}'
  }
  jq -n --argjson a "$(entry latest amd64)" --argjson b "$(entry special arm64)" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$a, $b]}' \
    >"$T/index.json"
  curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/index.json" "http://$R/v2/src/manifests/multi" >/dev/null
  convert --all-platforms "$R/src:multi" "$R/dst:multi-all" >"$T/all.json" || fail "--all-platforms"
  skopeo inspect --tls-verify=false --raw "docker://$R/dst:multi-all" >"$T/all-index.json"
  [ "$(jq -r '[.manifests[].platform.architecture] | join(",")' "$T/all-index.json")" = amd64,arm64 ] ||
    fail "--all-platforms index: $(cat "$T/all-index.json")"
  for d in $(jq -r '.manifests[].digest' "$T/all-index.json"); do
    skopeo inspect --tls-verify=false --raw "docker://$R/dst@$d" |
      jq -e '.layers | all(.annotations["containerd.io/snapshot/stargz/toc.digest"])' >/dev/null ||
      fail "manifest $d of the index is not eStargz"
  done
  # Layer 1 is shared by both platforms and was converted before: nothing but layer 2 is new.
  jq -e '.upload.blobsUploaded <= 3' "$T/all.json" >/dev/null ||
    fail "shared layers uploaded again: $(jq -c .upload "$T/all.json")"
  convert --platform linux/arm64 "$R/src:multi" "$R/dst:multi-arm64" >/dev/null ||
    fail "--platform linux/arm64"
  [ "$(skopeo inspect --tls-verify=false --raw "docker://$R/dst:multi-arm64" |
    jq -r '[.manifests[].platform.architecture] | join(",")')" = arm64 ] ||
    fail "--platform linux/arm64 index is not arm64 only"
  expect_platform_error=1
fi

# ---- 5. errors -------------------------------------------------------------------------------
expect_error() {  # expect_error STATUS PATTERN ARGS...
  local want=$1 pattern=$2 rc=0
  shift 2
  "$LAZYSNAP" image convert -q --plain-http --timeout 5 "$@" >/dev/null 2>"$T/err" || rc=$?
  [ "$rc" = "$want" ] || fail "$*: exit $rc, want $want ($(cat "$T/err"))"
  grep -Eqi -- "$pattern" "$T/err" || fail "$*: message '$(cat "$T/err")' lacks /$pattern/"
  ls_log "as expected: $(head -1 "$T/err")"
}
step "errors"
expect_error 1 "not ?found|unknown|name_unknown|manifest_unknown" "$R/nosuch:latest" "$R/x:latest"
closed=$(ls_free_port)
expect_error 1 "127.0.0.1:$closed/src:latest: .*(connect|refused)" "127.0.0.1:$closed/src:latest" "$R/x:latest"
# An artifact: an OCI manifest whose config is not an image config.
printf '{"kind":"sbom"}' >"$T/cfg"
printf 'not a tar' >"$T/blob"
push_blob() {
  local d loc
  d=sha256:$(sha256sum <"$1" | cut -d' ' -f1)
  loc=$(curl -fsS -X POST -D - -o /dev/null "http://$R/v2/art/blobs/uploads/" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  case "$loc" in http*) ;; *) loc=http://$R$loc ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" \
    "$loc$([[ $loc == *\?* ]] && echo '&' || echo '?')digest=$d" >/dev/null
  echo "$d"
}
cfg=$(push_blob "$T/cfg")
blob=$(push_blob "$T/blob")
cat >"$T/art.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom","config":{"mediaType":"application/vnd.example.sbom.config+json","digest":"$cfg","size":$(stat -c %s "$T/cfg")},"layers":[{"mediaType":"text/plain","digest":"$blob","size":$(stat -c %s "$T/blob")}]}
JSON
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "@$T/art.json" "http://$R/v2/art/manifests/v1" >/dev/null
expect_error 1 "not a container image" "$R/art:v1" "$R/x:latest"
expect_error 2 "reference" "$R/UPPER:latest" "$R/x:latest"
# A digest reference naming a blob, not a manifest (docker-registry answers 500 to that).
expect_error 1 "not ?found|unknown|HTTP 500" "$R/art@$blob" "$R/x:latest"
# An image whose layer is not a layer (gzip media type, garbage bytes): the config and the
# manifests may be written, but the existing DST tag must still point at the old image.
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(sha256sum <"$T/blob" | cut -d' ' -f1)" >"$T/imgcfg"
imgcfg=$(push_blob "$T/imgcfg")
cat >"$T/bad-image.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$imgcfg","size":$(stat -c %s "$T/imgcfg")},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$blob","size":$(stat -c %s "$T/blob")}]}
JSON
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "@$T/bad-image.json" "http://$R/v2/art/manifests/badlayer" >/dev/null
expect_error 1 "layer sha256:|tar|invalid|corrupt" "$R/art:badlayer" "$R/dst:latest"
[ "$(skopeo inspect --tls-verify=false --raw "docker://$R/dst:latest" | sha256sum | cut -d' ' -f1)" = \
  "$(jq -r .digest "$T/first.json" | cut -d: -f2)" ] || fail "a failed conversion moved dst:latest"
if [ -n "${expect_platform_error:-}" ]; then
  expect_error 1 "platform linux/s390x" --platform linux/s390x "$R/src:multi" "$R/x:latest"
fi
# Nothing was tagged by the failed conversions.
if skopeo inspect --tls-verify=false --raw "docker://$R/x:latest" >/dev/null 2>&1; then
  fail "a failed conversion tagged $R/x:latest"
fi
