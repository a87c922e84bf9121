#!/usr/bin/env bash
# The Patchfile demo, on this machine only: installs the tools, starts a
# registry and a buildkitd on loopback (in .tmp/, stopped by PID on exit),
# builds examples/Patchfile with `docker buildx build` as a release, edits
# one file and builds again against that release, and prints both images'
# layers. Nothing global is touched: buildx runs with a private DOCKER_CONFIG.
#
#   ./hack/demo.sh            KEEP=1 ./hack/demo.sh   (keep .tmp/demo-* after)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "installing tools (hack/install-tools.sh)"
TOOLS_BIN=$(./hack/install-tools.sh)
# The docker CLI the tools built, whatever docker this machine has.
export PATH=$TOOLS_BIN:$PATH

RUN_DIR=$ROOT/.tmp/demo-$(date +%Y%m%d-%H%M%S)-$$
# The buildkitd socket lives in the run dir; unix socket paths are short.
if [ ${#RUN_DIR} -gt 70 ]; then
  mkdir -p /tmp/patchfile
  RUN_DIR=$(mktemp -d /tmp/patchfile/demo-XXXXXX)
fi
mkdir -p "$RUN_DIR"
DEVSTACK=$RUN_DIR/devstack
BUILDER=patchfile-demo-$$
export DOCKER_CONFIG=$RUN_DIR/docker

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  say "stopping the stack in $RUN_DIR"
  [ -x "$DEVSTACK" ] && "$DEVSTACK" down --dir "$RUN_DIR" || echo "devstack down failed" >&2
  if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$RUN_DIR" || echo "could not remove $RUN_DIR" >&2
  else
    echo "kept $RUN_DIR (logs: registry/registry.log, buildkitd-demo/buildkitd.log, build-*.log)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting a registry and a buildkitd in $RUN_DIR"
go build -o "$DEVSTACK" ./cmd/devstack
"$DEVSTACK" up --dir "$RUN_DIR"
# shellcheck source=/dev/null
. "$RUN_DIR/env"
cat "$RUN_DIR/env"

mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -sf "$TOOLS_BIN/docker-buildx" "$DOCKER_CONFIG/cli-plugins/docker-buildx"
docker buildx create --name "$BUILDER" --driver remote "$BUILDKIT_HOST" >/dev/null

RELEASE=$REGISTRY/shop/web:release

# build CONTEXT OUTPUT NAME [ARG...]: docker buildx build of CONTEXT/Patchfile,
# pushed as OUTPUT, with extra buildx ARGs; the progress goes to
# $RUN_DIR/build-NAME.log, and the lines saying which path it took are shown.
build() {
  local ctx=$1 output=$2 name=$3 log=$RUN_DIR/build-$3.log start=$SECONDS
  shift 3
  if ! docker buildx build --builder "$BUILDER" --progress=plain "$@" \
    -f "$ctx/Patchfile" \
    --build-arg BUILDKIT_SYNTAX="$FRONTEND_TAG" \
    --build-arg BASE="$BASE_IMAGE" \
    --build-arg RELEASE="$RELEASE" \
    --output "type=image,name=$output,push=true" \
    --metadata-file "$RUN_DIR/build-$name.json" \
    "$ctx" >"$log" 2>&1; then
    cat "$log" >&2
    echo "the build failed, see above" >&2
    return 1
  fi
  echo "built and pushed $output in $((SECONDS - start)) s; what the frontend said:"
  # Each vertex appears several times in plain progress; show each name once.
  grep -E '^#[0-9]+ .*(patch of release|full build:)' "$log" | grep -v -E '^#[0-9]+ diff ' |
    sed -E 's/^#[0-9]+ /  /' | awk '!seen[$0]++' | grep . ||
    echo "  (no \"patch of release\" or \"full build:\" line in the progress)"
}

digest_of() { sed -n 's/.*"containerimage.digest": *"\([^"]*\)".*/\1/p' "$RUN_DIR/build-$1.json"; }

say "release: docker buildx build -f examples/Patchfile --build-arg PATCH= examples -> $RELEASE"
# PATCH= (empty): a release is a full build, whatever the PATCH line says.
build examples "$RELEASE" release --build-arg PATCH=
RELEASE_REF=$REGISTRY/shop/web@$(digest_of release)
"$DEVSTACK" inspect "$RELEASE_REF"

say "editing examples/src/server.js in a copy and building again (PATCH $RELEASE)"
cp -a examples "$RUN_DIR/app-v2"
echo "console.log('v2: one line changed');" >>"$RUN_DIR/app-v2/src/server.js"
build "$RUN_DIR/app-v2" "$REGISTRY/shop/web:v2" v2
"$DEVSTACK" inspect "$REGISTRY/shop/web@$(digest_of v2)" "$RELEASE_REF"

say "done"
