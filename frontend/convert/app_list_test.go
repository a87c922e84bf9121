package convert

import (
	"crypto/sha256"
	"os"
	"testing"

	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/stretchr/testify/require"
)

func TestAppFileListSeveralSources(t *testing.T) {
	dirEntry := func(p string, mode os.FileMode) buildcontext.File {
		return buildcontext.File{Path: p, Mode: os.ModeDir | mode}
	}
	fileEntry := func(p, content string) buildcontext.File { return buildcontext.NewFile(p, 0o644, []byte(content)) }
	files := []buildcontext.File{
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
	m, err := appFileList(files, spec)
	require.NoError(t, err)
	require.Equal(t, []string{"CHANGES.md", "README.md", "assets", "assets/app.js", "assets/logo.png", "index.html", "package.json"}, entryPaths(m.Entries))
	got := map[string]filelist.Entry{}
	for _, e := range m.Entries {
		got[e.Path] = e
	}
	require.Equal(t, sha256.Sum256([]byte("public index")), got["index.html"].Digest, "a later source lands over an earlier one")
	require.Equal(t, os.FileMode(0o700), got["assets"].Mode, "a directory takes the last copy's metadata")
	require.Equal(t, map[string]string{"CHANGES.md": "CHANGES.md", "README.md": "README.md", "assets": "public/assets", "assets/app.js": "dist/assets/app.js",
		"assets/logo.png": "public/assets/logo.png", "index.html": "public/index.html", "package.json": "package.json"}, m.Origins)

	// --exclude leaves out paths inside directory sources, relative to
	// each, and never a file source.
	m, err = appFileList(files, AppSpec{Sources: []string{"README.md", "public", "src"}, Dest: "/app/", Excludes: []string{"*.md", "*.html", "assets/logo.png"}})
	require.NoError(t, err)
	require.Equal(t, []string{"README.md", "assets"}, entryPaths(m.Entries))

	// A file over a directory: BuildKit's copy fails or replaces; no patch.
	_, err = appFileList(append(files, fileEntry("assets", "a file")), AppSpec{Sources: []string{"dist", "assets"}, Dest: "/app/"})
	var u unpatchableError
	require.ErrorAs(t, err, &u)
	require.Contains(t, u.Error(), "APP sources put a directory and a file at assets")
}

func entryPaths(es []filelist.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Path)
	}
	return out
}
