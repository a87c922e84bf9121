package integration

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/stretchr/testify/require"
)

// multiPlatforms is what the multi-platform tests build.
const multiPlatforms = "linux/amd64,linux/arm64"

// multiPatchfile runs its dependency step on each platform (under qemu for
// arm64), so each platform's dependency layer says where it ran.
const multiPatchfile = `ARG BASE
ARG RELEASE
FROM ${BASE}
WORKDIR /app
DEPS deps.txt
RUN mkdir -p /opt/deps && uname -m > /opt/deps/arch && cp deps.txt /opt/deps/
APP . /app
PATCH ${RELEASE}
CMD ["sh"]
`

// copyOnlyPatchfile has no RUN step: every platform builds without
// emulation.
const copyOnlyPatchfile = `ARG BASE
ARG RELEASE
FROM ${BASE}
APP . /srv
PATCH ${RELEASE}
`

// TestMultiPlatform releases an app for linux/amd64 and linux/arm64 from a
// base pinned by its index digest, then patches it on a cold builder: each
// platform gets its own dependency hash and its own release plus one layer,
// and no release layer is pulled.
func TestMultiPlatform(t *testing.T) {
	if !daemonRuns(t, env.warm, "linux/arm64") {
		t.Skip("this machine cannot run arm64 binaries (hack/install-tools.sh registers qemu-aarch64 with binfmt_misc); TestMultiPlatformCopyOnly covers the paths that need no emulation")
	}
	base := multiPlatformBase(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile":   {content: multiPatchfile},
		"deps.txt":    {content: "left-pad==1.3.0\n"},
		"src/a.js":    {content: "console.log('a');\n"},
		"src/b.js":    {content: "console.log('b');\n"},
		"public/i.md": {content: "# hi\n"},
	})
	releaseRef := env.stack.Ref("multi/app", "release")
	args := map[string]string{"BASE": base, "RELEASE": releaseRef}

	rel, err := buildWithBuildctl(t, build{dir: dir, args: args, output: releaseRef, platforms: multiPlatforms})
	require.NoError(t, err)
	require.Contains(t, rel.output, "[linux/arm64 deps 3/3] RUN mkdir -p /opt/deps", "steps are named by platform")
	release := pullIndex(t, releaseRef+"@"+rel.digest)
	require.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, keysOf(release))

	baseDigest := strings.SplitN(base, "@", 2)[1]
	arch := map[string]string{"linux/amd64": "x86_64\n", "linux/arm64": "aarch64\n"}
	deps := map[string]string{}
	for p, img := range release {
		cfg := configOf(t, img)
		require.Equal(t, strings.TrimPrefix(p, "linux/"), cfg.Architecture)
		require.Equal(t, baseDigest, cfg.Config.Labels[decide.LabelBase], "the base is recorded by its index digest")
		deps[p] = cfg.Config.Labels[decide.LabelDeps]
		fs := filesystem(t, img)
		require.Equal(t, arch[p], fs["opt/deps/arch"].Content, "%s: the dependency step ran on its own platform", p)
		require.Equal(t, "console.log('a');\n", fs["app/src/a.js"].Content)
		require.Equal(t, sha256Hex(t, busyboxBinary(t, p)), sha256Hex(t, []byte(fs["bin/busybox"].Content)), "%s: the base is that platform's", p)
	}
	require.NotEqual(t, deps["linux/amd64"], deps["linux/arm64"], "each platform has its own dependency hash")

	// One file changed: a patch per platform, on a builder with an empty cache.
	writeTree(t, dir, map[string]file{"src/a.js": {content: "console.log('A');\n"}})
	cold, err := env.stack.NewDaemon(context.Background(), "multi-cold")
	require.NoError(t, err)
	defer cold.Stop()
	logAt := env.stack.LogSize()
	patchRef := env.stack.Ref("multi/app", "patch")
	res, err := buildWithBuildctl(t, build{dir: dir, args: args, output: patchRef, daemon: cold, platforms: multiPlatforms})
	require.NoError(t, err)
	served, err := env.stack.RegistryRequests(logAt)
	require.NoError(t, err)
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		require.Contains(t, res.output, fmt.Sprintf("[%s patch] patch of release %s: 1 changed, 0 deleted", p, rel.digest))
	}
	require.NotContains(t, res.output, "RUN mkdir", "the dependency stage did not run")
	patched := pullIndex(t, patchRef+"@"+res.digest)
	require.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, keysOf(patched))
	for p, img := range patched {
		releaseLayers, patchedLayers := layers(t, release[p]), layers(t, img)
		require.Len(t, patchedLayers, len(releaseLayers)+1, "%s: the release's layers plus one", p)
		for i := range releaseLayers {
			d1, _ := releaseLayers[i].Digest()
			d2, _ := patchedLayers[i].Digest()
			require.Equal(t, d1, d2, "%s: layer %d is the release's own", p, i)
		}
		top := layerEntries(t, patchedLayers[len(patchedLayers)-1])
		require.Equal(t, []string{"app", "app/src", "app/src/a.js"}, names(top), p)
		require.Equal(t, "console.log('A');\n", top["app/src/a.js"].Content)
		cfg := configOf(t, img)
		require.Equal(t, rel.digest, cfg.Config.Labels[decide.LabelRelease], "%s: the release is recorded by its index digest", p)
		require.Equal(t, strings.TrimPrefix(p, "linux/"), cfg.Architecture)
		for _, b := range served {
			if b.Method == "GET" && layerDigests(t, release[p])[b.Digest] {
				t.Errorf("%s: the cold patch pulled release layer %s (%d bytes)", p, b.Digest, b.Bytes)
			}
		}
	}

	// The patched images equal full builds of the same inputs, per platform.
	fullArgs := map[string]string{"BASE": base, "PATCH": ""}
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs, output: env.stack.Ref("multi/app", "full"), platforms: multiPlatforms})
	require.NoError(t, err)
	full := pullIndex(t, env.stack.Ref("multi/app", "full")+"@"+res.digest)
	for p := range patched {
		requireSameFilesystem(t, filesystem(t, full[p]), filesystem(t, patched[p]))
	}
}

// TestMultiPlatformCopyOnly builds and patches an app with no RUN step for
// both platforms, through docker buildx: nothing needs emulation.
func TestMultiPlatformCopyOnly(t *testing.T) {
	base := multiPlatformBase(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile":    {content: copyOnlyPatchfile},
		"index.html":   {content: "<h1>v1</h1>\n"},
		"css/site.css": {content: "h1 { color: red }\n"},
	})
	releaseRef := env.stack.Ref("multi/site", "release")
	args := map[string]string{"BASE": base, "RELEASE": releaseRef}
	rel, err := buildWithBuildx(t, build{dir: dir, args: args, output: releaseRef, platforms: multiPlatforms})
	require.NoError(t, err)
	release := pullIndex(t, releaseRef+"@"+rel.digest)
	require.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, keysOf(release))

	require.NoError(t, os.Remove(filepath.Join(dir, "css/site.css")))
	writeTree(t, dir, map[string]file{"index.html": {content: "<h1>v2</h1>\n"}})
	res, err := buildWithBuildx(t, build{dir: dir, args: args, output: env.stack.Ref("multi/site", "patch"), platforms: multiPlatforms})
	require.NoError(t, err)
	patched := pullIndex(t, env.stack.Ref("multi/site", "patch")+"@"+res.digest)
	for p, img := range patched {
		ls := layers(t, img)
		require.Len(t, ls, len(layers(t, release[p]))+1, p)
		top := layerEntries(t, ls[len(ls)-1])
		require.Equal(t, []string{"srv", "srv/css", "srv/css/.wh.site.css", "srv/index.html"}, names(top), p)
		require.Equal(t, rel.digest, configOf(t, img).Config.Labels[decide.LabelRelease], p)
		require.Equal(t, sha256Hex(t, busyboxBinary(t, p)), sha256Hex(t, []byte(filesystem(t, img)["bin/busybox"].Content)), p)
	}

	// A release made for amd64 only: amd64 is patched, arm64 built in full
	// (a single-manifest image resolves for any platform asked; the frontend
	// checks the release's own platform).
	amd64Ref := env.stack.Ref("multi/site", "release-amd64")
	amd64, err := buildWithBuildx(t, build{dir: dir, args: map[string]string{"BASE": base, "PATCH": ""}, output: amd64Ref, platforms: "linux/amd64",
		noDefaultAttestations: true}) // this case is about a single manifest
	require.NoError(t, err)
	// The same release as an index (buildx's default provenance): arm64
	// is not in it, and is built in full for that reason.
	amd64IndexRef := env.stack.Ref("multi/site", "release-amd64-index")
	amd64Index, err := buildWithBuildx(t, build{dir: dir, args: map[string]string{"BASE": base, "PATCH": ""}, output: amd64IndexRef, platforms: "linux/amd64"})
	require.NoError(t, err)
	writeTree(t, dir, map[string]file{"index.html": {content: "<h1>v2.5</h1>\n"}})
	res, err = buildWithBuildx(t, build{dir: dir, args: map[string]string{"BASE": base, "RELEASE": amd64IndexRef}, output: env.stack.Ref("multi/site", "mixed-index"), platforms: multiPlatforms})
	require.NoError(t, err)
	require.Contains(t, res.output, "[linux/amd64 patch] patch of release "+amd64Index.digest+": 1 changed, 0 deleted")
	require.Contains(t, res.output, "[linux/arm64 app] full build: candidate "+amd64IndexRef+" has no linux/arm64 image")
	require.NotContains(t, res.output, "unreachable", "the registry answered: the index has no arm64 image")
	require.NoError(t, err)
	writeTree(t, dir, map[string]file{"index.html": {content: "<h1>v3</h1>\n"}})
	res, err = buildWithBuildx(t, build{dir: dir, args: map[string]string{"BASE": base, "RELEASE": amd64Ref}, output: env.stack.Ref("multi/site", "mixed"), platforms: multiPlatforms})
	require.NoError(t, err)
	require.Contains(t, res.output, "[linux/amd64 patch] patch of release "+amd64.digest+": 1 changed, 0 deleted")
	require.Contains(t, res.output, "[linux/arm64 app] full build: release "+amd64.digest+" is for linux/amd64, not linux/arm64")
	mixed := pullIndex(t, env.stack.Ref("multi/site", "mixed")+"@"+res.digest)
	require.Equal(t, amd64.digest, configOf(t, mixed["linux/amd64"]).Config.Labels[decide.LabelRelease])
	require.NotContains(t, configOf(t, mixed["linux/arm64"]).Config.Labels, decide.LabelRelease)
	require.Equal(t, "<h1>v3</h1>\n", filesystem(t, mixed["linux/arm64"])["srv/index.html"].Content)
	require.Equal(t, sha256Hex(t, busyboxBinary(t, "linux/arm64")), sha256Hex(t, []byte(filesystem(t, mixed["linux/arm64"])["bin/busybox"].Content)))
}

// multiPlatformBase pushes the busybox base for amd64 and arm64 as an
// index, pinned by the index digest.
func multiPlatformBase(t *testing.T) string {
	t.Helper()
	base, err := env.stack.PushBaseIndex(context.Background(), env.warm, env.stack.Ref("busybox-multi", "stable"))
	require.NoError(t, err)
	return base
}

// pullIndex pulls an image index and returns its images by platform.
func pullIndex(t *testing.T, ref string) map[string]v1.Image {
	t.Helper()
	idx, im := remoteIndex(t, ref)
	out := map[string]v1.Image{}
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue // attestations (validate.Index refuses their empty config)
		}
		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		validateImage(t, img)
		out[d.Platform.OS+"/"+d.Platform.Architecture] = img
	}
	return out
}

// daemonRuns says whether a daemon's worker can run binaries of platform p.
func daemonRuns(t *testing.T, d *stack.Daemon, p string) bool {
	t.Helper()
	c, err := d.Client(context.Background())
	require.NoError(t, err)
	defer c.Close()
	workers, err := c.ListWorkers(context.Background())
	require.NoError(t, err)
	want := platforms.MustParse(p)
	for _, w := range workers {
		if slices.ContainsFunc(w.Platforms, func(wp ocispecs.Platform) bool { return platforms.Only(want).Match(wp) }) {
			return true
		}
	}
	return false
}

// busyboxBinary is the busybox binary the base image holds for a platform.
func busyboxBinary(t *testing.T, p string) []byte {
	t.Helper()
	path := "/bin/busybox"
	if p == "linux/arm64" {
		path = filepath.Join(env.stack.ToolsDir, "busybox-arm64")
	}
	dt, err := os.ReadFile(path)
	require.NoError(t, err)
	return dt
}

func sha256Hex(t *testing.T, dt []byte) string {
	t.Helper()
	return fmt.Sprintf("%x", sha256.Sum256(dt))
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestMultiPlatformFromPlatform: a final stage that pins its own platform
// (FROM --platform=linux/amd64) still records a file list in the config of
// every platform the build was asked for: the exporter keys configs by the
// platform asked for, not the stage's.
func TestMultiPlatformFromPlatform(t *testing.T) {
	base := multiPlatformBase(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile":  {content: "ARG BASE\nFROM --platform=linux/amd64 ${BASE}\nAPP . /srv\n"},
		"index.html": {content: "<h1>v1</h1>\n"},
	})
	ref := env.stack.Ref("multi/pinned-platform", "release")
	rel, err := buildWithBuildx(t, build{dir: dir, args: map[string]string{"BASE": base, "PATCH": ""}, output: ref, platforms: multiPlatforms})
	require.NoError(t, err)
	// Each platform's image is an amd64 one, which validate.Index refuses
	// in the arm64 slot: read the index as it is.
	idx, im := remoteIndex(t, ref+"@"+rel.digest)
	var seen []string
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		raw, err := img.RawConfigFile()
		require.NoError(t, err)
		require.Contains(t, string(raw), `"dev.patchfile.files"`, "%s: the release's file list", d.Platform.Architecture)
		seen = append(seen, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	require.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, seen)
}
