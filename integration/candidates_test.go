package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchfile/patchfile/frontend"
	"github.com/stretchr/testify/require"
)

// TestPatchCandidates covers how a release is chosen: foreign and
// unreachable candidates fall back to a full build with the reason, the
// first usable candidate wins, --build-arg PATCH overrides the Patchfile,
// and a change too large for a patch makes a new release.
func TestPatchCandidates(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	releaseRef := env.stack.Ref("cand/app", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef})
	require.NoError(t, err)
	releaseDigest := res.digest
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src/a.js"), []byte("console.log('A');\n"), 0o644))

	missing := env.stack.Ref("cand/none", "release")
	cases := []struct {
		name    string
		args    map[string]string
		outputs []string
		patch   bool
	}{{
		name:    "foreign image",
		args:    map[string]string{"BASE": env.base, "RELEASE": env.base},
		outputs: []string{"full build: candidate " + env.base + " was not built by Patchfile", "warning PATCH: candidate"},
	}, {
		name:    "unreachable",
		args:    map[string]string{"BASE": env.base, "RELEASE": missing},
		outputs: []string{"full build: candidate " + missing + " unreachable"},
	}, {
		name:    "first usable of several",
		args:    map[string]string{"BASE": env.base, "PATCH": missing + " " + env.base + " " + releaseRef},
		outputs: []string{"patch of release " + releaseDigest + ": 1 changed, 0 deleted"},
		patch:   true,
	}, {
		name:    "PATCH build arg overrides the Patchfile",
		args:    map[string]string{"BASE": env.base, "RELEASE": missing, "PATCH": releaseRef},
		outputs: []string{"patch of release " + releaseDigest},
		patch:   true,
	}, {
		name:    "re-release rule",
		args:    map[string]string{"BASE": env.base, "RELEASE": releaseRef, "PATCH_MAX_SHARE": "1"},
		outputs: []string{"more than PATCH_MAX_SHARE=1%", "a new release is smaller to ship than patching release " + releaseDigest},
	}}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := env.stack.Ref("cand/app", "case"+string(rune('a'+i)))
			res, err := buildInProcess(t, build{dir: dir, args: tc.args, output: out})
			require.NoError(t, err, "an unusable candidate never fails the build")
			for _, want := range tc.outputs {
				require.Contains(t, res.output, want)
			}
			img := pullImage(t, out+"@"+res.digest)
			labels := configOf(t, img).Config.Labels
			if tc.patch {
				require.Equal(t, releaseDigest, labels[frontend.LabelRelease])
			} else {
				require.NotContains(t, labels, frontend.LabelRelease)
				require.True(t, strings.HasPrefix(labels[frontend.LabelDeps], "sha256:"))
			}
			require.Equal(t, "console.log('A');\n", filesystem(t, img)["app/src/a.js"].Content, "either way, the image has the new file")
		})
	}
}
