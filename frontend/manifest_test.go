package frontend

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"
)

func file(p, content string) ManifestEntry {
	return ManifestEntry{Path: p, Type: TypeFile, Mode: 0o644, Size: int64(len(content)), Digest: sha256.Sum256([]byte(content))}
}

func dir(p string) ManifestEntry { return ManifestEntry{Path: p, Type: TypeDir, Mode: 0o755} }

func paths(es []ManifestEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Path)
	}
	return out
}

func TestChanges(t *testing.T) {
	cases := []struct {
		name             string
		old, cur         []ManifestEntry
		changed, deleted []string
	}{{
		name:    "edit, add, delete",
		old:     []ManifestEntry{file("a", "1"), file("b", "2")},
		cur:     []ManifestEntry{file("a", "X"), file("c", "3")},
		changed: []string{"a", "c"}, deleted: []string{"b"},
	}, {
		name:    "a deleted directory is one whiteout",
		old:     []ManifestEntry{dir("d"), dir("d/e"), file("d/e/f", "1"), file("d/g", "2"), file("k", "k")},
		cur:     []ManifestEntry{file("k", "k")},
		changed: []string{}, deleted: []string{"d"},
	}, {
		name:    "a directory replaced by a file takes its children along",
		old:     []ManifestEntry{dir("x"), file("x/c", "1"), dir("x/d"), file("x/d/e", "2")},
		cur:     []ManifestEntry{file("x", "now a file")},
		changed: []string{"x"}, deleted: []string{"x"},
	}, {
		name:    "a file replaced by a directory",
		old:     []ManifestEntry{file("x", "file")},
		cur:     []ManifestEntry{dir("x"), file("x/c", "1")},
		changed: []string{"x", "x/c"}, deleted: []string{"x"},
	}, {
		name:    "mode only",
		old:     []ManifestEntry{file("run.sh", "#!")},
		cur:     []ManifestEntry{func() ManifestEntry { e := file("run.sh", "#!"); e.Mode = 0o755; return e }()},
		changed: []string{"run.sh"}, deleted: []string{},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := Changes(&Manifest{Entries: tc.old}, &Manifest{Entries: tc.cur})
			require.Equal(t, tc.changed, paths(cs.Changed))
			require.Equal(t, tc.deleted, paths(cs.Deleted))
		})
	}
}

// TestManifestRoundTrip: what Encode writes, DecodeManifest reads back, and
// corrupt or forged input is refused rather than half-read.
func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{Entries: []ManifestEntry{
		dir("src"), file("src/a b.js", "a"),
		{Path: "src/link", Type: TypeSymlink, Mode: 0o777, Linkname: "a b.js"},
		file("src/ünï.js", "u"),
		{Path: "zz", Type: TypeFile, Mode: 0o4755, UID: 1000, GID: 1000, Size: 3, Digest: sha256.Sum256([]byte("abc"))},
	}}
	enc, err := m.Encode()
	require.NoError(t, err)
	got, err := DecodeManifest(enc)
	require.NoError(t, err)
	require.Equal(t, m.Entries, got.Entries)

	for name, bad := range map[string]string{
		"not base64": "%%%",
		"not gzip":   "aGVsbG8=",
		"truncated":  enc[:len(enc)/2],
	} {
		_, err := DecodeManifest(bad)
		require.Error(t, err, name)
	}
	for name, e := range map[string]ManifestEntry{
		"escaping path": file("../etc/passwd", "x"),
		"absolute path": file("/etc/passwd", "x"),
		"unclean path":  file("a/../b", "x"),
	} {
		enc, err := (&Manifest{Entries: []ManifestEntry{e}}).Encode()
		require.NoError(t, err)
		_, err = DecodeManifest(enc)
		require.Error(t, err, name)
	}
	unsorted, err := (&Manifest{Entries: []ManifestEntry{file("b", "1"), file("a", "2")}}).Encode()
	require.NoError(t, err)
	_, err = DecodeManifest(unsorted)
	require.Error(t, err, "entries out of order")
}
