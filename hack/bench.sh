#!/usr/bin/env bash
# The Patchfile benchmark (bench/, GitHub issue 4): installs the tools, then
# runs `go run ./bench` against the real local stack (a registry and
# buildkitd daemons on loopback, in .tmp/bench-<time>/, stopped by PID at
# the end, on error or Ctrl-C too). It compares a one-file patch deploy
# with the Dockerfile frontend (with and without COPY --link; cold, cold
# with registry cache, warm), measures how the patch grows with the app and
# the change, prints the tables and writes BENCHMARKS.md.
#
#   ./hack/bench.sh              the full benchmark (30-45 minutes on 2 cores)
#   ./hack/bench.sh -quick       a small version to smoke-test it (about 1 minute;
#                                the report goes to the run dir, not BENCHMARKS.md)
#   ./hack/bench.sh -n 5 -scale=false    more runs per build, no scale series
#   ./hack/bench.sh -h           every flag
#
# The raw figures stay in .tmp/bench-<time>/results.json;
# `go run ./bench -report <that file>` renders the report again.
set -euo pipefail
cd "$(dirname "$0")/.."

# install-tools.sh prints only progress (to stderr); it is idempotent.
./hack/install-tools.sh >&2
exec go run ./bench "$@"
