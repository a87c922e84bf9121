package carry

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

const (
	// CopyCommand is the frontend binary's subcommand that copies a cache
	// mount into the step's output (`patchfile-frontend carry-copy <src>
	// <dst>`): what a release carries.
	CopyCommand = "carry-copy"
	// RunCommand fills cache mounts from carried trees, then runs a
	// build command in its place (`patchfile-frontend carry-run
	// <tree>=<mount>... -- <command>...`): how a build starts from the
	// caches its release carried.
	RunCommand = "carry-run"
)

// Copy copies the tree at src into the directory dst: directories,
// regular files and symbolic links, with their mode, owner and
// modification time (compilers' caches trim by time), dst's own included.
// With keepExisting, an entry dst holds already is left as it is: a cache
// mount that is warm keeps its files, and only what it lacks comes from
// src. Other file types (sockets, devices) are skipped: no compiler cache
// holds them.
func Copy(src, dst string, keepExisting bool) (Stats, error) {
	var stats Stats
	type dirTime struct {
		path string
		fi   fs.FileInfo
	}
	var dirs []dirTime // set after their contents, which change them
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		_, statErr := os.Lstat(target)
		exists := statErr == nil
		switch {
		case d.IsDir():
			if !exists {
				if err := os.Mkdir(target, 0o700); err != nil {
					return err
				}
			} else if keepExisting && rel != "." {
				return nil // descend, keeping what is there
			}
			dirs = append(dirs, dirTime{target, fi})
			return nil
		case exists && keepExisting:
			stats.Kept++
			return nil
		case fi.Mode().IsRegular():
			if err := copyFile(p, target, fi); err != nil {
				return err
			}
			stats.Files++
			stats.Bytes += fi.Size()
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if exists {
				if err := os.Remove(target); err != nil {
					return err
				}
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		default:
			return nil
		}
		return setMeta(target, fi)
	})
	if err != nil {
		return stats, errors.Wrap(err, "copying the cache")
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setMeta(dirs[i].path, dirs[i].fi); err != nil {
			return stats, errors.Wrap(err, "copying the cache")
		}
	}
	return stats, nil
}

// Stats counts what a Copy did: the regular files it copied and their
// bytes, and the entries it kept.
type Stats struct {
	Files, Kept int
	Bytes       int64
}

// String says it in the step's output, where the progress shows it.
func (s Stats) String() string {
	msg := fmt.Sprintf("copied %d files, %.1f MB", s.Files, float64(s.Bytes)/1e6)
	if s.Kept > 0 {
		msg += fmt.Sprintf("; kept %d the cache holds already", s.Kept)
	}
	return msg
}

func copyFile(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// setMeta gives p the owner, mode and modification time fi has (a
// symbolic link its owner and time only).
func setMeta(p string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		// A build step that runs as another user than root copies as
		// that user: its files are its own.
		if err := os.Lchown(p, int(st.Uid), int(st.Gid)); err != nil && !(errors.Is(err, syscall.EPERM) && os.Geteuid() != 0) {
			return err
		}
	}
	mtime := fi.ModTime()
	if fi.Mode()&fs.ModeSymlink != 0 {
		ts := unix.NsecToTimespec(mtime.UnixNano())
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err := os.Chmod(p, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(p, time.Time{}, mtime)
}

// Run fills each cache mount of fills (tree=mount) from its tree, keeping
// what the mount holds already, says what it copied on standard error,
// and then runs command in its place (the process's environment, its PATH
// included, is the step's): the build step's own command, in the build
// step's own container, so that the fill happens exactly when the build
// runs.
func Run(fills []string, command []string) error {
	for _, f := range fills {
		tree, mount, ok := strings.Cut(f, "=")
		if !ok {
			return errors.Errorf("carry-run: %q is not <tree>=<mount>", f)
		}
		stats, err := Copy(tree, mount, true)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "CARRY %s: %s\n", mount, stats)
	}
	if len(command) == 0 {
		return errors.New("carry-run: no command to run")
	}
	bin, err := exec.LookPath(command[0])
	if err != nil {
		return err
	}
	return syscall.Exec(bin, command, os.Environ())
}
