package integration

import (
	"testing"

	"github.com/patchfile/patchfile/version"
	"github.com/stretchr/testify/require"
)

// TestBuildxCallCheck: `docker buildx build --call=check` prints located
// findings for a Patchfile with problems, without building.
func TestBuildxCallCheck(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile": {content: `ARG BASE=busybox:1.36
FROM ${BASE}
WORKDIR /app
DEPS package.json package-lock.json
APP . /app
`},
		"package.json":               {content: "{}\n"},
		"node_modules/left-pad/x.js": {content: "x\n"},
		"src/server.js":              {content: "s\n"},
	})
	out, err := runBuildx(t, build{dir: dir}, "--call=check")
	require.Error(t, err, "findings make --call=check exit non-zero")
	for _, want := range []string{
		"WARNING: UnpinnedFrom", "FROM busybox:1.36 is not pinned",
		"WARNING: DepsMatchNoFile", "DEPS package-lock.json matches no file",
		" >>> DEPS package.json package-lock.json",
		"WARNING: AppShipsDependencies", "APP ships node_modules/",
		"WARNING: PatchWithoutCandidate",
	} {
		require.Contains(t, string(out), want)
	}

	out, err = runBuildx(t, build{dir: dir}, "--call=outline")
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "BASE")
	require.Contains(t, string(out), "busybox:1.36")
	require.Contains(t, string(out), "PATCH")
	require.Contains(t, string(out), "built by "+version.String(), "the outline names the frontend's version")
}
