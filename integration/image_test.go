package integration

import (
	"archive/tar"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/require"
)

// entry is one tar entry of a layer or of a flattened filesystem.
type entry struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Size     int64
	Linkname string
	ModTime  int64
	Content  string
}

// pullImage fetches an image (a manifest, or linux/amd64 of an index) and
// validates every blob against its digest.
func pullImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	require.NoError(t, err)
	img, err := remote.Image(r)
	require.NoError(t, err)
	require.NoError(t, validate.Image(img))
	return img
}

// layerEntries lists a layer's tar entries, by name.
func layerEntries(t *testing.T, l v1.Layer) map[string]entry {
	t.Helper()
	rc, err := l.Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	return readTar(t, rc)
}

// filesystem flattens an image's layers, applying whiteouts.
func filesystem(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	return readTar(t, rc)
}

func readTar(t *testing.T, r io.Reader) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		e := entry{Name: strings.TrimSuffix(h.Name, "/"), Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid,
			Size: h.Size, Linkname: h.Linkname, ModTime: h.ModTime.Unix()}
		if h.Typeflag == tar.TypeReg {
			dt, err := io.ReadAll(tr)
			require.NoError(t, err)
			e.Content = string(dt)
		}
		out[e.Name] = e
	}
}

// under returns the entries below dir (relative names), for comparisons.
func under(fs map[string]entry, dir string) map[string]entry {
	out := map[string]entry{}
	for n, e := range fs {
		if rel, ok := strings.CutPrefix(n, dir+"/"); ok {
			out[rel] = e
		}
	}
	return out
}

func names(m map[string]entry) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func layers(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	require.NoError(t, err)
	return ls
}

func configOf(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cfg, err := img.ConfigFile()
	require.NoError(t, err)
	return cfg
}
