#!/usr/bin/env bash
# The packages' layering, checked: each package of this module may import
# (in its code and its tests) only packages listed above it here. A new
# package gets its line; an import that reaches up fails the test command.
set -euo pipefail
cd "$(dirname "$0")/.."

module=github.com/patchfile/patchfile
layers=(
  version                # the frontend's version and revision, set at build time
  llb                    # LLB helpers that know nothing of Patchfiles
  frontend/parser        # Patchfile text to located nodes
  frontend/buildcontext  # the build context as a list of entries, and the in-builder walk that makes it (pure Go)
  frontend/carry         # the in-builder copy that carries a compiler's cache (CARRY) between builds (pure Go)
  frontend/internal/fake # a context in memory and a fixed resolver, for unit tests
  frontend/patchfile     # located nodes to typed, validated instructions
  frontend/filelist      # the app file list: encoding, bounded decoding, change sets (pure Go)
  frontend/sbom          # a patch's SBOM from its release's: SPDX statements, what they name, their union (pure Go)
  frontend/decide        # patch or full build, and why: release labels, candidate configs, the rule (pure: no I/O)
  frontend/convert       # the Patchfile to LLB and image config: dependency stage, app tree, patch layer, layer plans
  frontend               # the gateway layer: Build, reading the context and candidates, subrequests, checks
  cmd/frontend           # the frontend image's binary
  internal/testscanner   # the tests' SBOM generator: BuildKit's scanner protocol, npm packages
  internal/stack         # the real test stack: registry, buildkitd, Docker Engines
  cmd/devstack           # the test stack from scripts
  bench                  # the benchmark
  integration            # the tests against the real stack
)

declare -A rank
for i in "${!layers[@]}"; do
  rank[$module/${layers[$i]}]=$i
done

status=0
while read -r pkg imports; do
  if [ -z "${rank[$pkg]+x}" ]; then
    echo "check-layers: $pkg has no line in hack/check-layers.sh: add it where it belongs" >&2
    status=1
    continue
  fi
  for imp in $imports; do
    case $imp in
    "$module"|"$module"/*) ;;
    *) continue ;;
    esac
    if [ -z "${rank[$imp]+x}" ] || [ "${rank[$imp]}" -ge "${rank[$pkg]}" ]; then
      echo "check-layers: $pkg imports $imp, which is not below it" >&2
      status=1
    fi
  done
done < <(go list -f '{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./...)
exit $status
