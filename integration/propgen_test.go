package integration

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// propTree is the random app tree of TestPatchProperty, laid out on disk
// (the disk is the model: the test reads it back to know what to expect).
// Every random choice comes from r, so a seed replays the same steps.
type propTree struct {
	t         *testing.T
	r         *rand.Rand
	root      string          // the tree's root: the context, or a directory of it
	rootInCtx string          // root relative to the context root
	keep      map[string]bool // paths (relative to root) the changes leave alone
	imageDir  string          // where the image holds root ("app", or where a build put it)
	seq       int             // makes every new name unique
}

// namePieces are the awkward parts of generated names. Each name gets a
// unique number before or after its piece, so leading and trailing ones
// (" lead", "trail ", "!bang", "-dash") occur at both ends.
var namePieces = []string{
	"file", "index.js", "has space", "ünïcödé", "日本語", "emoji😀", "-dash", "--two",
	"[br]", "a[1]b", "star*", "q?", `back\slash`, "#hash", "!bang", " lead", "trail ",
	".hidden", "~tilde", "$dollar", "{brace}", "(paren)", "a+b", "semi;colon", "'quote'",
	`"dq"`, "pct%20", "x.y.z", "tab\there",
}

var fileModes = []os.FileMode{0o644, 0o644, 0o755, 0o755, 0o600, 0o700, 0o444, 0o640, 0o750,
	0o755 | os.ModeSetuid, 0o755 | os.ModeSetgid, 0o644 | os.ModeSticky}

var owners = []int{0, 1000, 65534, 12345}

func (p *propTree) name() string {
	p.seq++
	piece := namePieces[p.r.IntN(len(namePieces))]
	if p.r.IntN(2) == 0 {
		return fmt.Sprintf("%s%d", piece, p.seq)
	}
	return fmt.Sprintf("%d%s", p.seq, piece)
}

func (p *propTree) abs(rel string) string { return filepath.Join(p.root, rel) }

// content is random text or bytes; one in six is empty.
func (p *propTree) content() []byte {
	switch p.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return p.bytes(1 + p.r.IntN(64<<10))
	}
	return []byte(fmt.Sprintf("content %d of step file\n%s\n", p.r.Uint64(), strings.Repeat("x", p.r.IntN(200))))
}

func (p *propTree) bytes(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := p.r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func (p *propTree) writeFile(rel string, data []byte, mode os.FileMode) {
	t := p.t
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(p.abs(rel)), 0o755))
	require.NoError(t, os.WriteFile(p.abs(rel), data, 0o600))
	require.NoError(t, os.Chmod(p.abs(rel), mode))
}

// scan lists the tree: regular files, symlinks and directories (paths
// relative to root, in lexical order so that a seed replays).
func (p *propTree) scan() (files, links, dirs []string) {
	err := filepath.WalkDir(p.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.root, path)
		if rel == "." || p.keep[rel] {
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			links = append(links, rel)
		case d.IsDir():
			dirs = append(dirs, rel)
		default:
			files = append(files, rel)
		}
		return nil
	})
	require.NoError(p.t, err)
	return files, links, dirs
}

func (p *propTree) pick(list []string) string { return list[p.r.IntN(len(list))] }

// newPath is a fresh path: in an existing directory or the root, with up to
// depth new directories below it.
func (p *propTree) newPath(depth int) string {
	_, _, dirs := p.scan()
	parent := "."
	if len(dirs) > 0 && p.r.IntN(4) != 0 {
		parent = p.pick(dirs)
	}
	for range p.r.IntN(depth + 1) {
		parent = filepath.Join(parent, p.name())
	}
	return filepath.Join(parent, p.name())
}

func (p *propTree) addFile(depth int) string {
	rel := p.newPath(depth)
	p.writeFile(rel, p.content(), fileModes[p.r.IntN(len(fileModes))])
	return "add " + rel
}

// symlinkTarget points within the link's directory, across directories,
// outside the tree, or nowhere.
func (p *propTree) symlinkTarget(link string) string {
	files, _, dirs := p.scan()
	switch p.r.IntN(5) {
	case 0:
		return "/etc/passwd"
	case 1:
		return "missing-" + p.name()
	case 2:
		if len(dirs) > 0 {
			return p.rel(link, p.pick(dirs))
		}
	}
	if len(files) == 0 {
		return "../outside"
	}
	return p.rel(link, p.pick(files))
}

// rel is target relative to link's directory.
func (p *propTree) rel(link, target string) string {
	r, err := filepath.Rel(filepath.Dir(link), target)
	require.NoError(p.t, err)
	return r
}

func (p *propTree) addSymlink() string {
	rel := p.newPath(1)
	require.NoError(p.t, os.MkdirAll(filepath.Dir(p.abs(rel)), 0o755))
	target := p.symlinkTarget(rel)
	require.NoError(p.t, os.Symlink(target, p.abs(rel)))
	return fmt.Sprintf("symlink %s -> %s", rel, target)
}

func (p *propTree) addEmptyDir() string {
	rel := p.newPath(2)
	require.NoError(p.t, os.MkdirAll(p.abs(rel), 0o755))
	return "mkdir " + rel
}

// addIgnored adds, edits or deletes a file that .dockerignore (or, with
// suffix .tmp, APP --exclude) leaves out.
func (p *propTree) changeIgnored(suffix string) string {
	files, _, _ := p.scan()
	var ignored []string
	for _, f := range files {
		if strings.HasSuffix(f, suffix) {
			ignored = append(ignored, f)
		}
	}
	if len(ignored) > 0 && p.r.IntN(3) == 0 {
		f := p.pick(ignored)
		if p.r.IntN(2) == 0 {
			require.NoError(p.t, os.Remove(p.abs(f)))
			return "delete ignored " + f
		}
		p.writeFile(f, p.content(), 0o644)
		return "edit ignored " + f
	}
	rel := p.newPath(1) + suffix
	p.writeFile(rel, p.content(), 0o644)
	return "add ignored " + rel
}

// generate lays out the first tree: nested directories, odd names, empty
// and multi-MB files, executables, symlinks, empty directories and ignored
// files.
func (p *propTree) generate() {
	for range 6 {
		p.addEmptyDir()
	}
	for range 30 {
		p.addFile(3)
	}
	for i := range 2 {
		rel := filepath.Join(p.name(), fmt.Sprintf("big%d.bin", i))
		p.writeFile(rel, p.bytes(2<<20+p.r.IntN(3<<20)), 0o644)
	}
	for range 5 {
		p.addSymlink()
	}
	for range 2 {
		p.changeIgnored(".log")
	}
}

// change applies one random change and describes it.
func (p *propTree) change(excludeSuffix string) string {
	files, links, dirs := p.scan()
	nonDirs := append(append([]string{}, files...), links...)
	switch op := p.r.IntN(20); {
	case op == 0 && len(files) > 0: // edit, new size
		f := p.pick(files)
		st, err := os.Stat(p.abs(f))
		require.NoError(p.t, err)
		require.NoError(p.t, os.WriteFile(p.abs(f), append(p.content(), 'e'), st.Mode()))
		return "edit " + f
	case op == 1 && len(files) > 0: // edit in place, same size
		f := p.pick(files)
		dt, err := os.ReadFile(p.abs(f))
		require.NoError(p.t, err)
		if len(dt) == 0 {
			return p.addFile(1)
		}
		i := p.r.IntN(len(dt))
		dt[i] ^= 1 + byte(p.r.IntN(255))
		st, _ := os.Stat(p.abs(f))
		require.NoError(p.t, os.WriteFile(p.abs(f), dt, st.Mode()))
		return fmt.Sprintf("same-size edit of %s at %d", f, i)
	case op == 2 && len(nonDirs) > 0:
		f := p.pick(nonDirs)
		require.NoError(p.t, os.Remove(p.abs(f)))
		return "delete " + f
	case op == 3 && len(nonDirs)+len(dirs) > 0: // rename a file, link or directory
		from := p.pick(append(nonDirs, dirs...))
		to := p.newPath(1)
		if strings.HasPrefix(to, from+"/") {
			to = p.name()
		}
		require.NoError(p.t, os.MkdirAll(filepath.Dir(p.abs(to)), 0o755))
		require.NoError(p.t, os.Rename(p.abs(from), p.abs(to)))
		return fmt.Sprintf("rename %s to %s", from, to)
	case op == 4:
		return p.addFile(5)
	case op == 5 && len(files) > 0:
		f := p.pick(files)
		m := fileModes[p.r.IntN(len(fileModes))]
		require.NoError(p.t, os.Chmod(p.abs(f), m))
		return fmt.Sprintf("chmod %v %s", m, f)
	case op == 6 && len(nonDirs) > 0:
		f := p.pick(nonDirs)
		uid, gid := owners[p.r.IntN(len(owners))], owners[p.r.IntN(len(owners))]
		require.NoError(p.t, os.Lchown(p.abs(f), uid, gid))
		return fmt.Sprintf("chown %d:%d %s", uid, gid, f)
	case op == 7 && len(links) > 0:
		l := p.pick(links)
		target := p.symlinkTarget(l)
		require.NoError(p.t, os.Remove(p.abs(l)))
		require.NoError(p.t, os.Symlink(target, p.abs(l)))
		return fmt.Sprintf("retarget %s -> %s", l, target)
	case op == 8:
		return p.addSymlink()
	case op == 9:
		return p.addEmptyDir()
	case op == 10 && len(dirs) > 0:
		d := p.pick(dirs)
		require.NoError(p.t, os.RemoveAll(p.abs(d)))
		return "rm -r " + d
	case op == 11 && len(files) > 0: // a file becomes a directory
		f := p.pick(files)
		require.NoError(p.t, os.Remove(p.abs(f)))
		require.NoError(p.t, os.Mkdir(p.abs(f), 0o755))
		if p.r.IntN(2) == 0 {
			p.writeFile(filepath.Join(f, p.name()), p.content(), 0o644)
		}
		return "file to directory " + f
	case op == 12 && len(dirs) > 0: // a directory becomes a file
		d := p.pick(dirs)
		require.NoError(p.t, os.RemoveAll(p.abs(d)))
		p.writeFile(d, p.content(), 0o644)
		return "directory to file " + d
	case op == 13 && len(files) > 0: // a file becomes a symlink, or back
		f := p.pick(files)
		require.NoError(p.t, os.Remove(p.abs(f)))
		target := p.symlinkTarget(f)
		require.NoError(p.t, os.Symlink(target, p.abs(f)))
		return fmt.Sprintf("file to symlink %s -> %s", f, target)
	case op == 14:
		return p.changeIgnored(".log")
	case op == 15 && excludeSuffix != "":
		return p.changeIgnored(excludeSuffix)
	case op == 16 && len(links) > 0:
		l := p.pick(links)
		require.NoError(p.t, os.Remove(p.abs(l)))
		p.writeFile(l, p.content(), 0o755)
		return "symlink to file " + l
	case op == 17 && len(links) > 0:
		l := p.pick(links)
		require.NoError(p.t, os.Remove(p.abs(l)))
		p.writeFile(filepath.Join(l, p.name()), p.content(), 0o644)
		return "symlink to directory " + l
	case op == 19 && len(files) > 0: // one more name for a file
		f := p.pick(files)
		rel := p.newPath(1)
		require.NoError(p.t, os.MkdirAll(filepath.Dir(p.abs(rel)), 0o755))
		require.NoError(p.t, os.Link(p.abs(f), p.abs(rel)))
		return fmt.Sprintf("hard link %s to %s", rel, f)
	case op == 18 && len(dirs) > 0:
		d := p.pick(dirs)
		require.NoError(p.t, os.RemoveAll(p.abs(d)))
		target := p.symlinkTarget(d)
		require.NoError(p.t, os.Symlink(target, p.abs(d)))
		return fmt.Sprintf("directory to symlink %s -> %s", d, target)
	}
	return p.addFile(2)
}

// changeDirMetadata changes the mode (and sometimes the owner, which the
// build never sees: clients send the context as 0:0) of one of dirs.
func (p *propTree) changeDirMetadata(dirs []string) string {
	d := p.pick(dirs)
	m := []os.FileMode{0o700, 0o750, 0o775, 0o755 | os.ModeSetgid}[p.r.IntN(4)]
	require.NoError(p.t, os.Chmod(p.abs(d), m))
	if p.r.IntN(2) == 0 {
		uid := owners[1+p.r.IntN(len(owners)-1)]
		require.NoError(p.t, os.Lchown(p.abs(d), uid, uid))
		return fmt.Sprintf("chmod %v and chown %d directory %s", m, uid, d)
	}
	return fmt.Sprintf("chmod %v directory %s", m, d)
}

// unshippable puts at a new path a file that no build may ship: a named
// pipe, a character device, or a file whose name is not UTF-8. It returns
// the path and what the builds' error must say.
func (p *propTree) unshippable() (rel, refusal string) {
	rel = p.newPath(1)
	require.NoError(p.t, os.MkdirAll(filepath.Dir(p.abs(rel)), 0o755))
	inCtx := filepath.ToSlash(filepath.Join(p.rootInCtx, rel))
	switch p.r.IntN(3) {
	case 0:
		require.NoError(p.t, syscall.Mkfifo(p.abs(rel), 0o644))
		return rel, fmt.Sprintf("APP would ship %q, a named pipe", inCtx)
	case 1:
		require.NoError(p.t, syscall.Mknod(p.abs(rel), syscall.S_IFCHR|0o644, 1<<8|3 /* 1,3: what /dev/null is */))
		return rel, fmt.Sprintf("APP would ship %q, a character device", inCtx)
	}
	rel = filepath.Join(filepath.Dir(rel), "bad\xff"+filepath.Base(rel))
	require.NoError(p.t, os.WriteFile(p.abs(rel), []byte("x"), 0o644))
	return rel, "is not valid UTF-8, which BuildKit's gateway cannot carry"
}
