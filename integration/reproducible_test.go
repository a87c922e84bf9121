package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// TestReproducible builds the same inputs on two cold builders: the full
// build (SOURCE_DATE_EPOCH plus rewrite-timestamp, which RUN outputs need)
// and the patch (nothing needed) give the same manifest digests, and the
// base image's layers are never rewritten.
func TestReproducible(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	releaseRef := env.stack.Ref("repro/web", "release")
	fullArgs := map[string]string{"BASE": env.base, "PATCH": "", "SOURCE_DATE_EPOCH": "1700000000"}
	patchArgs := map[string]string{"BASE": env.base, "RELEASE": releaseRef}
	rewrite := map[string]string{"rewrite-timestamp": "true"}

	var fullDigests, patchDigests []string
	for _, name := range []string{"repro-a", "repro-b"} {
		d, err := env.stack.NewDaemon(context.Background(), name)
		require.NoError(t, err)
		defer d.Stop()
		res, err := buildInProcess(t, build{dir: dir, args: fullArgs, output: releaseRef, daemon: d, exporterAttrs: rewrite})
		require.NoError(t, err)
		fullDigests = append(fullDigests, res.digest)
	}
	require.Equal(t, fullDigests[0], fullDigests[1], "two cold builders, same full-build digest")
	release := pullImage(t, releaseRef+"@"+fullDigests[0])
	base := pullImage(t, env.base)
	baseLayers, releaseLayers := layers(t, base), layers(t, release)
	for i := range baseLayers {
		want, _ := baseLayers[i].Digest()
		got, _ := releaseLayers[i].Digest()
		require.Equal(t, want, got, "rewrite-timestamp leaves the base layers alone")
	}

	// One change, then the same patch on two more cold builders.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "public/index.html"), []byte("<!doctype html><title>shop</title><h1>Shop!</h1>\n"), 0o644))
	for _, name := range []string{"repro-c", "repro-d"} {
		d, err := env.stack.NewDaemon(context.Background(), name)
		require.NoError(t, err)
		defer d.Stop()
		res, err := buildInProcess(t, build{dir: dir, args: patchArgs, output: env.stack.Ref("repro/web", name), daemon: d})
		require.NoError(t, err)
		require.Contains(t, res.output, decide.PatchPrefix+fullDigests[0])
		patchDigests = append(patchDigests, res.digest)
	}
	require.Equal(t, patchDigests[0], patchDigests[1], "two cold builders, same patch digest")
}
