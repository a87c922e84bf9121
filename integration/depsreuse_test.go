package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// reusePatchfile's dependency step writes a token that no two runs share:
// the same token in two images means the step ran once.
const reusePatchfile = `ARG BASE
ARG RELEASE
FROM ${BASE}
WORKDIR /app
DEPS deps.txt
RUN mkdir -p node_modules && cat /proc/sys/kernel/random/uuid > node_modules/.installed-by
APP . /app
PATCH ${RELEASE}
CMD ["sh"]
`

// TestReleaseReusesDependencies builds a new release (PATCH_MAX_SHARE=0:
// never a patch) of a changed app on a builder with an empty cache and no
// --cache-from. When the previous release was built with an inline cache
// (buildx --cache-to type=inline), the frontend imports it by itself: the
// dependency step does not run, no layer of the release is pulled, and
// only the new app layer, config and manifest are pushed. Without one,
// the step runs again and the progress says how to avoid it.
func TestReleaseReusesDependencies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		repo       string
		inline     bool
		wantReused bool
		// reproducible builds both releases as the CI recipe does:
		// SOURCE_DATE_EPOCH and rewrite-timestamp=true, which must not
		// pull the reused layers to rewrite them.
		reproducible bool
	}{
		{name: "release with inline cache", repo: "reuse/inline", inline: true, wantReused: true},
		{name: "release without inline cache", repo: "reuse/plain", inline: false, wantReused: false},
		{name: "reproducible releases with inline cache", repo: "reuse/epoch", inline: true, wantReused: true, reproducible: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			repo := tc.repo
			releaseRef := env.stack.Ref(repo, "release")
			writeTree(t, dir, map[string]file{
				"Patchfile":     {content: reusePatchfile},
				"deps.txt":      {content: "left-pad 1.3.0\n"},
				"src/server.js": {content: "console.log('v1')\n"},
			})
			args := map[string]string{"BASE": env.base, "RELEASE": releaseRef}
			var exporterAttrs map[string]string
			if tc.reproducible {
				args["SOURCE_DATE_EPOCH"] = "1700000000"
				exporterAttrs = map[string]string{"rewrite-timestamp": "true"}
			}
			rb := build{dir: dir, args: args, output: releaseRef, exporterAttrs: exporterAttrs}
			if tc.inline {
				rb.flags = []string{"--cache-to", "type=inline"}
			}
			res, err := buildWithBuildx(t, rb)
			require.NoError(t, err)
			// The frontend names a release by what its tag resolves to:
			// buildx pushes an index (its default provenance).
			relDigest := res.digest
			release := pullImage(t, releaseRef+"@"+relDigest)
			_, hasCache := configFields(t, release)["moby.buildkit.cache.v0"]
			require.Equal(t, tc.inline, hasCache, "--cache-to type=inline puts BuildKit's cache in the release config")

			// Each case ships its own app: equal files give equal layers,
			// which the registry would already hold from another case.
			v2 := "console.log('v2 of " + repo + "')\n"
			writeTree(t, dir, map[string]file{"src/server.js": {content: v2}})
			cold, err := env.stack.NewDaemon(context.Background(), strings.ReplaceAll(repo, "/", "-"))
			require.NoError(t, err)
			defer cold.Stop()
			blobsBefore, err := env.stack.Blobs()
			require.NoError(t, err)
			logAt := env.stack.LogSize()
			newRef := env.stack.Ref(repo, "v2")
			args["PATCH_MAX_SHARE"] = "0"
			if tc.reproducible {
				args["SOURCE_DATE_EPOCH"] = "1800000000" // a later commit
			}
			res, err = buildWithBuildctl(t, build{dir: dir, args: args, output: newRef, daemon: cold, exporterAttrs: exporterAttrs})
			require.NoError(t, err)
			served, err := env.stack.RegistryRequests(logAt)
			require.NoError(t, err)
			blobsAfter, err := env.stack.Blobs()
			require.NoError(t, err)
			require.Contains(t, res.output, decide.FullBuildPrefix+"PATCH_MAX_SHARE=0: a new release instead of patching release "+relDigest)
			img := pullImage(t, newRef+"@"+res.digest)

			relLayers, newLayers := layers(t, release), layers(t, img)
			require.Len(t, newLayers, len(relLayers), "a new release: base, dependency stage, app")
			token := func(img v1.Image) string {
				return filesystem(t, img)["app/node_modules/.installed-by"].Content
			}
			require.Equal(t, v2, filesystem(t, img)["app/src/server.js"].Content)
			if !tc.wantReused {
				require.Contains(t, res.output, "has the same dependency stage but no inline build cache to take it from (build releases with --cache-to type=inline)")
				require.NotEqual(t, token(release), token(img), "without a cache the dependency step runs again")
				return
			}
			require.Contains(t, res.output, "dependency stage from release "+relDigest+" (its inline build cache)")
			require.Equal(t, token(release), token(img), "the dependency step did not run: its output is the release's")
			for i := range len(relLayers) - 1 {
				require.Equal(t, digestOfLayer(t, relLayers[i]), digestOfLayer(t, newLayers[i]), "layer %d is the release's", i+1)
			}
			releaseBlobs := layerDigests(t, release)
			for _, b := range served {
				if b.Method == "GET" && releaseBlobs[b.Digest] {
					t.Errorf("the cold release build pulled layer %s of the previous release (%d bytes)", b.Digest, b.Bytes)
				}
			}
			cfg, err := img.ConfigName()
			require.NoError(t, err)
			manifest, err := img.Digest()
			require.NoError(t, err)
			require.ElementsMatch(t, []string{digestOfLayer(t, newLayers[len(newLayers)-1]), cfg.String(), manifest.String()}, keys(newBlobs(blobsBefore, blobsAfter)),
				"the new release pushes its app layer, config and manifest: the dependency layers are the release's")
		})
	}
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	require.NoError(t, err)
	return d.String()
}

func digestOfLayer(t *testing.T, l v1.Layer) string {
	t.Helper()
	d, err := l.Digest()
	require.NoError(t, err)
	return d.String()
}

// configFields are the top-level fields of an image's raw config.
func configFields(t *testing.T, img v1.Image) map[string]any {
	t.Helper()
	var out map[string]any
	require.NoError(t, json.Unmarshal(rawConfig(t, img), &out))
	return out
}
