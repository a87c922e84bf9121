package filelist

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"
)

func file(p, content string) Entry {
	return Entry{Path: p, Type: TypeFile, Mode: 0o644, Size: int64(len(content)), Digest: sha256.Sum256([]byte(content))}
}

func dir(p string) Entry { return Entry{Path: p, Type: TypeDir, Mode: 0o755} }

func paths(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Path)
	}
	return out
}

func TestChanges(t *testing.T) {
	cases := []struct {
		name             string
		old, cur         []Entry
		changed, deleted []string
	}{{
		name:    "edit, add, delete",
		old:     []Entry{file("a", "1"), file("b", "2")},
		cur:     []Entry{file("a", "X"), file("c", "3")},
		changed: []string{"a", "c"}, deleted: []string{"b"},
	}, {
		name:    "a deleted directory is one whiteout",
		old:     []Entry{dir("d"), dir("d/e"), file("d/e/f", "1"), file("d/g", "2"), file("k", "k")},
		cur:     []Entry{file("k", "k")},
		changed: []string{}, deleted: []string{"d"},
	}, {
		name:    "a directory replaced by a file takes its children along",
		old:     []Entry{dir("x"), file("x/c", "1"), dir("x/d"), file("x/d/e", "2")},
		cur:     []Entry{file("x", "now a file")},
		changed: []string{"x"}, deleted: []string{"x"},
	}, {
		name:    "a file replaced by a directory",
		old:     []Entry{file("x", "file")},
		cur:     []Entry{dir("x"), file("x/c", "1")},
		changed: []string{"x", "x/c"}, deleted: []string{"x"},
	}, {
		name:    "mode only",
		old:     []Entry{file("run.sh", "#!")},
		cur:     []Entry{func() Entry { e := file("run.sh", "#!"); e.Mode = 0o755; return e }()},
		changed: []string{"run.sh"}, deleted: []string{},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := Changes(&List{Entries: tc.old}, &List{Entries: tc.cur})
			require.Equal(t, tc.changed, paths(cs.Changed))
			require.Equal(t, tc.deleted, paths(cs.Deleted))
		})
	}
}

// TestRoundTrip: what Encode writes, Decode reads back, and
// corrupt or forged input is refused rather than half-read.
func TestRoundTrip(t *testing.T) {
	m := &List{Entries: []Entry{
		dir("src"), file("src/a b.js", "a"),
		{Path: "src/link", Type: TypeSymlink, Mode: 0o777, Linkname: "a b.js"},
		file("src/ünï.js", "u"),
		{Path: "zz", Type: TypeFile, Mode: 0o4755, UID: 1000, GID: 1000, Size: 3, Digest: sha256.Sum256([]byte("abc"))},
	}}
	enc, err := m.Encode()
	require.NoError(t, err)
	got, err := Decode(enc)
	require.NoError(t, err)
	require.Equal(t, m.Entries, got.Entries)

	for name, bad := range map[string]string{
		"not base64": "%%%",
		"not gzip":   "aGVsbG8=",
		"truncated":  enc[:len(enc)/2],
	} {
		_, err := Decode(bad)
		require.Error(t, err, name)
	}
	for name, e := range map[string]Entry{
		"escaping path": file("../etc/passwd", "x"),
		"absolute path": file("/etc/passwd", "x"),
		"unclean path":  file("a/../b", "x"),
	} {
		enc, err := (&List{Entries: []Entry{e}}).Encode()
		require.NoError(t, err)
		_, err = Decode(enc)
		require.Error(t, err, name)
	}
	unsorted, err := (&List{Entries: []Entry{file("b", "1"), file("a", "2")}}).Encode()
	require.NoError(t, err)
	_, err = Decode(unsorted)
	require.Error(t, err, "entries out of order")
}
