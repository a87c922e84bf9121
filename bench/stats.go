package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	pllb "github.com/patchfile/patchfile/llb"
)

// median of int64s (the lower middle for an even count, so that it is a
// value that was measured).
func median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// medianOf is the median of f over xs.
func medianOf[T any](xs []T, f func(T) int64) int64 {
	v := make([]int64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return median(v)
}

// medianBy is the element of xs whose key is the median (the lower middle
// for an even count, as median), the zero value for none: a run whose
// figures add up, where medians taken field by field need not.
func medianBy[T any](xs []T, key func(T) int64) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.SortFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return s[(len(s)-1)/2]
}

// summarized is a scenario's runs reduced to medians, field by field.
type summarized struct {
	measurement
	N                int
	MinWall, MaxWall time.Duration
	Paths            []string // Patchfile paths taken, one per run
}

// summarize takes the median of every figure over the runs.
func summarize(ms []measurement) summarized {
	var s summarized
	if len(ms) == 0 {
		return s
	}
	s.N = len(ms)
	pick := func(f func(measurement) int64) int64 { return medianOf(ms, f) }
	s.Wall = time.Duration(pick(func(m measurement) int64 { return int64(m.Wall) }))
	s.PulledBaseDeps = pick(func(m measurement) int64 { return m.PulledBaseDeps })
	s.PulledApp = pick(func(m measurement) int64 { return m.PulledApp })
	s.PulledConfigs = pick(func(m measurement) int64 { return m.PulledConfigs })
	s.PulledFrontend = pick(func(m measurement) int64 { return m.PulledFrontend })
	s.Pushed = pick(func(m measurement) int64 { return m.Pushed })
	s.PushedBlobs = int(pick(func(m measurement) int64 { return int64(m.PushedBlobs) }))
	s.TopLayer = pick(func(m measurement) int64 { return m.TopLayer })
	s.PulledRuntime = pick(func(m measurement) int64 { return m.PulledRuntime })
	s.ChangedCompressed = pick(func(m measurement) int64 { return m.ChangedCompressed })
	s.ContextLoad = time.Duration(pick(func(m measurement) int64 { return int64(m.ContextLoad) }))
	s.FrontendRead = time.Duration(pick(func(m measurement) int64 { return int64(m.FrontendRead) }))
	s.MinWall, s.MaxWall = ms[0].Wall, ms[0].Wall
	for _, m := range ms {
		s.MinWall, s.MaxWall = min(s.MinWall, m.Wall), max(s.MaxWall, m.Wall)
		if m.Path != "" {
			s.Paths = append(s.Paths, m.Path)
		}
	}
	return s
}

// allPatch tells whether every run took the patch path.
func (s summarized) allPatch() bool { return s.allPath("patch") }

// allPath tells whether every run took the given path.
func (s summarized) allPath(path string) bool {
	for _, p := range s.Paths {
		if p != path {
			return false
		}
	}
	return len(s.Paths) > 0
}

// compressedFiles is the size of the smallest layer that could carry the
// given files at dest: a gzip'd tar of just those files (no parent
// directories), at the default compression level, as BuildKit compresses.
// It is the "compressed changed files" of the push target.
func compressedFiles(appDir, dest string, files ...string) (int64, error) {
	return gzipTarSize(func(add func(name string, dt []byte) error) error {
		for _, f := range files {
			dt, err := os.ReadFile(filepath.Join(appDir, filepath.FromSlash(f)))
			if err != nil {
				return err
			}
			if err := add(path.Join(dest, f)[1:], dt); err != nil {
				return err
			}
		}
		return nil
	})
}

// gzipTarSize is the size of a gzip'd tar of the regular files fill adds
// (name, contents), each at the pinned time, mode 0644: the least a layer
// carrying them could weigh.
func gzipTarSize(fill func(add func(name string, dt []byte) error) error) (int64, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := fill(func(name string, dt []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(dt)), ModTime: pllb.PinnedTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(dt)
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(buf.Len()), nil
}
