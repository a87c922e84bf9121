package frontend

import (
	"crypto/sha256"
	"os"
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

func TestAppManifestSeveralSources(t *testing.T) {
	dirEntry := func(p string, mode os.FileMode) ContextFile { return ContextFile{Path: p, Mode: os.ModeDir | mode} }
	fileEntry := func(p, content string) ContextFile { return NewContextFile(p, 0o644, []byte(content)) }
	files := []ContextFile{
		fileEntry("README.md", "readme"),
		fileEntry("CHANGES.md", "changes"),
		dirEntry("dist", 0o755),
		dirEntry("dist/assets", 0o755),
		fileEntry("dist/assets/app.js", "app"),
		fileEntry("dist/index.html", "dist index"),
		fileEntry("package.json", "{}"),
		dirEntry("public", 0o755),
		dirEntry("public/assets", 0o700),
		fileEntry("public/assets/logo.png", "png"),
		fileEntry("public/index.html", "public index"),
		dirEntry("src", 0o755),
		fileEntry("src/index.html", "x"),
	}
	spec := AppSpec{Sources: []string{"package.json", "dist/", "public", "*.md"}, Dest: "/app/"}
	m, err := appManifest(files, spec)
	require.NoError(t, err)
	require.Equal(t, []string{"CHANGES.md", "README.md", "assets", "assets/app.js", "assets/logo.png", "index.html", "package.json"}, paths(m.Entries))
	got := map[string]ManifestEntry{}
	for _, e := range m.Entries {
		got[e.Path] = e
	}
	require.Equal(t, sha256.Sum256([]byte("public index")), got["index.html"].Digest, "a later source lands over an earlier one")
	require.Equal(t, os.FileMode(0o700), got["assets"].Mode, "a directory takes the last copy's metadata")
	require.Equal(t, map[string]string{"CHANGES.md": "CHANGES.md", "README.md": "README.md", "assets": "public/assets", "assets/app.js": "dist/assets/app.js",
		"assets/logo.png": "public/assets/logo.png", "index.html": "public/index.html", "package.json": "package.json"}, m.origins)

	// --exclude leaves out paths inside directory sources, relative to
	// each, and never a file source.
	m, err = appManifest(files, AppSpec{Sources: []string{"README.md", "public", "src"}, Dest: "/app/", Excludes: []string{"*.md", "*.html", "assets/logo.png"}})
	require.NoError(t, err)
	require.Equal(t, []string{"README.md", "assets"}, paths(m.Entries))

	// A file over a directory: BuildKit's copy fails or replaces; no patch.
	_, err = appManifest(append(files, fileEntry("assets", "a file")), AppSpec{Sources: []string{"dist", "assets"}, Dest: "/app/"})
	var u unpatchableError
	require.ErrorAs(t, err, &u)
	require.Contains(t, u.Error(), "APP sources put a directory and a file at assets")
}
