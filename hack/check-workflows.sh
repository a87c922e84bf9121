#!/usr/bin/env bash
# The GitHub Actions workflows, checked: actionlint (from hack/install-tools.sh,
# with shellcheck for the run: scripts) on every workflow file of the
# repository, .github/workflows/*.yml and the examples/github-actions/*.yml
# that users copy (named explicitly: actionlint alone only finds .github's);
# then every repository script that a workflow of .github runs (./.ci/run,
# ./hack/*.sh, bash .ci/run, ...) must exist and be executable. The examples'
# scripts, if any, would be the copying repository's, so only actionlint reads
# those.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=${PATCHFILE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/patchfile/tools}
actionlint=$TOOLS_DIR/bin/actionlint
if ! [ -x "$actionlint" ]; then
  actionlint=$(command -v actionlint) || {
    echo "check-workflows: no actionlint in $TOOLS_DIR/bin or on PATH: run ./hack/install-tools.sh" >&2
    exit 1
  }
fi
command -v shellcheck >/dev/null ||
  echo "check-workflows: no shellcheck on PATH: the run: scripts are not checked (./hack/install-tools.sh installs it)" >&2

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
files=("${workflows[@]}" examples/github-actions/*.yml examples/github-actions/*.yaml)
if [ ${#workflows[@]} -eq 0 ]; then
  echo "check-workflows: no workflow in .github/workflows" >&2
  exit 1
fi

status=0
"$actionlint" "${files[@]}" || {
  echo "check-workflows: actionlint found problems in the workflows above" >&2
  status=1
}

# run_scripts FILE: the text of FILE's run: steps, one line each: a one-line
# `run: cmd`, or the lines of a `run: |` block (those indented deeper than
# the run key).
run_scripts() {
  awk '
    function indent(s) { match(s, /^ */); return RLENGTH }
    block {
      if ($0 ~ /^[[:space:]]*$/ || indent($0) > key) { print; next }
      block = 0
    }
    /^[[:space:]]*(-[[:space:]]+)?run:[[:space:]]*[|>][-+0-9]*[[:space:]]*(#.*)?$/ {
      line = $0; sub(/-[[:space:]]+run:/, "  run:", line)
      key = indent(line); block = 1; next
    }
    /^[[:space:]]*(-[[:space:]]+)?run:/ { sub(/^[^:]*run:[[:space:]]*/, ""); print }
  ' "$1"
}

# The scripts a run: names: ./path (run as a program), and bash/sh path.
for wf in "${workflows[@]}"; do
  while read -r how path; do
    [ -n "$path" ] || continue
    if ! [ -f "$path" ]; then
      echo "check-workflows: $wf runs $path, which is not a file of the repository" >&2
      status=1
    elif [ "$how" = exec ] && ! [ -x "$path" ]; then
      echo "check-workflows: $wf runs $path, which is not executable (chmod +x $path, and git update-index --chmod=+x $path)" >&2
      status=1
    fi
  done < <(run_scripts "$wf" | grep -oE '(^|[[:space:];&|(`"'\''])(\./|(bash|sh)[[:space:]]+)[A-Za-z0-9._][A-Za-z0-9._/-]*' |
    sed -E 's/^[[:space:];&|(`"'\'']//; s/^\.\//exec /; s/^(bash|sh)[[:space:]]+(\.\/)?/source /' | sort -u)
done
exit $status
