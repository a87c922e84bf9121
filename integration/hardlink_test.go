package integration

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHardLinks pins the one intended difference between a patch and a
// full build: two names of one file in the context (hard links) are one
// file linked twice in a full build's layer, as COPY makes them, and two
// files of equal contents in a patch layer. BuildKit's listing of the
// context does not say which names share a file, so a patch copies each
// changed name on its own. Contents, modes, owners and times are equal.
func TestHardLinks(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	require.NoError(t, os.Link(filepath.Join(dir, "src/a.js"), filepath.Join(dir, "src/a-link.js")))
	releaseRef := env.stack.Ref("hardlink/app", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef})
	require.NoError(t, err)

	// Writing through one name changes both.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src/a.js"), []byte("console.log('A');\n"), 0o644))
	patchRef := env.stack.Ref("hardlink/app", "patch")
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(releaseRef), output: patchRef})
	require.NoError(t, err)
	require.Contains(t, res.output, "2 changed, 0 deleted")
	patched := filesystem(t, pullImage(t, patchRef+"@"+res.digest))
	fullRef := env.stack.Ref("hardlink/app", "full")
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: fullRef})
	require.NoError(t, err)
	full := filesystem(t, pullImage(t, fullRef+"@"+res.digest))

	// The full build: the first name in the tar holds the contents, the
	// second links to it.
	require.EqualValues(t, tar.TypeReg, full["app/src/a-link.js"].Type)
	require.EqualValues(t, tar.TypeLink, full["app/src/a.js"].Type)
	require.Equal(t, "app/src/a-link.js", full["app/src/a.js"].Linkname)
	// The patch: two files.
	for _, name := range []string{"app/src/a.js", "app/src/a-link.js"} {
		require.EqualValues(t, tar.TypeReg, patched[name].Type, name)
		require.Equal(t, "console.log('A');\n", patched[name].Content, name)
	}
	// Resolve the link: then the two are equal, entry by entry.
	link := full["app/src/a.js"]
	target := full[link.Linkname]
	link.Type, link.Linkname, link.Size, link.Content = target.Type, "", target.Size, target.Content
	full["app/src/a.js"] = link
	requireSameFilesystem(t, full, patched)
}
