package integration

import (
	"archive/tar"
	"io"
	"path"
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
	validateImage(t, img)
	return img
}

// validateImage checks every blob of img against its digest, and each
// layer's contents against its diff ID. go-containerregistry's validate
// reads layers as gzip only: a zstd layer (the frontend image's,
// stack.FrontendImageCompression) is checked here instead, through the
// layer's own decompression.
func validateImage(t *testing.T, img v1.Image) {
	t.Helper()
	ls, err := img.Layers()
	require.NoError(t, err)
	zstd := false
	for _, l := range ls {
		mt, err := l.MediaType()
		require.NoError(t, err)
		zstd = zstd || strings.Contains(string(mt), "zstd")
	}
	if !zstd {
		require.NoError(t, validate.Image(img))
		return
	}
	require.NoError(t, validate.Image(img, validate.Fast))
	for i, l := range ls {
		for _, blob := range []struct {
			open func() (io.ReadCloser, error)
			want func() (v1.Hash, error)
		}{{l.Compressed, l.Digest}, {l.Uncompressed, l.DiffID}} {
			rc, err := blob.open()
			require.NoError(t, err)
			h, _, err := v1.SHA256(rc)
			rc.Close()
			require.NoError(t, err)
			want, err := blob.want()
			require.NoError(t, err)
			require.Equal(t, want, h, "layer %d", i)
		}
	}
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
	for _, e := range readTarInOrder(t, r) {
		out[e.Name] = e
	}
	return out
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

// resolvedFilesystem flattens an image's layers as a container sees them:
// each layer applied over the ones below (whiteouts, opaque directories,
// a file over a directory), and each hard link replaced by the entry it
// names as the link's layer finds it. Unlike filesystem, it tells apart
// nothing that a container could not: a hard link and a file of equal
// contents and metadata are equal here, which is what a patch promises
// (it carries a changed hard link as a file).
func resolvedFilesystem(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	fs := map[string]entry{}
	removeTree := func(name string, keep map[string]bool) {
		for n := range fs {
			if (n == name || strings.HasPrefix(n, name+"/")) && !keep[n] {
				delete(fs, n)
			}
		}
	}
	for _, l := range layers(t, img) {
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		added := map[string]bool{}
		for _, e := range readTarInOrder(t, rc) {
			dir, base := path.Split(e.Name)
			switch {
			case base == ".wh..wh..opq":
				// Everything below the directory from the layers below goes.
				d := strings.TrimSuffix(dir, "/")
				for n := range fs {
					if strings.HasPrefix(n, d+"/") && !added[n] {
						delete(fs, n)
					}
				}
				continue
			case strings.HasPrefix(base, ".wh."):
				removeTree(dir+strings.TrimPrefix(base, ".wh."), added)
				continue
			}
			if e.Type == tar.TypeLink {
				target, ok := fs[e.Linkname]
				require.True(t, ok, "hard link %s names %s, which is not there", e.Name, e.Linkname)
				target.Name = e.Name
				e = target
			}
			if old, ok := fs[e.Name]; !ok || old.Type != tar.TypeDir || e.Type != tar.TypeDir {
				removeTree(e.Name, added) // what was there, and below it
			}
			fs[e.Name] = e
			added[e.Name] = true
		}
		require.NoError(t, rc.Close())
	}
	return fs
}

// readTarInOrder is readTar's entries in the archive's order.
func readTarInOrder(t *testing.T, r io.Reader) []entry {
	t.Helper()
	var out []entry
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
		out = append(out, e)
	}
}

// remoteIndex reads an image index from the test registry.
func remoteIndex(t *testing.T, ref string) (v1.ImageIndex, *v1.IndexManifest) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	require.NoError(t, err)
	idx, err := remote.Index(r)
	require.NoError(t, err, "%s is an index", ref)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	return idx, im
}
