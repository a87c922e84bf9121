package integration

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// TestColdDeployOfABuild deploys examples/typescript on a builder with an
// empty cache and no cache flag: the build stage's dependency install
// comes from the build cache the release pushed to <repository>:buildcache
// (no npm ci runs), tsc compiles the edit, and the deploy is the release
// plus one layer. Of the release, only its base layer is pulled (the build
// stage runs on the same node image); its runtime dependency and app
// layers are not. Pushed: the patch layer, its config and its manifest.
func TestColdDeployOfABuild(t *testing.T) {
	base, err := nodeBase()
	require.NoError(t, err)
	dir := copyExample(t, "typescript")
	release := env.stack.Ref("cold-build/typescript", "release")
	cache := env.stack.Ref("cold-build/typescript", "buildcache")
	args := map[string]string{"BASE": base, "RELEASE": release}

	relArgs := map[string]string{"BASE": base, "RELEASE": release, "PATCH_MAX_SHARE": "0"}
	res, err := buildWithBuildx(t, build{dir: dir, args: relArgs, output: release,
		flags: []string{"--cache-to", "type=registry,ref=" + cache + ",mode=max"}})
	require.NoError(t, err, res.output)
	require.Contains(t, res.output, "build cache: "+cache+", which releases push with --cache-to type=registry,ref="+cache+",mode=max")
	require.True(t, stepRan(t, res.output, "[build 3/5] RUN"), "the first release has no build cache to take npm ci from")
	img := pullImage(t, release+"@"+res.digest)

	writeTree(t, dir, map[string]file{"src/greeting.ts": {content: "export function greeting(name: string): string {\n  return `hi from a cold builder, ${name}`;\n}\n"}})
	cold, err := env.stack.NewDaemon(context.Background(), "cold-build")
	require.NoError(t, err)
	defer cold.Stop()
	blobsBefore, err := env.stack.Blobs()
	require.NoError(t, err)
	logAt := env.stack.LogSize()
	patchRef := env.stack.Ref("cold-build/typescript", "patch")
	start := time.Now()
	pres, err := buildWithBuildx(t, build{dir: dir, args: args, output: patchRef, daemon: cold})
	wall := time.Since(start)
	require.NoError(t, err, pres.output)
	served, err := env.stack.RegistryRequests(logAt)
	require.NoError(t, err)
	blobsAfter, err := env.stack.Blobs()
	require.NoError(t, err)

	require.Contains(t, pres.output, "build cache: "+cache)
	require.Contains(t, pres.output, decide.PatchPrefix+res.digest+": 1 changed, 0 deleted")
	require.False(t, stepRan(t, pres.output, "[build 3/5] RUN"), "the build's npm ci comes from the release's build cache: %s", pres.output)
	require.Contains(t, pres.output, "RUN npx tsc -p .")
	require.NotContains(t, pres.output, "npm ci --omit=dev", "the runtime dependencies are the release's")
	patched := pullImage(t, patchRef+"@"+pres.digest)
	requirePatchOf(t, img, res.digest, patched, []string{"app", "app/dist", "app/dist/greeting.js"})

	releaseLayers := layerList(t, img)
	pulled := classifyPulls(t, served, img)
	for _, d := range pulled.releaseLayerDigests {
		require.Equal(t, releaseLayers[0], d, "of the release, only the base the build stage runs on is pulled")
	}
	pushed := newBlobs(blobsBefore, blobsAfter)
	require.Len(t, pushed, 3, "the patch layer, its config and its manifest: %v", keys(pushed))
	t.Logf("cold deploy of a build: %s; pulled %d bytes of release layers (the base), %d of frontend image, %d other (build cache layers, configs); pushed %d bytes",
		wall.Round(time.Millisecond), pulled.releaseLayers, pulled.frontend, pulled.other, sumSizes(pushed))
}

// stepRan tells whether a step of buildx's plain progress ran its command:
// whether the first step whose name starts with prefix printed a line of
// output ("#12 0.981 added 5 packages"), as a step from the cache (CACHED,
// or its layers pulled from a registry cache) does not.
func stepRan(t *testing.T, progress, prefix string) bool {
	t.Helper()
	m := regexp.MustCompile(`(?m)^#(\d+) ` + regexp.QuoteMeta(prefix)).FindStringSubmatch(progress)
	require.NotNil(t, m, "no step %q in the progress", prefix)
	return regexp.MustCompile(`(?m)^#` + m[1] + ` \d+\.\d+ `).MatchString(progress)
}
