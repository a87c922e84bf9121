package integration

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/solver/errdefs"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/version"
	"github.com/stretchr/testify/require"
)

// exampleArgs are the build args that point examples/Patchfile at the stack.
func exampleArgs() map[string]string {
	return map[string]string{"BASE": env.base, "RELEASE": env.stack.Ref("example/none", "release")}
}

// TestExampleFullBuild builds examples/Patchfile through every entry point
// and checks the pushed image: layers, files, config and labels.
func TestExampleFullBuild(t *testing.T) {
	dir := filepath.Join(env.repoRoot, "examples")
	baseLayers := len(layers(t, pullImage(t, env.base)))
	var digests []string
	for _, ep := range entryPoints {
		t.Run(ep.name, func(t *testing.T) {
			ref := env.stack.Ref("example/full", ep.name)
			res, err := ep.build(t, build{dir: dir, args: exampleArgs(), output: ref})
			require.NoError(t, err)
			img := pullImage(t, ref+"@"+res.digest)
			// The image itself: buildx pushes an index with its provenance.
			digests = append(digests, digestOf(t, img))
			// In the client's process the frontend has no image; elsewhere
			// the example is under the small-tree bound (TestHashStepBound).
			require.NotContains(t, res.output, hashStepName, "a small app is read through the gateway")

			ls := layers(t, img)
			// base + WORKDIR + DEPS + RUN + the app layer
			require.Len(t, ls, baseLayers+4)

			app := layerEntries(t, ls[len(ls)-1])
			require.Equal(t, []string{"app", "app/.dockerignore", "app/package-lock.json", "app/package.json",
				"app/public", "app/public/index.html", "app/src", "app/src/routes.js", "app/src/server.js"}, names(app),
				"the app layer holds the context minus .dockerignore and --exclude=*.md, and nothing else")
			for _, e := range app {
				require.Equal(t, int64(946684800), e.ModTime, "%s has the pinned time", e.Name)
			}

			fs := filesystem(t, img)
			require.Contains(t, fs["app/src/server.js"].Content, "shop web listening")
			require.Equal(t, "module.exports = 'left-pad';\n", fs["app/node_modules/left-pad/index.js"].Content, "the dependency stage ran")
			require.Contains(t, fs, "app/node_modules/ms/index.js")
			require.NotContains(t, fs, "app/README.md")
			require.Contains(t, fs, "bin/busybox", "base layers are there")

			cfg := configOf(t, img).Config
			require.Contains(t, cfg.Env, "NODE_ENV=production")
			require.Equal(t, []string{"sh", "-c", "cat /app/src/server.js"}, cfg.Cmd)
			require.Equal(t, "1000:1000", cfg.User)
			require.Equal(t, "/app", cfg.WorkingDir)
			require.Contains(t, cfg.ExposedPorts, "8080/tcp")
			require.Equal(t, "shop web", cfg.Labels["org.opencontainers.image.title"])
			baseDigest := env.base[strings.Index(env.base, "@")+1:]
			require.Equal(t, baseDigest, cfg.Labels[decide.LabelBase])
			require.Regexp(t, `^sha256:[0-9a-f]{64}$`, cfg.Labels[decide.LabelDeps])
			require.Regexp(t, `^sha256:[0-9a-f]{64}$`, cfg.Labels[decide.LabelApp])
			require.Equal(t, version.Version, cfg.Labels[decide.LabelFrontend], "the image records the frontend version that built it")
			size := 0
			for k, v := range cfg.Labels {
				size += len(k) + len(v)
			}
			require.Less(t, size, 512, "labels stay small")

			hist := configOf(t, img).History
			nonEmpty := 0
			for _, h := range hist {
				if !h.EmptyLayer {
					nonEmpty++
				}
			}
			require.Equal(t, len(ls), nonEmpty, "history matches the layers")
		})
	}
	require.Len(t, digests, len(entryPoints))
	for _, d := range digests[1:] {
		require.Equal(t, digests[0], d, fmt.Sprintf("every entry point gives the same image: %v", digests))
	}
}

// TestExampleChecksClean: the flagship example passes its own check, so
// that CI can keep `--call=check` on; `# check=skip=` silences a rule as
// for a Dockerfile.
func TestExampleChecksClean(t *testing.T) {
	dir := filepath.Join(env.repoRoot, "examples")
	out, err := runBuildx(t, build{dir: dir, args: exampleArgs()}, "--call=check")
	require.NoError(t, err, "docker buildx build --call=check finds nothing: %s", out)
	require.NotContains(t, string(out), "WARNING")

	ctx := shipsNodeModules(t, "# check=skip=AppShipsDependencies")
	out, err = runBuildx(t, build{dir: ctx, args: map[string]string{"BASE": env.base}}, "--call=check")
	require.NoError(t, err, "the skipped rule is not reported: %s", out)
	out, err = runBuildx(t, build{dir: ctx, args: map[string]string{"BASE": env.base, "BUILDKIT_DOCKERFILE_CHECK": "skip=UnpinnedFrom"}}, "--call=check")
	require.Error(t, err, "the build arg wins over the line")
	require.Contains(t, string(out), "AppShipsDependencies")
}

// TestChecksAsErrors: `# check=error=true` makes a finding fail the build
// at its line before any step runs, as for a Dockerfile.
func TestChecksAsErrors(t *testing.T) {
	ctx := shipsNodeModules(t, "# check=error=true")
	_, err := buildInProcess(t, build{dir: ctx, args: fullArgs(), output: env.stack.Ref("checkerror/app", "x")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "check=error=true: AppShipsDependencies: APP ships node_modules/ from the build context")
	srcs := errdefs.Sources(err)
	require.NotEmpty(t, srcs, "the error carries the Patchfile as its source")
	require.EqualValues(t, 4, srcs[0].Ranges[0].Start.Line, "the APP line")

	require.NoError(t, os.WriteFile(filepath.Join(ctx, ".dockerignore"), []byte("*.log\nnode_modules\n"), 0o644))
	_, err = buildInProcess(t, build{dir: ctx, args: fullArgs(), output: env.stack.Ref("checkerror/app", "y")})
	require.NoError(t, err, "nothing to find: it builds")
}

// shipsNodeModules is a context whose APP ships node_modules (the one
// finding of the checks: its .dockerignore excludes something), its
// Patchfile starting with directive.
func shipsNodeModules(t *testing.T, directive string) string {
	t.Helper()
	ctx := t.TempDir()
	writeTree(t, ctx, map[string]file{
		"Patchfile":           {content: directive + "\nARG BASE\nFROM ${BASE}\nAPP . /app\nPATCH example.com/app:release\n"},
		"node_modules/x/y.js": {content: "y\n"},
		".dockerignore":       {content: "*.log\n"},
		"x.log":               {content: "x\n"},
	})
	return ctx
}

// TestHashStepBound: the frontend hashes a tree in a build step of its own
// image when it is over the small-tree bound (256 entries), and reads a
// smaller one through the gateway, unless PATCH_HASH_STEP=always; the
// image is the same either way.
func TestHashStepBound(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	small, err := buildWithBuildx(t, build{dir: dir, args: exampleArgs(), output: env.stack.Ref("hash-bound/small", "auto")})
	require.NoError(t, err)
	require.NotContains(t, small.output, hashStepName)
	always, err := buildWithBuildx(t, build{dir: dir, args: withArgs(exampleArgs(), map[string]string{"PATCH_HASH_STEP": "always"}), output: env.stack.Ref("hash-bound/small", "always")})
	require.NoError(t, err)
	require.Contains(t, always.output, hashStepName)
	require.Equal(t, digestOf(t, pullImage(t, env.stack.Ref("hash-bound/small", "auto")+"@"+small.digest)),
		digestOf(t, pullImage(t, env.stack.Ref("hash-bound/small", "always")+"@"+always.digest)), "the same image, whichever way the files were read")

	files := map[string]file{}
	for i := range 300 {
		files[fmt.Sprintf("public/pages/p%03d.html", i)] = file{content: fmt.Sprintf("<p>%d</p>\n", i)}
	}
	writeTree(t, dir, files)
	large, err := buildWithBuildx(t, build{dir: dir, args: exampleArgs(), output: env.stack.Ref("hash-bound/large", "auto")})
	require.NoError(t, err)
	require.Contains(t, large.output, hashStepName, "over 256 entries: hashed in a build step")
	require.Equal(t, "<p>299</p>\n", filesystem(t, pullImage(t, env.stack.Ref("hash-bound/large", "auto")+"@"+large.digest))["app/public/pages/p299.html"].Content)
}

// withArgs is args plus extra, in a new map.
func withArgs(args, extra map[string]string) map[string]string {
	out := maps.Clone(args)
	maps.Copy(out, extra)
	return out
}

// TestHashStepFollowsTheImage: the hashing step runs the binary the
// frontend image's config names, wherever the image has it; where the
// image cannot hash (here, a busybox image standing in for a broken one),
// the files are read through the gateway and the build warns, naming why.
func TestHashStepFollowsTheImage(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	args := withArgs(exampleArgs(), map[string]string{"PATCH_HASH_STEP": "always"})
	elsewhere, err := env.stack.PushFrontendAt(context.Background(), env.warm, env.repoRoot, env.stack.Ref("patchfile", "elsewhere"), "/usr/local/bin/pf")
	require.NoError(t, err)
	res, err := buildWithBuildctl(t, build{dir: dir, args: args, output: env.stack.Ref("hash-image/elsewhere", "x"), frontendImage: elsewhere})
	require.NoError(t, err)
	require.Contains(t, res.output, hashStepName, "the image's own entrypoint hashes")
	require.NotContains(t, res.output, "could not hash")
	want := filesystem(t, pullImage(t, env.stack.Ref("hash-image/elsewhere", "x")+"@"+res.digest))

	res, err = buildInProcess(t, build{dir: dir, args: args, output: env.stack.Ref("hash-image/broken", "x"), frontendImage: env.base, hashInBuilder: true})
	require.NoError(t, err)
	require.Contains(t, res.output, "warning the frontend's image could not hash the files in a build step with sh (")
	require.Contains(t, res.output, "they are read through the gateway instead")
	requireSameFilesystem(t, want, filesystem(t, pullImage(t, env.stack.Ref("hash-image/broken", "x")+"@"+res.digest)))
}
