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
// version under the image's tag) is not read: the build reads through the
// gateway instead.
func TestListOtherVersion(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(`{"version":2,"files":[{"p":"x"}]}`))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	_, err = ReadList(&b)
	require.ErrorIs(t, err, ErrListVersion)
	_, err = ReadList(strings.NewReader("not gzip"))
	require.ErrorContains(t, err, "reading the hashing step's list")
}
