package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/stretchr/testify/require"
)

// TestColdPatch patches examples/Patchfile with one file changed on a
// builder with an empty cache and no --cache-from, through buildctl and the
// frontend image, and checks with the registry's own log and storage that
// no layer of the release was pulled and that only the patch layer, its
// config and its manifest were pushed.
func TestColdPatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	releaseRef := env.stack.Ref("cold/web", "release")
	args := map[string]string{"BASE": env.base, "RELEASE": releaseRef}

	start := time.Now()
	res, err := buildWithBuildctl(t, build{dir: dir, args: args, output: releaseRef})
	require.NoError(t, err)
	releaseTime := time.Since(start)
	require.Contains(t, res.output, decide.FullBuildPrefix+"no release at "+releaseRef+" yet", "the first release has nothing to patch")
	release := pullImage(t, releaseRef+"@"+res.digest)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "src/routes.js"), []byte("module.exports = { '/': 'index.html', '/health': 'OK' };\n"), 0o644))

	cold, err := env.stack.NewDaemon(context.Background(), "cold-patch")
	require.NoError(t, err)
	defer cold.Stop()
	blobsBefore, err := env.stack.Blobs()
	require.NoError(t, err)
	logAt := env.stack.LogSize()
	start = time.Now()
	res, err = buildWithBuildctl(t, build{dir: dir, args: args, output: env.stack.Ref("cold/web", "patch"), daemon: cold})
	require.NoError(t, err)
	patchTime := time.Since(start)
	require.Contains(t, res.output, decide.PatchPrefix)
	// Read the registry's log and storage before this test reads anything.
	served, err := env.stack.RegistryRequests(logAt)
	require.NoError(t, err)
	blobsAfter, err := env.stack.Blobs()
	require.NoError(t, err)
	patched := pullImage(t, env.stack.Ref("cold/web", "patch")+"@"+res.digest)

	// Pulled: classify every blob the registry served during the build.
	pulled := classifyPulls(t, served, release)
	require.Empty(t, pulled.releaseLayerDigests, "the cold patch pulled release layers")
	pulledLayers, pulledFrontend, pulledConfigs := pulled.releaseLayers, pulled.frontend, pulled.other

	pushed := newBlobs(blobsBefore, blobsAfter)
	pushedBytes := sumSizes(pushed)
	ls := layers(t, patched)
	top, err := ls[len(ls)-1].Digest()
	require.NoError(t, err)
	cfgDigest, err := patched.ConfigName()
	require.NoError(t, err)
	manifestDigest, err := patched.Digest()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{top.String(), cfgDigest.String(), manifestDigest.String()}, keys(pushed),
		"a patch pushes its layer, its config and its manifest, nothing else")
	topSize, err := ls[len(ls)-1].Size()
	require.NoError(t, err)
	require.LessOrEqual(t, pushedBytes, topSize+8192, "pushed bytes stay within the layer plus config and manifest")

	// For comparison, the same inputs built in full on another cold builder.
	coldFull, err := env.stack.NewDaemon(context.Background(), "cold-full")
	require.NoError(t, err)
	defer coldFull.Stop()
	fullArgs := map[string]string{"BASE": env.base, "PATCH": ""}
	logAt = env.stack.LogSize()
	start = time.Now()
	_, err = buildWithBuildctl(t, build{dir: dir, args: fullArgs, output: env.stack.Ref("cold/web", "full"), daemon: coldFull})
	require.NoError(t, err)
	fullTime := time.Since(start)
	served, err = env.stack.RegistryRequests(logAt)
	require.NoError(t, err)
	fullPulls := classifyPulls(t, served, release)
	fullPulled := fullPulls.releaseLayers + fullPulls.other // all but the frontend image

	t.Logf("release build (warm builder, full): %s", releaseTime.Round(time.Millisecond))
	t.Logf("cold full build: %s; pulled %d bytes besides the frontend image", fullTime.Round(time.Millisecond), fullPulled)
	t.Logf("cold patch: %s; pulled %d bytes of release layers, %d bytes of frontend image, %d bytes of configs; pushed %d bytes (layer %d)",
		patchTime.Round(time.Millisecond), pulledLayers, pulledFrontend, pulledConfigs, pushedBytes, topSize)
}

// pulls are the bytes the registry served (GETs) during a build, by what
// they were: layers of a release, blobs of the frontend image, and the rest
// (manifests, configs, base and dependency layers).
type pulls struct {
	releaseLayers, frontend, other int64
	// releaseLayerDigests are the release layers served.
	releaseLayerDigests []string
}

// classifyPulls sorts what the registry served (Stack.RegistryRequests)
// against release's layers and the frontend image's blobs.
func classifyPulls(t *testing.T, served []stack.BlobTransfer, release v1.Image) pulls {
	t.Helper()
	releaseLayers := layerDigests(t, release)
	frontendBlobs := imageBlobs(t, env.frontendImage)
	var p pulls
	for _, b := range served {
		if b.Method != "GET" {
			continue
		}
		switch {
		case releaseLayers[b.Digest]:
			p.releaseLayers += b.Bytes
			p.releaseLayerDigests = append(p.releaseLayerDigests, b.Digest)
		case frontendBlobs[b.Digest]:
			p.frontend += b.Bytes
		default:
			p.other += b.Bytes
		}
	}
	return p
}

// sumSizes is the total of the sizes of blobs (newBlobs).
func sumSizes(blobs map[string]int64) int64 {
	var n int64
	for _, size := range blobs {
		n += size
	}
	return n
}

func layerDigests(t *testing.T, img v1.Image) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, l := range layers(t, img) {
		d, err := l.Digest()
		require.NoError(t, err)
		out[d.String()] = true
	}
	return out
}

// imageBlobs returns the layer and config digests of an image reference.
func imageBlobs(t *testing.T, ref string) map[string]bool {
	t.Helper()
	img := pullImage(t, ref)
	out := layerDigests(t, img)
	cfg, err := img.ConfigName()
	require.NoError(t, err)
	out[cfg.String()] = true
	return out
}

// newBlobs are what a build pushed: the blobs the registry stores after it
// (Stack.Blobs) and did not before, with their sizes.
func newBlobs(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for d, size := range after {
		if _, ok := before[d]; !ok {
			out[d] = size
		}
	}
	return out
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// attestationBlobs are the blobs of an image index besides its images':
// the index itself, and each attestation manifest with its config and
// layers (buildx's default provenance, an SBOM). Empty for a manifest.
func attestationBlobs(t *testing.T, ref string) map[string]bool {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	require.NoError(t, err)
	desc, err := remote.Get(r)
	require.NoError(t, err)
	out := map[string]bool{}
	if !desc.MediaType.IsIndex() {
		return out
	}
	idx, err := desc.ImageIndex()
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	out[desc.Digest.String()] = true
	for _, d := range im.Manifests {
		if d.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			continue
		}
		att, err := idx.Image(d.Digest)
		require.NoError(t, err)
		m, err := att.Manifest()
		require.NoError(t, err)
		out[d.Digest.String()], out[m.Config.Digest.String()] = true, true
		for _, l := range m.Layers {
			out[l.Digest.String()] = true
		}
	}
	return out
}

// withoutAttestations is what was pushed for ref minus its attestations'
// blobs (attestationBlobs), which buildx's defaults add to every push.
func withoutAttestations(t *testing.T, pushed map[string]int64, ref string) map[string]int64 {
	t.Helper()
	att := attestationBlobs(t, ref)
	out := map[string]int64{}
	for d, size := range pushed {
		if !att[d] {
			out[d] = size
		}
	}
	return out
}
