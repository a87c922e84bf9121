package frontend

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"
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

// listingRef counts the listings of a dirRef.
type listingRef struct {
	*dirRef
	listed sync.Map // path -> *atomic.Int32
}

func (r *listingRef) ReadDir(ctx context.Context, req client.ReadDirRequest) ([]*fstypes.Stat, error) {
	n, _ := r.listed.LoadOrStore(req.Path, new(atomic.Int32))
	n.(*atomic.Int32).Add(1)
	return r.dirRef.ReadDir(ctx, req)
}

// TestStatPathsListsParents checks that statPaths gives every directory of
// a tree the mode and owner the disk has, listing each parent directory
// once and stating nothing (dirRef has no StatFile: a call would panic),
// and that a path its parent does not hold is an error.
func TestStatPathsListsParents(t *testing.T) {
	root := oddTree(t)
	var dirs []string
	parents := map[string]bool{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root || !d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		dirs = append(dirs, filepath.ToSlash(rel))
		parents[path.Dir("/"+filepath.ToSlash(rel))] = true
		return err
	}))
	require.Greater(t, len(dirs), len(parents), "the tree has directories that share a parent")
	ref := &listingRef{dirRef: &dirRef{root: root}}
	stats, err := statPaths(context.Background(), ref, dirs)
	require.NoError(t, err)
	for i, d := range dirs {
		info, err := os.Lstat(filepath.Join(root, d))
		require.NoError(t, err)
		sys := info.Sys().(*syscall.Stat_t)
		require.Equal(t, uint32(info.Mode()), stats[i].Mode, d)
		require.Equal(t, [2]uint32{sys.Uid, sys.Gid}, [2]uint32{stats[i].Uid, stats[i].Gid}, d)
	}
	listed := map[string]bool{}
	ref.listed.Range(func(k, v any) bool {
		require.EqualValues(t, 1, v.(*atomic.Int32).Load(), "%s listed once", k)
		listed[k.(string)] = true
		return true
	})
	require.Equal(t, parents, listed, "only the parents are listed")

	_, err = statPaths(context.Background(), ref, []string{"a", "a/nothing-here"})
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestReadTreeWithin: a tree within the bound is read whole, as ReadTree
// reads it; one over it, in entries or in bytes, stops the read.
func TestReadTreeWithin(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "d"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "d", "f"+string(rune('a'+i))), bytes.Repeat([]byte{'x'}, 100), 0o644))
	}
	ref := &dirRef{root: dir}
	ctx := context.Background()
	want, err := ReadTree(ctx, ref, "/", false)
	require.NoError(t, err)
	got, err := readTree(ctx, ref, "/", treeLimit{entries: 6, bytes: 500})
	require.NoError(t, err)
	require.Equal(t, want, got, "6 entries (d and its 5 files), 500 bytes: within")
	_, err = readTree(ctx, ref, "/", treeLimit{entries: 5})
	require.ErrorIs(t, err, errTreeTooBig)
	_, err = readTree(ctx, ref, "/", treeLimit{bytes: 499})
	require.ErrorIs(t, err, errTreeTooBig)
}

// TestHashStepArg: PATCH_HASH_STEP takes auto (the default) or always.
func TestHashStepArg(t *testing.T) {
	v, err := hashStepOf(nil)
	require.NoError(t, err)
	require.Equal(t, hashStepAuto, v)
	v, err = hashStepOf(map[string]string{keyHashStepArg: "always"})
	require.NoError(t, err)
	require.Equal(t, hashStepAlways, v)
	_, err = hashStepOf(map[string]string{keyHashStepArg: "never"})
	require.ErrorContains(t, err, "PATCH_HASH_STEP=never: write PATCH_HASH_STEP=auto")
}

// countingRef counts the files read through it.
type countingRef struct {
	*dirRef
	reads atomic.Int64
}

func (r *countingRef) ReadFile(ctx context.Context, req client.ReadRequest) ([]byte, error) {
	r.reads.Add(1)
	return r.dirRef.ReadFile(ctx, req)
}

// TestReadSmallTree: a tree within the bound is read and hashed as
// ReadTree does; one over it is given up on from its listing, without
// reading a file (the hashing step reads it instead).
func TestReadSmallTree(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "d"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "d", "f"+string(rune('a'+i))), bytes.Repeat([]byte{byte('a' + i)}, 100), 0o644))
	}
	ctx := context.Background()
	want, err := ReadTree(ctx, &dirRef{root: dir}, "/", true)
	require.NoError(t, err)
	got, ok, err := readSmallTree(ctx, &countingRef{dirRef: &dirRef{root: dir}}, "the app")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, want, got)

	defer func(l treeLimit) { smallTree = l }(smallTree)
	smallTree = treeLimit{entries: 3}
	ref := &countingRef{dirRef: &dirRef{root: dir}}
	_, ok, err = readSmallTree(ctx, ref, "the app")
	require.NoError(t, err)
	require.False(t, ok, "6 entries: over the bound")
	require.Zero(t, ref.reads.Load(), "no file read for a tree over the bound")
}
