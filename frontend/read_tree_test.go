package frontend

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/stretchr/testify/require"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// dirRef serves a local directory as a solved reference does: ReadDir and
// ReadFile from the disk, with the stats fsutil would send.
type dirRef struct {
	client.Reference
	root string
}

func (r *dirRef) ReadDir(_ context.Context, req client.ReadDirRequest) ([]*fstypes.Stat, error) {
	dir := filepath.Join(r.root, filepath.FromSlash(req.Path))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*fstypes.Stat
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		st := &fstypes.Stat{Path: e.Name(), Mode: uint32(info.Mode()), Size: info.Size()}
		if sys, ok := info.Sys().(*syscall.Stat_t); ok {
			st.Uid, st.Gid = sys.Uid, sys.Gid
		}
		if info.Mode()&os.ModeSymlink != 0 {
			st.Size = 0
			if st.Linkname, err = os.Readlink(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
		}
		out = append(out, st)
	}
	return out, nil
}

func (r *dirRef) ReadFile(_ context.Context, req client.ReadRequest) ([]byte, error) {
	dt, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(req.Filename)))
	if err != nil {
		return nil, err
	}
	start := min(req.Range.Offset, len(dt))
	return dt[start:min(start+req.Range.Length, len(dt))], nil
}

// oddTree lays out what a context can hold: nested and empty directories,
// empty, small and multi-chunk files, modes with setuid and sticky bits,
// owners, symlinks (dangling, absolute, to directories), a hard link, a
// named pipe, and names that sort differently by path than by component.
func oddTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(p string, data []byte, mode os.FileMode) {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, data, 0o600))
		require.NoError(t, os.Chmod(full, mode))
	}
	write("a.txt", []byte("a"), 0o644)
	write("a/b.txt", []byte("b"), 0o600)
	write("a-b/c", nil, 0o755|os.ModeSetuid)
	write("big.bin", bytes.Repeat([]byte("0123456789abcdef"), (readChunk+12345)/16), 0o644)
	write("deep/er/still/x.js", []byte("x"), 0o444)
	write("sticky/y", []byte("y"), 0o640|os.ModeSticky)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "empty/dir"), 0o750))
	require.NoError(t, os.Chmod(filepath.Join(root, "empty"), 0o700|os.ModeSetgid))
	require.NoError(t, os.Lchown(filepath.Join(root, "a/b.txt"), 1000, 1001))
	require.NoError(t, os.Symlink("../a.txt", filepath.Join(root, "a/up")))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(root, "abs")))
	require.NoError(t, os.Symlink("nowhere", filepath.Join(root, "dangling")))
	require.NoError(t, os.Symlink("deep/er", filepath.Join(root, "to-dir")))
	require.NoError(t, os.Link(filepath.Join(root, "a.txt"), filepath.Join(root, "a/hard")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "pipe"), 0o644))
	return root
}

// TestWalkTreeEqualsReadTree: the two ways of listing and hashing the
// context give the same list, entry by entry, and the list survives the
// trip through the hashing step's file.
func TestWalkTreeEqualsReadTree(t *testing.T) {
	root := oddTree(t)
	viaGateway, err := ReadTree(context.Background(), &dirRef{root: root}, "/", true)
	require.NoError(t, err)
	inBuilder, err := buildcontext.Walk(root)
	require.NoError(t, err)
	require.Equal(t, viaGateway, inBuilder)
	require.Len(t, inBuilder, 20)

	out := t.TempDir()
	require.NoError(t, buildcontext.WriteList(root, out))
	f, err := os.Open(filepath.Join(out, buildcontext.ListFile))
	require.NoError(t, err)
	defer f.Close()
	read, err := buildcontext.ReadList(f)
	require.NoError(t, err)
	require.Equal(t, inBuilder, read)
}
