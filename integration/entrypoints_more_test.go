package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// exampleSyntax is the frontend image examples/Patchfile names.
func exampleSyntax(t *testing.T) string {
	t.Helper()
	dt, err := os.ReadFile(filepath.Join(env.repoRoot, "examples", "Patchfile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`\A# syntax=(\S+)`).FindSubmatch(dt)
	require.NotNil(t, m, "examples/Patchfile starts with a # syntax= line")
	return string(m[1])
}

// TestBuildxEntryPoints: the other ways users pick the frontend with
// docker buildx, and the other outputs.
func TestBuildxEntryPoints(t *testing.T) {
	dir := filepath.Join(env.repoRoot, "examples")
	args := exampleArgs()

	t.Run("BUILDKIT_SYNTAX build arg", func(t *testing.T) {
		a := map[string]string{"BUILDKIT_SYNTAX": env.frontendTag}
		for k, v := range args {
			a[k] = v
		}
		ref := env.stack.Ref("entry/web", "syntax-arg")
		res, err := buildWithBuildx(t, build{dir: dir, args: a, output: ref, keepSyntax: true})
		require.NoError(t, err)
		require.Contains(t, filesystem(t, pullImage(t, ref+"@"+res.digest))["app/src/server.js"].Content, "shop web")
	})

	t.Run("named context replaces the syntax image (air-gapped CI)", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		_, err := runBuildx(t, build{dir: dir, args: args, keepSyntax: true},
			"--build-context", exampleSyntax(t)+"=docker-image://"+env.frontendImage,
			"--output", "type=local,dest="+out)
		require.NoError(t, err)
		dt, err := os.ReadFile(filepath.Join(out, "app", "src", "server.js"))
		require.NoError(t, err, "type=local writes the image's filesystem")
		require.Contains(t, string(dt), "shop web")
		_, err = os.Stat(filepath.Join(out, "app", "node_modules", "ms", "index.js"))
		require.NoError(t, err, "with the dependency stage's files")
	})

	t.Run("named context replaces the FROM image", func(t *testing.T) {
		// Another pinned image stands in for the base, as a mirror would.
		mirror := multiPlatformBase(t)
		ref := env.stack.Ref("entry/web", "from-context")
		res, err := runBuildx(t, build{dir: dir, args: args},
			"--build-context", env.base+"=docker-image://"+mirror,
			"--output", "type=image,push=true,name="+ref, "--metadata-file", filepath.Join(t.TempDir(), "meta.json"))
		require.NoError(t, err)
		require.Contains(t, string(res), "[base] "+mirror)
		img := pullImage(t, ref)
		_, mirrorDigest, _ := strings.Cut(mirror, "@")
		require.Equal(t, mirrorDigest, configOf(t, img).Config.Labels[decide.LabelBase], "the identity records the image actually used")

		unpinned := strings.Split(mirror, "@")[0]
		out, err := runBuildx(t, build{dir: dir, args: args}, "--build-context", env.base+"=docker-image://"+unpinned)
		require.Error(t, err)
		require.Contains(t, string(out), "is not pinned: write docker-image://"+unpinned+"@sha256:<digest>")
		require.Contains(t, string(out), ">>> FROM ${BASE}", "located at the FROM line")

		out, err = runBuildx(t, build{dir: dir, args: args}, "--build-context", env.base+"="+t.TempDir())
		require.Error(t, err)
		require.Contains(t, string(out), "cannot replace the base image: use docker-image://<image>@sha256:<digest>")
	})

	t.Run("oci output", func(t *testing.T) {
		tarball := filepath.Join(t.TempDir(), "image.tar")
		_, err := runBuildx(t, build{dir: dir, args: args}, "--output", "type=oci,dest="+tarball)
		require.NoError(t, err)
		st, err := os.Stat(tarball)
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(1<<20), "the OCI layout holds the image's layers")
	})
}
