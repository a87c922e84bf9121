package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var smallApp = appSpec{Seed: 7, SourceFiles: 40, SourceMin: 100, SourceMax: 900, Assets: 2, AssetSize: 4 << 10,
	ClipSize: 8 << 10, Packages: 3, FilesPerPackage: 4, PackageKB: 2, BlockLines: 64}

// The app is a function of the seed: two machines build the same context.
func TestWriteAppIsDeterministic(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	require.NoError(t, writeApp(a, smallApp))
	require.NoError(t, writeApp(b, smallApp))
	require.Equal(t, readTree(t, a), readTree(t, b))
	require.FileExists(t, filepath.Join(a, filepath.FromSlash(editedFile)))
	require.FileExists(t, filepath.Join(a, filepath.FromSlash(clipFile)))
}

// An edit changes one file and keeps its size.
func TestEditSource(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, writeApp(dir, smallApp))
	before := readTree(t, dir)
	_, err := editSource(dir, editedFile, 1)
	require.NoError(t, err)
	after := readTree(t, dir)
	var changed []string
	for p, dt := range after {
		if before[p] != dt {
			changed = append(changed, p)
			require.Len(t, dt, len(before[p]))
		}
	}
	require.Equal(t, []string{editedFile}, changed)
}

// The install script runs under busybox sh and gives the same tree twice.
func TestInstallScript(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed")
	}
	run := func() map[string]string {
		dir := filepath.Join(t.TempDir(), "app")
		require.NoError(t, writeApp(dir, smallApp))
		cmd := exec.Command("/bin/busybox", "sh", "npm-ci.sh")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return readTree(t, filepath.Join(dir, "node_modules"))
	}
	first := run()
	require.Len(t, first, smallApp.Packages*(smallApp.FilesPerPackage+2))
	require.Equal(t, first, run())
}

func TestCompressedFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, writeApp(dir, smallApp))
	n, err := compressedFiles(dir, "/app", clipFile)
	require.NoError(t, err)
	// Incompressible: its size plus a compressed tar header and gzip framing.
	require.InDelta(t, smallApp.ClipSize+200, n, 150)
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		dt, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(dt)
		return err
	}))
	return out
}
