#!/usr/bin/env bash
# Installs the real BuildKit test stack into a cache folder, idempotently:
# runc (Debian), buildkitd + buildctl (moby/buildkit), registry (distribution),
# docker-buildx, docker-compose, and a Docker Engine (dockerd, containerd with
# its runc shim, and the docker CLI), each built from the Go module proxy at a
# pinned version; and the workflow linter, actionlint (hack/check-workflows.sh),
# with Debian's shellcheck for the workflows' run: scripts.
# The docker CLI is always built here, whatever docker the machine has, so the
# engine tests do not depend on the machine.
# Prints nothing but progress; exits non-zero if anything cannot be installed.
set -euo pipefail

BUILDKIT_VERSION=v0.33.1
DISTRIBUTION_VERSION=v3.1.2
BUILDX_VERSION=v0.37.2
MOBY_VERSION=v28.5.2
DOCKER_CLI_VERSION=v28.5.2
CONTAINERD_VERSION=v2.2.9
# Later Compose releases need a newer Go than 1.26.
COMPOSE_VERSION=v5.6.0
ACTIONLINT_VERSION=v1.7.12

TOOLS_DIR=${PATCHFILE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/patchfile/tools}
mkdir -p "$TOOLS_DIR/bin"

log() { echo "install-tools: $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build_from_module MODULE VERSION OUT [BUILD FLAGS...] PKG: builds PKG inside
# the module's own directory (its go.mod has exclude directives, so `go
# install` refuses). The new binary replaces the old one in one rename, so a
# test that runs it meanwhile runs the one or the other.
build_from_module() {
  local module=$1 version=$2 out=$3; shift 3
  local stamp="$TOOLS_DIR/bin/.$(basename "$out").version"
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$module@$version" ]; then
    return 0
  fi
  log "building $module@$version -> $(basename "$out")"
  local dir
  dir=$(module_dir "$module" "$version")
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" "$@")
  mv -f "$out.tmp" "$out"
  echo "$module@$version" >"$stamp"
}

# module_dir MODULE VERSION: downloads the module and prints its directory in
# the (read-only) module cache.
module_dir() {
  local dir
  dir=$(cd "$TOOLS_DIR" && GOFLAGS=-mod=mod go mod download -json "$1@$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { log "cannot download $1@$2"; return 1; }
  echo "$dir"
}

# build_from_vendor_mod MODULE VERSION OUT TAGS LDFLAGS PKG...: for moby and
# docker/cli, which are not Go modules yet: their module file is vendor.mod
# and the proxy's zip has no vendor/ tree. A writable copy of the module, in
# $TOOLS_DIR/src, gets vendor.mod as its go.mod and is built in module mode.
build_from_vendor_mod() {
  local module=$1 version=$2 out=$3 tags=$4 ldflags=$5; shift 5
  local stamp="$TOOLS_DIR/bin/.$(basename "$out").version"
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$module@$version" ]; then
    return 0
  fi
  log "building $module@$version -> $(basename "$out")"
  local dir src
  dir=$(module_dir "$module" "$version")
  src="$TOOLS_DIR/src/$(basename "$module")-${version%+incompatible}"
  if ! [ -f "$src/go.mod" ]; then
    rm -rf "$src" "$src.tmp"
    mkdir -p "$TOOLS_DIR/src"
    cp -r "$dir" "$src.tmp"
    chmod -R u+w "$src.tmp"
    rm -rf "$src.tmp/vendor"
    cp "$src.tmp/vendor.mod" "$src.tmp/go.mod"
    cp "$src.tmp/vendor.sum" "$src.tmp/go.sum"
    mv "$src.tmp" "$src"
  fi
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out" "$@")
  echo "$module@$version" >"$stamp"
}

# enable_arm64_emulation registers qemu-aarch64 with binfmt_misc (flag F, so
# it works inside build containers), for multi-platform RUN steps. A kernel
# that refuses it leaves the arm64 tests that need emulation skipped.
enable_arm64_emulation() {
  local bm=/proc/sys/fs/binfmt_misc
  if ! [ -e "$bm/register" ] && ! mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null; then
    log "cannot mount binfmt_misc: arm64 RUN steps will not run here"
    return 0
  fi
  [ -e "$bm/qemu-aarch64" ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 ||
    log "cannot register qemu-aarch64: arm64 RUN steps will not run here"
}

# fetch_arm64_busybox puts Debian's arm64 busybox-static next to the tools,
# for the multi-platform base image (internal/stack).
fetch_arm64_busybox() {
  local out="$TOOLS_DIR/bin/busybox-arm64"
  [ -x "$out" ] && return 0
  log "downloading busybox-static:arm64"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq >/dev/null
  fi
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq busybox-static:arm64 >/dev/null 2>&1) || {
    apt-get update -qq >/dev/null
    (cd "$tmp" && apt-get download -qq busybox-static:arm64 >/dev/null)
  }
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/root"
  install -m 0755 "$tmp/root/bin/busybox" "$out"
  rm -rf "$tmp"
}

apt_install runc iproute2 ca-certificates busybox-static qemu-user-static binfmt-support shellcheck git
enable_arm64_emulation
fetch_arm64_busybox
if ! [ -f "$TOOLS_DIR/go.mod" ]; then
  printf 'module patchfile.tools\n\ngo 1.24\n' >"$TOOLS_DIR/go.mod"
fi

build_from_module github.com/moby/buildkit "$BUILDKIT_VERSION" "$TOOLS_DIR/bin/buildkitd" ./cmd/buildkitd
build_from_module github.com/moby/buildkit "$BUILDKIT_VERSION" "$TOOLS_DIR/bin/buildctl" ./cmd/buildctl
build_from_module github.com/distribution/distribution/v3 "$DISTRIBUTION_VERSION" "$TOOLS_DIR/bin/registry" ./cmd/registry
# With its version set: Compose refuses a buildx older than 0.17.0, and one
# built without it says v0.0.0+unknown. Such a one (from an older copy of this
# script, whose stamp is the same) is rebuilt.
if [ -x "$TOOLS_DIR/bin/docker-buildx" ] &&
  ! "$TOOLS_DIR/bin/docker-buildx" version 2>/dev/null | grep -qF " $BUILDX_VERSION"; then
  rm -f "$TOOLS_DIR/bin/.docker-buildx.version"
fi
build_from_module github.com/docker/buildx "$BUILDX_VERSION" "$TOOLS_DIR/bin/docker-buildx" \
  -ldflags "-X github.com/docker/buildx/version.Version=$BUILDX_VERSION" ./cmd/buildx
# The Compose CLI plugin: `docker compose build` runs `docker buildx bake`.
build_from_module github.com/docker/compose/v5 "$COMPOSE_VERSION" "$TOOLS_DIR/bin/docker-compose" \
  -ldflags "-X github.com/docker/compose/v5/internal.Version=$COMPOSE_VERSION" ./cmd
build_from_module github.com/rhysd/actionlint "$ACTIONLINT_VERSION" "$TOOLS_DIR/bin/actionlint" ./cmd/actionlint

# The Docker Engine (internal/stack's StartEngine): dockerd runs against its
# own containerd, which starts containers with the runc shim and Debian's
# runc. No docker-proxy (the engine runs with --userland-proxy=false) and no
# docker-init (only for `docker run --init`).
build_from_module github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" "$TOOLS_DIR/bin/containerd" ./cmd/containerd
build_from_module github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" "$TOOLS_DIR/bin/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2
build_from_vendor_mod github.com/docker/docker "$MOBY_VERSION+incompatible" "$TOOLS_DIR/bin/dockerd" \
  "netgo osusergo exclude_graphdriver_btrfs exclude_graphdriver_devicemapper exclude_disk_quota" \
  "-X github.com/docker/docker/dockerversion.Version=${MOBY_VERSION#v}" ./cmd/dockerd
build_from_vendor_mod github.com/docker/cli "$DOCKER_CLI_VERSION+incompatible" "$TOOLS_DIR/bin/docker" \
  "netgo osusergo" "-X github.com/docker/cli/cli/version.Version=${DOCKER_CLI_VERSION#v}" ./cmd/docker

mkdir -p "$HOME/.docker/cli-plugins"
for plugin in docker-buildx docker-compose; do
  if ! cmp -s "$TOOLS_DIR/bin/$plugin" "$HOME/.docker/cli-plugins/$plugin"; then
    cp "$TOOLS_DIR/bin/$plugin" "$HOME/.docker/cli-plugins/$plugin"
  fi
done
echo "$TOOLS_DIR/bin"
