package buildcontext

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWalkNotUTF8: a name that is not UTF-8 is the step's error, named
// in its list, not a failed step.
func TestWalkNotUTF8(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "src"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "src", "bad\xff.js"), nil, 0o644))
	out := t.TempDir()
	require.NoError(t, WriteList(root, out))
	f, err := os.Open(filepath.Join(out, ListFile))
	require.NoError(t, err)
	defer f.Close()
	_, err = ReadList(f)
	require.ErrorContains(t, err, `the file name "src/bad\xff.js" is not valid UTF-8, which BuildKit's gateway cannot carry: rename it, or leave it out with .dockerignore`)
}

// TestListOtherVersion: a list of another format (a binary of another
// version under the image's tag, like the gzip'd JSON of version 1) is not
// read: the build reads through the gateway instead. A damaged list is an
// error, without allocating what its lengths claim.
func TestListOtherVersion(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(`{"version":1,"files":[{"p":"x"}]}`))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	_, err = ReadList(&b)
	require.ErrorIs(t, err, ErrListVersion)
	_, err = ReadList(strings.NewReader("patchfile tree list v3\n"))
	require.ErrorIs(t, err, ErrListVersion)

	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "a.js"), []byte("a"), 0o644))
	out := t.TempDir()
	require.NoError(t, WriteList(root, out))
	list, err := os.ReadFile(filepath.Join(out, ListFile))
	require.NoError(t, err)
	files, err := ReadList(bytes.NewReader(list))
	require.NoError(t, err)
	require.Equal(t, []File{NewFile("a.js", 0o644, []byte("a"))}, clearOwners(files))
	for cut := len(listMagic); cut < len(list); cut++ {
		_, err = ReadList(bytes.NewReader(list[:cut]))
		require.ErrorContains(t, err, "reading the hashing step's list", "cut at %d", cut)
	}
	huge := append([]byte(listMagic), 0xff, 0xff, 0xff, 0xff, 0x0f) // an error of 4 GiB
	_, err = ReadList(bytes.NewReader(huge))
	require.ErrorContains(t, err, "a string of 4294967295 bytes")
}

// clearOwners zeroes owners, which depend on who runs the test.
func clearOwners(files []File) []File {
	for i := range files {
		files[i].UID, files[i].GID = 0, 0
	}
	return files
}

// FuzzReadList: whatever a list holds, ReadList returns files or an
// error; it neither panics nor allocates what a damaged length claims.
func FuzzReadList(f *testing.F) {
	root := f.TempDir()
	require.NoError(f, os.MkdirAll(filepath.Join(root, "src", "lib"), 0o755))
	require.NoError(f, os.WriteFile(filepath.Join(root, "src", "lib", "a.js"), []byte("a"), 0o644))
	require.NoError(f, os.WriteFile(filepath.Join(root, "src", "b.js"), []byte("bb"), 0o600))
	require.NoError(f, os.Symlink("lib/a.js", filepath.Join(root, "src", "c.js")))
	out := f.TempDir()
	require.NoError(f, WriteList(root, out))
	list, err := os.ReadFile(filepath.Join(out, ListFile))
	require.NoError(f, err)
	f.Add(list)
	f.Add([]byte(listMagic))
	f.Fuzz(func(t *testing.T, dt []byte) {
		files, err := ReadList(bytes.NewReader(dt))
		if err == nil && len(files) > len(dt) {
			t.Fatalf("%d files from %d bytes", len(files), len(dt))
		}
	})
}
