#!/usr/bin/env bash
# The project's tests, as CI runs them (.ci/run): installs the tools, checks
# formatting, vets, checks the layering and the GitHub workflows, runs every
# test and fuzzes the two readers of untrusted input (the Patchfile parser, a
# release's file list). The integration tests need root and start their own
# registry, buildkitd and Docker Engines (internal/stack).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

echo "==> hack/install-tools.sh"
./hack/install-tools.sh >/dev/null

echo "==> gofmt -l"
unformatted=$(find . -name '*.go' -not -path './.git/*' -not -path './.tmp/*' -print0 | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
  echo "these files need gofmt -w:" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "==> go vet ./..."
go vet ./...

echo "==> hack/check-layers.sh: no package imports one above it"
./hack/check-layers.sh

echo "==> hack/check-workflows.sh: actionlint, and the scripts the workflows run"
./hack/check-workflows.sh

echo "==> go test ./..."
go test -count=1 -timeout 60m ./...

# Budgets in executions, not seconds (about 30 s each on this machine): with a
# duration, Go 1.26's fuzz coordinator can fail a clean run with "context
# deadline exceeded" as the time runs out (golang/go#75804, fixed in 1.27).
echo "==> fuzz FuzzParse (150,000 inputs)"
go test ./frontend/parser -run '^$' -fuzz FuzzParse -fuzztime 150000x

echo "==> fuzz FuzzDecode (80,000 inputs): a release's file list, from any registry"
go test ./frontend/filelist -run '^$' -fuzz FuzzDecode -fuzztime 80000x

echo "==> fuzz FuzzReadList (50,000 inputs): the hashing step's list"
go test ./frontend/buildcontext -run '^$' -fuzz FuzzReadList -fuzztime 50000x

echo "==> all checks passed in $((SECONDS - start)) s"
