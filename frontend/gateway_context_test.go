package frontend

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/stretchr/testify/require"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// treeRef is a solved reference held in memory: path -> content, with
// directories implied. It counts the reads in flight.
type treeRef struct {
	client.Reference
	files    map[string]string
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	failOn   string // ReadFile of this path fails
	// together, if not nil, makes ReadFile wait (up to a timeout) until two
	// reads have been in flight at once; alone counts the waits that timed
	// out (serial reads), after which no read waits.
	together *rendezvous
	alone    atomic.Int32
}

// rendezvous is closed when two reads are in flight at once.
type rendezvous struct {
	once sync.Once
	ch   chan struct{}
}

func (r *treeRef) enter() func() {
	n := r.inFlight.Add(1)
	if n >= 2 && r.together != nil {
		r.together.once.Do(func() { close(r.together.ch) })
	}
	for {
		m := r.maxSeen.Load()
		if n <= m || r.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	return func() { r.inFlight.Add(-1) }
}

func (r *treeRef) ReadDir(_ context.Context, req client.ReadDirRequest) ([]*fstypes.Stat, error) {
	defer r.enter()()
	dir := strings.Trim(req.Path, "/")
	seen := map[string]*fstypes.Stat{}
	for p, content := range r.files {
		rest, ok := strings.CutPrefix(p, dir+"/")
		if dir == "" {
			rest, ok = p, true
		}
		if !ok {
			continue
		}
		name, _, isDir := strings.Cut(rest, "/")
		if isDir {
			seen[name] = &fstypes.Stat{Path: name, Mode: uint32(os.ModeDir | 0o755)}
		} else {
			seen[name] = &fstypes.Stat{Path: name, Mode: 0o644, Size: int64(len(content))}
		}
	}
	out := make([]*fstypes.Stat, 0, len(seen))
	for _, st := range seen {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (r *treeRef) ReadFile(_ context.Context, req client.ReadRequest) ([]byte, error) {
	defer r.enter()()
	if r.together != nil {
		select {
		case <-r.together.ch:
		case <-time.After(10 * time.Second):
			// Serial reads: count it, and let the others go.
			r.alone.Add(1)
			r.together.once.Do(func() { close(r.together.ch) })
		}
	}
	p := strings.TrimPrefix(req.Filename, "/")
	if p == r.failOn {
		return nil, errors.New("read failed: " + p)
	}
	content := r.files[p]
	start := min(req.Range.Offset, len(content))
	end := min(start+req.Range.Length, len(content))
	return []byte(content[start:end]), nil
}

// deepTree is 3 levels of 6 directories with 4 files each: 258 directories
// and 864 files, far more jobs than readers.
func deepTree() map[string]string {
	files := map[string]string{}
	for a := range 6 {
		for b := range 6 {
			for c := range 6 {
				for f := range 4 {
					p := fmt.Sprintf("d%d/d%d/d%d/f%d.js", a, b, c, f)
					files[p] = "content of " + p
				}
			}
		}
	}
	return files
}

func TestReadTreeReadsEverything(t *testing.T) {
	ref := &treeRef{files: deepTree(), together: &rendezvous{ch: make(chan struct{})}}
	got, err := ReadTree(context.Background(), ref, "/", true)
	require.NoError(t, err)
	var nfiles, ndirs int
	for i, f := range got {
		if i > 0 {
			require.Less(t, got[i-1].Path, f.Path, "sorted by path")
		}
		if f.Mode.IsDir() {
			ndirs++
			continue
		}
		nfiles++
		want := ref.files[f.Path]
		require.Equal(t, int64(len(want)), f.Size, f.Path)
		require.Equal(t, sha256.Sum256([]byte(want)), f.SHA256, f.Path)
	}
	require.Equal(t, 864, nfiles)
	require.Equal(t, 6+36+216, ndirs)
	require.LessOrEqual(t, int(ref.maxSeen.Load()), readParallelism+1, "readers plus the caller")
	require.Zero(t, ref.alone.Load(), "a read waited alone: reads do not run in parallel")
}

func TestReadTreeStopsAtAnError(t *testing.T) {
	ref := &treeRef{files: deepTree(), failOn: "d3/d2/d5/f1.js"}
	_, err := ReadTree(context.Background(), ref, "/", true)
	require.ErrorContains(t, err, "read failed: d3/d2/d5/f1.js")
}

func TestReadTreeWithoutHashing(t *testing.T) {
	ref := &treeRef{files: map[string]string{"a/b.txt": "bb", "c.txt": "c"}, failOn: "c.txt"}
	got, err := ReadTree(context.Background(), ref, "/", false)
	require.NoError(t, err, "listing reads no file")
	require.Equal(t, []string{"a", "a/b.txt", "c.txt"}, []string{got[0].Path, got[1].Path, got[2].Path})
	require.Equal(t, int64(2), got[1].Size)
}
