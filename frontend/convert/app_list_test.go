package convert

import (
	"context"
	"crypto/sha256"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/patchfile"
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

// recordingContext is a fake context that records the patterns the app
// files are read with.
type recordingContext struct {
	fake.Context
	app *[]string
}

func (r recordingContext) Files(ctx context.Context, name string, patterns []string) (llb.State, []buildcontext.File, error) {
	if name == AppContextName {
		*r.app = slices.Clone(patterns)
	}
	return r.Context.Files(ctx, name, patterns)
}

// TestLiteralAppPatterns: where LiteralAppPatterns answers, it answers
// what the conversion reads the app files with (a build prefetches them
// under that key, and a different one would upload them twice); where
// only the conversion can tell, it does not answer.
func TestLiteralAppPatterns(t *testing.T) {
	const from = "ARG DIR=src\nFROM alpine@sha256:4f1d3b2a8c9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a\nARG DIR\nWORKDIR /srv\n"
	for _, tc := range []struct {
		app     string
		literal bool
	}{
		{"APP . /app/", true},
		{"APP ./ /app/", true},
		{"APP src /app/", true},
		{"APP src/ static /app/", true},
		{"APP /src ./static/ /app/", true},
		{"APP src . /app/", true},
		{"APP s* /app/", true},
		{"APP src/server.js /app/server.js", true},
		{"APP --exclude=*.md . /app/", true},
		{"APP ${DIR} /app/", false},
		{"APP $DIR static /app/", false},
		{"APP 'src' /app/", false},
		// A build's outputs: the build stage's sources are the app files.
		{"APP --from=build /out /app/", true},
	} {
		t.Run(tc.app, func(t *testing.T) {
			text := from + tc.app + "\n"
			if strings.Contains(tc.app, "--from") {
				text = "FROM alpine@sha256:4f1d3b2a8c9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a AS build\nAPP src static /src/\nRUN make\n" + text
			}
			pf, err := patchfile.Parse([]byte(text))
			require.NoError(t, err)
			predicted, ok := LiteralAppPatterns(pf)
			require.Equal(t, tc.literal, ok)
			var read []string
			opt := Opt{TargetPlatform: &amd64, MetaResolver: &fake.Resolver{}, Context: recordingContext{Context: fake.Shop(), app: &read}}
			_, err = Convert(context.Background(), pf, opt)
			require.NoError(t, err)
			if ok {
				require.Equal(t, read, predicted)
			}
		})
	}
}
