package integration

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/stretchr/testify/require"
)

// TestColdDeployOfABuild deploys examples/typescript on a builder with an
// empty cache and no cache flag: the build stage's dependency install
// comes from the build cache the release pushed to <repository>:buildcache
// (no npm ci runs), tsc compiles the edit, and the deploy is the release
// plus one layer. Of the release, only its base layer is pulled (the build
// stage runs on the same node image); its runtime dependency and app
// layers are not. Pushed: the patch layer, its config and its manifest,
// and buildx's default provenance with its index.
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
	require.NotContains(t, res.output, "failed to configure registry cache importer", "a first release imports no build cache: there is none yet")
	require.True(t, stepRan(t, res.output, "[build 3/5] RUN"), "the first release has no build cache to take npm ci from")
	img := pullImage(t, release+"@"+res.digest)

	writeTree(t, dir, map[string]file{"src/greeting.ts": {content: "export function greeting(name: string): string {\n  return `hi from a cold builder, ${name}`;\n}\n"}})
	blobsBefore, err := env.stack.Blobs()
	require.NoError(t, err)
	patchRef := env.stack.Ref("cold-build/typescript", "patch")
	pres, wall, served := coldBuild(t, "cold-build", build{dir: dir, args: args, output: patchRef})
	blobsAfter, err := env.stack.Blobs()
	require.NoError(t, err)

	require.Contains(t, pres.output, "build cache: "+cache+", which releases push with --cache-to type=registry,ref="+cache+",mode=max")
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
	require.NotEmpty(t, attestationBlobs(t, patchRef+"@"+pres.digest), "buildx's default provenance, as users have it")
	pushed := withoutAttestations(t, newBlobs(blobsBefore, blobsAfter), patchRef+"@"+pres.digest)
	require.Len(t, pushed, 3, "the patch layer, its config and its manifest, besides the attestation: %v", keys(pushed))
	t.Logf("cold deploy of a build: %s; pulled %d bytes of release layers (the base), %d of frontend image, %d other (build cache layers, configs); pushed %d bytes",
		wall.Round(time.Millisecond), pulled.releaseLayers, pulled.frontend, pulled.other, sumSizes(pushed))
}

// coldResult is a build on a fresh daemon, which later builds of the test
// may use.
type coldResult struct {
	result
	daemon *stack.Daemon
}

// coldBuild builds b on a fresh daemon named name (stopped when the test
// ends), and returns its result, its wall time and the blobs the registry
// served meanwhile.
func coldBuild(t *testing.T, name string, b build) (coldResult, time.Duration, []stack.BlobTransfer) {
	t.Helper()
	d, err := env.stack.NewDaemon(context.Background(), name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Stop() })
	b.daemon = d
	logAt := env.stack.LogSize()
	start := time.Now()
	res, err := buildWithBuildx(t, b)
	wall := time.Since(start)
	require.NoError(t, err, res.output)
	served, err := env.stack.RegistryRequests(logAt)
	require.NoError(t, err)
	return coldResult{res, d}, wall, served
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

// compiled are the packages `go build -v` printed in a build step's
// output: those it compiled, not those it took from its build cache.
func compiled(t *testing.T, progress, prefix string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^#(\d+) ` + regexp.QuoteMeta(prefix)).FindStringSubmatch(progress)
	require.NotNil(t, m, "no step %q in the progress", prefix)
	var pkgs []string
	for _, l := range regexp.MustCompile(`(?m)^#`+m[1]+` \d+\.\d+ (\S+)$`).FindAllStringSubmatch(progress, -1) {
		pkgs = append(pkgs, l[1])
	}
	return pkgs
}

// TestColdDeployCarriesTheCompilerCache: examples/go-build carries Go's
// build cache (CARRY /root/.cache/go-build). A release on a fresh builder
// compiles every package and keeps the cache in its build cache; a change
// to Go code, deployed on another fresh builder with no cache flag, starts
// its cache mount from the release's and compiles only the packages that
// changed, and the image runs the change. A page edit after it, a patch,
// does not carry anything.
func TestColdDeployCarriesTheCompilerCache(t *testing.T) {
	goImg, err := goImage()
	require.NoError(t, err)
	dir := copyExample(t, "go-build")
	release := env.stack.Ref("carry/go-build", "release")
	cache := env.stack.Ref("carry/go-build", "buildcache")
	args := map[string]string{"GO": goImg, "BASE": env.base, "RELEASE": release}
	const buildStep = "[build 5/5] RUN --mount=type=cache,target=/root/.cache/go-build"

	first, err := env.stack.NewDaemon(context.Background(), "carry-release")
	require.NoError(t, err)
	defer first.Stop()
	res, err := buildWithBuildx(t, build{dir: dir, args: map[string]string{"GO": goImg, "BASE": env.base, "RELEASE": release, "PATCH": ""},
		output: release, daemon: first, flags: []string{"--cache-to", "type=registry,ref=" + cache + ",mode=max"}})
	require.NoError(t, err, res.output)
	all := compiled(t, res.output, buildStep)
	require.Contains(t, all, "golang.org/x/text/cases", "a fresh builder compiles the dependencies")
	require.Contains(t, all, "net/http", "and the standard library")
	require.Contains(t, res.output, "CARRY /root/.cache/go-build: keep the cache for the builds that patch this release")
	img := pullImage(t, release+"@"+res.digest)
	cfg, err := img.ConfigFile()
	require.NoError(t, err)
	require.Contains(t, cfg.Config.Labels[decide.LabelCarry], `"build /root/.cache/go-build":"sha256:`)

	// Go code edited, deployed on a builder that has never built it.
	greeting := readFile(t, filepath.Join(dir, "greeting/greeting.go"))
	writeTree(t, dir, map[string]file{"greeting/greeting.go": {content: strings.Replace(greeting, `"hello, "`, `"hi, "`, 1)}})
	v2 := env.stack.Ref("carry/go-build", "v2")
	dres, wall, served := coldBuild(t, "carry-deploy", build{dir: dir, args: args, output: v2})
	require.Contains(t, dres.output, "CARRY /root/.cache/go-build: the cache release "+shortDigestRef(release, res.digest)+" carried")
	require.False(t, stepRan(t, dres.output, "[build] CARRY /root/.cache/go-build: the cache release"), "the release's cache comes from its build cache")
	require.Regexp(t, `CARRY /root/.cache/go-build: copied \d{3,} files, \d+\.\d MB`, dres.output, "the build step fills its cache mount first")
	require.Equal(t, []string{"example.com/patchfile-go-build-example/greeting", "example.com/patchfile-go-build-example"}, compiled(t, dres.output, buildStep),
		"only the edited package and the one that imports it compile: %s", dres.output)
	require.Regexp(t, `full build: the change is \d+% of the app tree's bytes`, dres.output, "the binary is most of the app: a new release")
	require.NotContains(t, dres.output, "keep the cache for the builds that patch this release", "a deploy that is a full build is no release: later deploys patch the release, not it")
	require.Equal(t, "hi, Ada\nexit 0\n", runInImage(t, v2+"@"+dres.digest, "/app/server -hello ada"))
	v2cfg, err := pullImage(t, v2+"@"+dres.digest).ConfigFile()
	require.NoError(t, err)
	require.NotContains(t, v2cfg.Config.Labels, decide.LabelCarry, "it carries nothing, and says so")
	var cacheBytes int64
	for _, r := range served {
		if r.Method == "GET" && r.Repo == "carry/go-build" {
			cacheBytes += r.Bytes
		}
	}
	t.Logf("cold deploy of a Go change with the carried cache: %s, %d bytes of blobs pulled from the repository (the carried cache, the build's dependencies, configs)", wall.Round(time.Millisecond), cacheBytes)

	// The page edited instead: a patch, which carries nothing. (The binary
	// is the release's again: Go builds are reproducible.)
	writeTree(t, dir, map[string]file{"greeting/greeting.go": {content: greeting}, "web/index.html": {content: "<h1>edited</h1>\n"}})
	pres, err := buildWithBuildx(t, build{dir: dir, args: args, output: env.stack.Ref("carry/go-build", "patch"), daemon: dres.daemon})
	require.NoError(t, err, pres.output)
	require.Contains(t, pres.output, decide.PatchPrefix)
	require.NotContains(t, pres.output, "keep the cache for the builds that patch this release", "a patch is not a release: nothing to carry")
	patched := pullImage(t, env.stack.Ref("carry/go-build", "patch")+"@"+pres.digest)
	pcfg, err := patched.ConfigFile()
	require.NoError(t, err)
	require.NotContains(t, pcfg.Config.Labels, decide.LabelCarry)
}

// shortDigestRef is ref pinned by dgst as the progress shortens it.
func shortDigestRef(ref, dgst string) string {
	name := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name = ref[:i]
	}
	return name + "@sha256:" + strings.TrimPrefix(dgst, "sha256:")[:12] + "…"
}
