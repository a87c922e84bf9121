package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchfile/patchfile/frontend"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/stretchr/testify/require"
)

// TestDockerEngine builds through `docker buildx build --builder default`
// (and `docker build`) on the two Docker Engines people have: one on the
// overlay2 graphdriver, whose BuildKit has no MergeOp or DiffOp, and one
// with the containerd image store. On each: a release, a patch of the
// change set of TestPatchBuild (the release's layers plus exactly one
// layer holding only the changes, equal to a full build by the standalone
// BuildKit), pushed and loaded, the patched image run, --call=check, and a
// bad Patchfile's located error.
func TestDockerEngine(t *testing.T) {
	for _, tc := range []struct {
		name            string
		containerdStore bool
		// patchCost is what the patch's progress line adds.
		patchCost string
	}{
		{name: "overlay2", patchCost: "(this builder has no MergeOp: the release's layers are read)"},
		{name: "containerd-store", containerdStore: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			eng, err := env.stack.StartEngine(ctx, tc.name, tc.containerdStore)
			require.NoError(t, err)
			defer eng.Stop() //nolint:errcheck
			testEngine(t, ctx, eng, tc.patchCost)
		})
	}
}

func testEngine(t *testing.T, ctx context.Context, eng *stack.Engine, patchCost string) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	dir = withSyntaxLine(t, dir, "Patchfile", env.frontendTag)
	repo := "engine/" + eng.Name
	releaseRef := env.stack.Ref(repo, "release")
	docker := func(args ...string) (string, error) {
		cmd := eng.Command(ctx, args...)
		cmd.Env = append(cmd.Env, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	build := func(args map[string]string, flags ...string) (string, error) {
		cmdArgs := append([]string{"buildx", "build", "--builder", "default", "--progress=plain", "-f", filepath.Join(dir, "Patchfile")}, flags...)
		for k, v := range args {
			cmdArgs = append(cmdArgs, "--build-arg", k+"="+v)
		}
		return docker(append(cmdArgs, dir)...)
	}
	digestOf := func(ref string) string {
		img := pullImage(t, ref)
		d, err := img.Digest()
		require.NoError(t, err)
		return d.String()
	}

	// The release, by `docker build` (buildx on Docker 28) and --push.
	out, err := docker("build", "--progress=plain", "-f", filepath.Join(dir, "Patchfile"), "--push", "-t", releaseRef,
		"--build-arg", "BASE="+env.base, "--build-arg", "RELEASE="+releaseRef, "--build-arg", "PATCH_MAX_SHARE=0", dir)
	require.NoError(t, err)
	require.Contains(t, out, "full build:")
	releaseDigest := digestOf(releaseRef)
	release := pullImage(t, releaseRef+"@"+releaseDigest)
	releaseLayers := layers(t, release)

	// The patch, pushed: the release's layers and one layer of the changes.
	applyChangeSet(t, dir)
	patchRef := env.stack.Ref(repo, "patch1")
	out, err = build(patchArgs(releaseRef), "--output", "type=image,name="+patchRef+",push=true")
	require.NoError(t, err)
	require.Contains(t, out, "patch of release "+releaseDigest+": 9 changed, 3 deleted")
	if patchCost != "" {
		require.Contains(t, out, patchCost)
	} else {
		require.NotContains(t, out, "the release's layers are read")
	}
	patched := pullImage(t, patchRef+"@"+digestOf(patchRef))
	patchedLayers := layers(t, patched)
	require.Len(t, patchedLayers, len(releaseLayers)+1, "release layers plus exactly one")
	for i := range releaseLayers {
		d1, _ := releaseLayers[i].Digest()
		d2, _ := patchedLayers[i].Digest()
		require.Equal(t, d1, d2, "layer %d is the release's own", i)
	}
	top := layerEntries(t, patchedLayers[len(patchedLayers)-1])
	require.Equal(t, changeSetLayer, names(top), "the patch layer holds the changes, whiteouts and their parents, nothing else")
	require.Equal(t, "console.log('A');\n", top["app/src/a.js"].Content)
	require.Equal(t, releaseDigest, configOf(t, patched).Config.Labels[frontend.LabelRelease])

	// Equal to a full build of the same inputs on the standalone BuildKit.
	res, err := buildInProcess(t, stackBuild(dir, fullArgs(), env.stack.Ref(repo, "full")))
	require.NoError(t, err)
	requireSameFilesystem(t, withoutDepsTimes(filesystem(t, pullImage(t, env.stack.Ref(repo, "full")+"@"+res.digest))), withoutDepsTimes(filesystem(t, patched)))

	// --load into the engine, and run the patched image.
	loaded := "patchfile-engine-test:" + eng.Name
	_, err = build(patchArgs(releaseRef), "--load", "-t", loaded)
	require.NoError(t, err)
	out, err = docker("run", "--rm", "--network=none", loaded, "cat", "/app/src/a.js", "/app/src/new/deep/c.js")
	require.NoError(t, err)
	require.Equal(t, "console.log('A');\nconsole.log('c');\n", out)

	// --call=check lints without building: this Patchfile's APP ships
	// deps.txt, which the check names (and exits 1 for, as buildx does for
	// any warning).
	out, err = build(patchArgs(releaseRef), "--call=check")
	require.Error(t, err, "a check that warns exits non-zero")
	require.Contains(t, out, "AppShipsDependencies")
	require.Contains(t, out, "APP ships deps.txt")

	// A bad Patchfile: the error names its line.
	bad := t.TempDir()
	writeTree(t, bad, map[string]file{"Patchfile": {content: "FROM busybox:latest\nAPP . /app\n"}, "a.txt": {content: "a\n"}})
	bad = withSyntaxLine(t, bad, "Patchfile", env.frontendTag)
	cmd := eng.Command(ctx, "buildx", "build", "--builder", "default", "--progress=plain", "-f", filepath.Join(bad, "Patchfile"), bad)
	outB, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(outB), "Patchfile:2")
	require.Contains(t, string(outB), "is not pinned")
}

// stackBuild is a build on the standalone BuildKit (env.warm).
func stackBuild(dir string, args map[string]string, output string) build {
	return build{dir: dir, args: args, output: output}
}

// withoutDepsTimes leaves out what the dependency stage wrote under /app:
// it ran on another builder, at another time (built-at).
func withoutDepsTimes(fs map[string]entry) map[string]entry {
	for n := range fs {
		if n == "app/node_modules" || strings.HasPrefix(n, "app/node_modules/") {
			delete(fs, n)
		}
	}
	return fs
}
