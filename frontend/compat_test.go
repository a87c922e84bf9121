package frontend

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/stretchr/testify/require"
)

// updateCompat rewrites the frozen release of TestPatchesAFrozenRelease:
// never for a release format that shipped (see README, "Versioning").
var updateCompat = flag.Bool("update-compat", false, "rewrite testdata/release-format-1.json (only before format 1 ships)")

// compatRelease is the frozen release's file: the config a full build of
// decidePatchfile on fake.Shop() wrote with file list format 1.
var compatRelease = filepath.Join("testdata", "release-format-1.json")

// TestPatchesAFrozenRelease: a release built by an earlier frontend of the
// same major version is patched by this one. The release's config is
// frozen in testdata (labels, identity hashes, file list): a change to how
// the frontend hashes the dependency stage or the APP spec, names its
// labels or encodes the list fails here, where it would otherwise make
// every existing release unpatchable ("dependencies changed") with no
// word of why. Such a change needs a new major version, or a reader of
// the old form.
func TestPatchesAFrozenRelease(t *testing.T) {
	if *updateCompat {
		released, _, err := convertText(t, decidePatchfile, fake.Shop(), nil)
		require.NoError(t, err)
		dt := releaseConfig(t, released, true, nil)
		var pretty map[string]any
		require.NoError(t, json.Unmarshal(dt, &pretty))
		dt, err = json.MarshalIndent(pretty, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(compatRelease, append(dt, '\n'), 0o644))
	}
	frozen, err := os.ReadFile(compatRelease)
	require.NoError(t, err)

	changed := fake.Shop()
	changed["src/server.js"] = `console.log("ho")`
	res, _, err := convertText(t, decidePatchfile, changed, nil)
	require.NoError(t, err)
	opt := convert.Opt{TargetPlatform: &amd64, MetaResolver: &releaseResolver{releases: map[string][]byte{"docker.io/shop/web:release": frozen}}}
	d, err := decision(context.Background(), res, opt, newCandidateReader(opt))
	require.NoError(t, err)
	require.NotNil(t, d.Release, d.Summary())
	require.Contains(t, d.Summary(), decide.PatchPrefix+d.Release.Digest.String()+": 1 changed, 0 deleted")

	// A release of another list format is not patched, and the build
	// says why.
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(frozen, &cfg))
	cfg[filelist.ConfigField] = otherFormat(t)
	other, err := json.Marshal(cfg)
	require.NoError(t, err)
	opt = convert.Opt{TargetPlatform: &amd64, MetaResolver: &releaseResolver{releases: map[string][]byte{"docker.io/shop/web:release": other}}}
	d, err = decision(context.Background(), res, opt, newCandidateReader(opt))
	require.NoError(t, err)
	require.Nil(t, d.Release)
	require.Contains(t, d.Summary(), "has no usable file list (file list format 2, while this frontend reads format 1: a release built by another major version of the frontend is not patched)")
}

// otherFormat is a file list of format 2, which no frontend writes yet.
func otherFormat(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte{2})
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return base64.StdEncoding.EncodeToString(b.Bytes())
}
