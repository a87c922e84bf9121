package integration

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/patchfile/patchfile/frontend/decide"
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
		// One manifest per push, on both engines (the overlay2 engine's
		// builder makes no attestations), so that the tests compare the
		// two; engineSBOM asks for attestations on each.
		cmd.Env = append(cmd.Env, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	buildIn := func(dir string, args map[string]string, flags ...string) (string, error) {
		cmdArgs := append([]string{"buildx", "build", "--builder", "default", "--progress=plain", "-f", filepath.Join(dir, "Patchfile")}, flags...)
		for k, v := range args {
			cmdArgs = append(cmdArgs, "--build-arg", k+"="+v)
		}
		return docker(append(cmdArgs, dir)...)
	}
	build := func(args map[string]string, flags ...string) (string, error) {
		return buildIn(dir, args, flags...)
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
	require.Contains(t, out, decide.FullBuildPrefix)
	releaseDigest := digestOf(releaseRef)
	release := pullImage(t, releaseRef+"@"+releaseDigest)
	releaseLayers := layers(t, release)

	// The patch, pushed: the release's layers and one layer of the changes.
	applyChangeSet(t, dir)
	patchRef := env.stack.Ref(repo, "patch1")
	out, err = build(patchArgs(releaseRef), "--output", "type=image,name="+patchRef+",push=true")
	require.NoError(t, err)
	require.Contains(t, out, decide.PatchPrefix+releaseDigest+": 9 changed, 3 deleted")
	if patchCost != "" {
		require.Contains(t, out, patchCost)
	} else {
		require.NotContains(t, out, "the release's layers are read")
	}
	patched := pullImage(t, patchRef+"@"+digestOf(patchRef))
	requireChangeSetPatch(t, releaseLayers, patched)
	require.Equal(t, releaseDigest, configOf(t, patched).Config.Labels[decide.LabelRelease])

	// Equal to a full build of the same inputs on the standalone BuildKit.
	res, err := buildInProcess(t, stackBuild(dir, fullArgs(), env.stack.Ref(repo, "full")))
	require.NoError(t, err)
	requireSameFilesystem(t, withoutDepsTimes(filesystem(t, pullImage(t, env.stack.Ref(repo, "full")+"@"+res.digest))), withoutDepsTimes(filesystem(t, patched)))

	// The same deploy as users run it, with buildx's default attestations
	// on: the containerd store pushes an index with the provenance, the
	// overlay2 store (whose builder makes no attestations) the manifest.
	defaultsRef := env.stack.Ref(repo, "defaults")
	cmdArgs := []string{"buildx", "build", "--builder", "default", "--progress=plain", "-f", filepath.Join(dir, "Patchfile"),
		"--output", "type=image,name=" + defaultsRef + ",push=true"}
	for k, v := range patchArgs(releaseRef) {
		cmdArgs = append(cmdArgs, "--build-arg", k+"="+v)
	}
	outD, err := eng.Command(ctx, append(cmdArgs, dir)...).CombinedOutput()
	require.NoError(t, err, "%s", outD)
	require.Contains(t, string(outD), decide.PatchPrefix+releaseDigest+": 9 changed, 3 deleted")
	defaultsDigest := tagDigest(t, defaultsRef)
	require.Equal(t, eng.ContainerdStore, len(attestationBlobs(t, defaultsRef+"@"+defaultsDigest)) > 0, "an index with the provenance on the containerd store only")
	requireChangeSetPatch(t, releaseLayers, pullImage(t, defaultsRef+"@"+defaultsDigest))

	// The same patch on a cold engine of the same kind: what it pulls and
	// pushes, read from the registry (bytes asserted, time logged).
	coldPatch(t, ctx, eng, dir, releaseRef, release)

	// --load into the engine, and run the patched image.
	loaded := "patchfile-engine-test:" + eng.Name
	_, err = build(patchArgs(releaseRef), "--load", "-t", loaded)
	require.NoError(t, err)
	out, err = docker("run", "--rm", "--network=none", loaded, "cat", "/app/src/a.js", "/app/src/new/deep/c.js")
	require.NoError(t, err)
	require.Equal(t, "console.log('A');\nconsole.log('c');\n", out)

	// --call=check lints without building, on the engine's builder too:
	// this Patchfile is clean, so the check passes (CI can keep it on);
	// with an unpinned base it warns, and exits 1, as buildx does for any
	// warning.
	out, err = build(patchArgs(releaseRef), "--call=check")
	require.NoError(t, err, "a clean Patchfile checks clean: %s", out)
	require.NotContains(t, out, "WARNING")
	out, err = build(map[string]string{"BASE": "busybox:1.36", "RELEASE": releaseRef}, "--call=check")
	require.Error(t, err, "a check that warns exits non-zero")
	require.Contains(t, out, "UnpinnedFrom")

	if patchCost != "" {
		// Asked for MergeOp where there is none: the APP line, the way out.
		out, err = build(mergeDiffArgs(patchArgs(releaseRef)), "--output", "type=image,name="+env.stack.Ref(repo, "mergediff")+",push=true")
		require.Error(t, err)
		require.Contains(t, out, "Patchfile:8")
		require.Contains(t, out, "this builder cannot build Patchfiles: it lacks MergeOp (disabled: only enabled with containerd image store backend)")
		require.Contains(t, out, "docker buildx create --driver docker-container --use")
	}

	engineBuildStage(t, eng, repo, buildIn)
	engineBundle(t, eng, repo, buildIn)
	engineCarry(t, eng, repo, buildIn)
	engineSBOM(t, eng, repo, buildIn)

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

// engineBuildStage releases and deploys examples/typescript (tsc in a build
// stage) with build, on the engine's default builder: the deploy is the
// release plus one layer holding the one file tsc wrote for the edit. The
// test engines' bridges forward nothing (StartEngine), so the npm installs
// reach the registry with --network=host, which the engine's builder
// allows.
func engineBuildStage(t *testing.T, eng *stack.Engine, repo string, build func(dir string, args map[string]string, flags ...string) (string, error)) {
	base, err := nodeBase()
	require.NoError(t, err)
	dir := withSyntaxLine(t, copyExample(t, "typescript"), "Patchfile", env.frontendTag)
	release := env.stack.Ref(repo+"-typescript", "release")
	out, err := build(dir, map[string]string{"BASE": base, "PATCH": ""}, "--network=host", "--output", "type=image,name="+release+",push=true")
	require.NoError(t, err)
	require.Contains(t, out, "RUN npx tsc -p .")
	releaseDigest := tagDigest(t, release)
	img := pullImage(t, release+"@"+releaseDigest)

	writeTree(t, dir, map[string]file{"src/greeting.ts": {content: "export function greeting(name: string): string {\n  return `hi, ${name}`;\n}\n"}})
	patchRef := env.stack.Ref(repo+"-typescript", "patch")
	out, err = build(dir, map[string]string{"BASE": base, "RELEASE": release}, "--network=host", "--output", "type=image,name="+patchRef+",push=true")
	require.NoError(t, err)
	require.Contains(t, out, decide.PatchPrefix+releaseDigest+": 1 changed, 0 deleted", "on %s", eng.Name)
	patched := pullImage(t, patchRef+"@"+tagDigest(t, patchRef))
	requirePatchOf(t, img, releaseDigest, patched, []string{"app", "app/dist", "app/dist/greeting.js"})
	require.Contains(t, filesystem(t, patched)["app/dist/greeting.js"].Content, "hi, ")
}

// engineBundle releases and deploys examples/spa (esbuild in a build stage
// on the Node.js image, the bundle on busybox) with the engine's default
// builder: an edit of one module is a patch of the chunks it changed and
// the page that names them, and the server serves it.
func engineBundle(t *testing.T, eng *stack.Engine, repo string, build func(dir string, args map[string]string, flags ...string) (string, error)) {
	node, err := nodeBase()
	require.NoError(t, err)
	dir := withSyntaxLine(t, copyExample(t, "spa"), "Patchfile", env.frontendTag)
	release := env.stack.Ref(repo+"-spa", "release")
	args := map[string]string{"NODE": node, "BASE": env.base, "RELEASE": release}
	_, err = build(dir, withArgs(args, map[string]string{"PATCH": ""}), "--network=host", "--output", "type=image,name="+release+",push=true")
	require.NoError(t, err)
	releaseDigest := tagDigest(t, release)

	writeTree(t, dir, map[string]file{"src/greeting.js": {content: "export function greeting(name) {\n  return `hi from the engine, ${name}`;\n}\n"}})
	patchRef := env.stack.Ref(repo+"-spa", "patch")
	out, err := build(dir, args, "--network=host", "--output", "type=image,name="+patchRef+",push=true")
	require.NoError(t, err)
	require.Contains(t, out, decide.PatchPrefix+releaseDigest+": 3 changed, 2 deleted", "on %s: the page and two new chunks; the old chunks go", eng.Name)
	patched := pullImage(t, patchRef+"@"+tagDigest(t, patchRef))
	var greeting string
	for n := range filesystem(t, patched) {
		if strings.HasPrefix(n, "srv/www/assets/greeting-") {
			greeting = strings.TrimPrefix(n, "srv/www/assets/")
		}
	}
	require.NotEmpty(t, greeting)
	require.Contains(t, runInImage(t, patchRef+"@"+tagDigest(t, patchRef), "httpd -p 127.0.0.1:18082 -h /srv/www && wget -q -O - http://127.0.0.1:18082/assets/"+greeting), "hi from the engine, ")
}

// engineCarry releases examples/go-build on the engine's default builder
// and builds a change to its Go code (a new release): the build starts
// its cache mount from the cache the release carried (CARRY), found in
// the engine's own cache, and compiles only the edited package and its
// importer.
func engineCarry(t *testing.T, eng *stack.Engine, repo string, build func(dir string, args map[string]string, flags ...string) (string, error)) {
	goImg, err := goImage()
	require.NoError(t, err)
	dir := withSyntaxLine(t, copyExample(t, "go-build"), "Patchfile", env.frontendTag)
	release := env.stack.Ref(repo+"-go-build", "release")
	args := map[string]string{"GO": goImg, "BASE": env.base, "RELEASE": release}
	out, err := build(dir, withArgs(args, map[string]string{"PATCH": ""}), "--network=host", "--output", "type=image,name="+release+",push=true")
	require.NoError(t, err)
	require.Contains(t, out, "CARRY /root/.cache/go-build: keep the cache for the builds that patch this release")

	writeTree(t, dir, map[string]file{"greeting/greeting.go": {content: strings.Replace(readFile(t, filepath.Join(dir, "greeting/greeting.go")), `"hello, "`, `"hi, "`, 1)}})
	v2 := env.stack.Ref(repo+"-go-build", "v2")
	out, err = build(dir, args, "--network=host", "--output", "type=image,name="+v2+",push=true")
	require.NoError(t, err)
	require.Regexp(t, `CARRY /root/.cache/go-build: copied \d+ files, [\d.]+ MB`, out, "on %s", eng.Name)
	require.Equal(t, []string{"example.com/patchfile-go-build-example/greeting", "example.com/patchfile-go-build-example"},
		compiled(t, out, "[build 5/5] RUN --mount=type=cache,target=/root/.cache/go-build"))
	require.Equal(t, "hi, Ada\nexit 0\n", runInImage(t, v2+"@"+tagDigest(t, v2), "/app/server -hello ada"))
}

// engineSBOM asks the engine's default builder for an SBOM and a mode=max
// provenance. On the overlay2 engine buildx refuses before the frontend
// runs and names the way out; on the containerd store a release carries
// them, and so does a patch, whose SBOM lists the new package: this
// builder cannot read a release's attestations, so the patched image is
// scanned whole (its layers are local to the engine, which built the
// release), and the step says why.
func engineSBOM(t *testing.T, eng *stack.Engine, repo string, build func(dir string, args map[string]string, flags ...string) (string, error)) {
	scanner := sbomScanner(t)
	flags := []string{"--attest", "type=sbom,generator=" + scanner, "--provenance=mode=max"}
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{"Patchfile": {content: sbomPatchfile}, "package.json": {content: `{"name":"shop","version":"1.0.0"}`},
		"src/index.js": {content: "module.exports = 1;\n"}})
	dir = withSyntaxLine(t, dir, "Patchfile", env.frontendTag)
	release := env.stack.Ref(repo+"-sbom", "release")
	args := map[string]string{"BASE": env.base, "RELEASE": release}
	out, err := build(dir, args, append(flags, "--output", "type=image,name="+release+",push=true")...)
	if !eng.ContainerdStore {
		require.Error(t, err)
		require.Contains(t, out, "Attestation is not supported for the docker driver")
		require.Contains(t, out, "turn on the containerd image store")
		return
	}
	require.NoError(t, err)
	relDigest := tagDigest(t, release)
	require.Equal(t, []string{"left-pad@1.3.0", "lodash@4.17.21", "shop@1.0.0"}, imageSBOM(t, release+"@"+relDigest).Packages())

	writeTree(t, dir, map[string]file{"vendor/tiny/package.json": {content: `{"name":"tiny","version":"0.1.0"}`}})
	patch := env.stack.Ref(repo+"-sbom", "patch")
	out, err = build(dir, args, append(flags, "--output", "type=image,name="+patch+",push=true")...)
	require.NoError(t, err)
	require.Contains(t, out, decide.PatchPrefix+relDigest)
	require.Contains(t, out, "[sbom] scanning the whole image, as this builder cannot read a release's attestations")
	require.Equal(t, []string{"left-pad@1.3.0", "lodash@4.17.21", "shop@1.0.0", "tiny@0.1.0"}, imageSBOM(t, patch+"@"+tagDigest(t, patch)).Packages())
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

// mergeDiffArgs are args with PATCH_PLAN=mergediff.
func mergeDiffArgs(args map[string]string) map[string]string {
	out := maps.Clone(args)
	out["PATCH_PLAN"] = "mergediff"
	return out
}

// coldPatch builds the patch on a fresh engine like eng (nothing pulled yet,
// not even the frontend image) and pushes it, with store=false on a
// containerd-store engine (the push-only deploy of the README's Builders
// table). A graphdriver engine reads the release's layers (the fileops
// plan); a containerd-store engine pulls none. Either pushes the patch
// layer, its config and its manifest, nothing else.
func coldPatch(t *testing.T, ctx context.Context, eng *stack.Engine, dir, releaseRef string, release v1.Image) {
	t.Helper()
	cold, err := env.stack.StartEngine(ctx, eng.Name+"-cold", eng.ContainerdStore)
	require.NoError(t, err)
	defer cold.Stop() //nolint:errcheck
	// One more change, of this engine's own, so that its blobs are new to
	// the registry (the patch pushed before has the same digests).
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "cold-"+eng.Name+".txt"), []byte(eng.Name+"\n"), 0o644))
	patchRef := env.stack.Ref("engine/"+eng.Name, "cold-patch")
	output := "type=image,name=" + patchRef + ",push=true"
	if eng.ContainerdStore {
		output += ",store=false"
	}
	args := []string{"buildx", "build", "--builder", "default", "--progress=plain", "-f", filepath.Join(dir, "Patchfile"), "--output", output}
	for k, v := range patchArgs(releaseRef) {
		args = append(args, "--build-arg", k+"="+v)
	}
	blobsBefore, err := env.stack.Blobs()
	require.NoError(t, err)
	logAt := env.stack.LogSize()
	cmd := cold.Command(ctx, append(args, dir)...)
	cmd.Env = append(cmd.Env, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), decide.PatchPrefix)
	served, err := env.stack.RegistryRequests(logAt)
	require.NoError(t, err)
	blobsAfter, err := env.stack.Blobs()
	require.NoError(t, err)

	pulled := classifyPulls(t, served, release)
	pulledLayers, pulledFrontend, pulledOther := pulled.releaseLayers, pulled.frontend, pulled.other
	var releaseBytes int64
	for _, l := range layers(t, release) {
		n, err := l.Size()
		require.NoError(t, err)
		releaseBytes += n
	}
	if eng.ContainerdStore {
		require.Zero(t, pulledLayers, "store=false on the containerd store: no release layer pulled")
	} else {
		require.Equal(t, releaseBytes, pulledLayers, "the fileops plan reads every release layer, once")
	}
	pushed := newBlobs(blobsBefore, blobsAfter)
	pushedBytes := sumSizes(pushed)
	require.Len(t, pushed, 3, "the patch layer, its config and its manifest: %v", keys(pushed))
	t.Logf("cold patch on a %s engine: %s; pulled %d bytes of release layers (of %d), %d of frontend image, %d of configs and manifests; pushed %d bytes",
		eng.Name, wall.Round(time.Millisecond), pulledLayers, releaseBytes, pulledFrontend, pulledOther, pushedBytes)
}
