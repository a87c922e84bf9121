package carry

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func write(t *testing.T, p, data string, mode os.FileMode, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	dt, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(dt)
}

// TestCopy: a copy holds every file, link and directory with its mode and
// time; a fill keeps what the destination holds and adds what it lacks.
func TestCopy(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	write(t, filepath.Join(src, "00", "a-d"), "output a", 0o644, old)
	write(t, filepath.Join(src, "01", "b-a"), "action b", 0o600, old)
	write(t, filepath.Join(src, "trim.txt"), "1577934245", 0o755, old)
	if err := os.Symlink("00/a-d", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "01"), 0o750); err != nil {
		t.Fatal(err)
	}
	stats, err := Copy(src, dst, false)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != 3 || stats.Bytes != int64(len("output a")+len("action b")+len("1577934245")) {
		t.Errorf("stats %+v", stats)
	}
	if got := read(t, filepath.Join(dst, "00", "a-d")); got != "output a" {
		t.Errorf("00/a-d holds %q", got)
	}
	for p, want := range map[string]os.FileMode{"01/b-a": 0o600, "trim.txt": 0o755, "01": 0o750 | os.ModeDir} {
		fi, err := os.Stat(filepath.Join(dst, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode(), want)
		}
		if p != "01" && !fi.ModTime().Equal(old) {
			t.Errorf("%s has time %v, want %v", p, fi.ModTime(), old)
		}
	}
	if link, err := os.Readlink(filepath.Join(dst, "link")); err != nil || link != "00/a-d" {
		t.Errorf("link reads %q, %v", link, err)
	}

	// A fill into a warm mount: its own files stay, the others come.
	warm := t.TempDir()
	write(t, filepath.Join(warm, "00", "a-d"), "newer output a", 0o644, time.Now())
	write(t, filepath.Join(warm, "02", "c-d"), "output c", 0o644, time.Now())
	stats, err = Copy(src, warm, true)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != 2 || stats.Kept != 1 {
		t.Errorf("the fill copied %d files and kept %d, want 2 and 1", stats.Files, stats.Kept)
	}
	for p, want := range map[string]string{"00/a-d": "newer output a", "02/c-d": "output c", "01/b-a": "action b", "trim.txt": "1577934245"} {
		if got := read(t, filepath.Join(warm, p)); got != want {
			t.Errorf("after the fill, %s holds %q, want %q", p, got, want)
		}
	}
}
