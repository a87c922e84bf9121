package convert

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/pkg/errors"
)

// appTree is a build's app tree as a file list, or why it cannot be
// patched (then the list is nil).
func appTree(spec AppSpec, files []buildcontext.File) (*filelist.List, string, error) {
	if why := unpatchableApp(spec); why != "" {
		return nil, why, nil
	}
	m, err := appFileList(files, spec)
	var u unpatchableError
	if errors.As(err, &u) {
		return nil, u.Error(), nil
	}
	return m, "", err
}

// unpatchableApp says why an APP instruction cannot be patched, or "".
func unpatchableApp(spec AppSpec) string {
	switch {
	case !strings.HasSuffix(spec.Dest, "/"):
		return "patch builds need APP to copy into a directory: end its destination with /, e.g. APP . /app/"
	}
	return ""
}

// appFileList computes the app tree as the full build lands it: each
// source in order (a directory's contents, a file or symlink by its name,
// every match of a wildcard), minus --exclude, later sources over earlier
// ones as BuildKit's copies land them. It records where each entry comes
// from in the context (filelist.List.Origins), for the patch's copies. A shape
// whose landing it cannot predict exactly is an unpatchableError.
func appFileList(files []buildcontext.File, spec AppSpec) (*filelist.List, error) {
	uid, gid, chown := numericOwner(spec.Chown)
	// Every landing in order, then sorted by path and cut to the last at
	// each path: a slice and one sort, not a map per entry (a 100,000-file
	// app spent 0.3 s in maps and growing slices here).
	type landing struct {
		entry  filelist.Entry
		origin string
	}
	landings := make([]landing, 0, len(files))
	err := appLandings(files, spec, func(rel string, f *buildcontext.File) error {
		e := filelist.Entry{Path: rel, Mode: f.Mode & filelist.ModeBits, UID: f.UID, GID: f.GID}
		if spec.chmod != nil && f.Mode&os.ModeSymlink == 0 {
			// --chmod sets the mode of every file and directory it copies.
			e.Mode = spec.chmod.Mode
		}
		if spec.Chown != "" && chown {
			e.UID, e.GID = uint32(uid), uint32(gid)
		}
		switch {
		case f.Mode.IsDir():
			e.Type = filelist.TypeDir
		case f.Mode&os.ModeSymlink != 0:
			e.Type, e.Linkname = filelist.TypeSymlink, f.Linkname
		default:
			e.Type, e.Size, e.Digest = filelist.TypeFile, f.Size, f.SHA256
		}
		landings = append(landings, landing{e, f.Path})
		return nil
	})
	if err != nil {
		return nil, err
	}
	byPath := func(a, b landing) int { return strings.Compare(a.entry.Path, b.entry.Path) }
	if !slices.IsSortedFunc(landings, byPath) {
		// Stable: the landings at one path keep the order they land in.
		slices.SortStableFunc(landings, byPath)
	}
	m := &filelist.List{Entries: make([]filelist.Entry, 0, len(landings)), Origins: make(map[string]string, len(landings))}
	for i, l := range landings {
		if i+1 < len(landings) && landings[i+1].entry.Path == l.entry.Path {
			// A later copy lands over this one: it must be of the same
			// kind, as BuildKit's copy merges a directory into a directory
			// and replaces a file with a file.
			if (l.entry.Type == filelist.TypeDir) != (landings[i+1].entry.Type == filelist.TypeDir) {
				return nil, unpatchableError(fmt.Sprintf("APP sources put a directory and a file at %s", l.entry.Path))
			}
			continue
		}
		m.Entries = append(m.Entries, l.entry)
		m.Origins[l.entry.Path] = l.origin
	}
	return m, nil
}

// appLandings calls land for every context entry APP ships, in the order
// the full build's copies land them, with its path under the destination:
// each source in turn, a directory's entries (those --exclude leaves in,
// matched relative to the directory), a file or symlink by its name (a
// file source is never excluded: measured on BuildKit v0.33.1, APP
// --exclude=*.md README.md docs/ ships README.md, not docs/a.md), every
// match of a wildcard. land must not keep the *File.
func appLandings(files []buildcontext.File, spec AppSpec, land func(rel string, f *buildcontext.File) error) error {
	shipped, err := appShips(spec)
	if err != nil {
		return err
	}
	var byPath map[string]int // built when a source is not the whole context
	for _, src := range spec.Sources {
		matches := []string{"."}
		if path.Clean(src) != "." {
			if byPath == nil {
				byPath = make(map[string]int, len(files))
				for i := range files {
					byPath[files[i].Path] = i
				}
			}
			matches = sourceMatches(src, files, byPath)
		}
		for _, m := range matches {
			if m != "." && !files[byPath[m]].Mode.IsDir() {
				if err := land(path.Base(m), &files[byPath[m]]); err != nil {
					return err
				}
				continue
			}
			for i := range files {
				f := &files[i]
				rel, ok := f.Path, m == "."
				if !ok {
					rel, ok = strings.CutPrefix(f.Path, m+"/")
				}
				if !ok || !shipped(rel) {
					continue
				}
				if err := land(rel, f); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sourceMatches returns the context paths an APP source names: "." for
// the context root, the path itself, or a wildcard's matches (each path
// component matched on its own, as BuildKit resolves them).
func sourceMatches(src string, files []buildcontext.File, byPath map[string]int) []string {
	src = path.Clean(src)
	if src == "." {
		return []string{"."}
	}
	if !strings.ContainsAny(src, "*?[\\") {
		if _, ok := byPath[src]; ok {
			return []string{src}
		}
		return nil
	}
	var out []string
	depth := strings.Count(src, "/")
	for _, f := range files {
		if strings.Count(f.Path, "/") != depth {
			continue
		}
		if ok, _ := path.Match(src, f.Path); ok {
			out = append(out, f.Path)
		}
	}
	return out
}

// unpatchableError says why an app tree cannot be patched: its build is a
// full one, with this reason.
type unpatchableError string

func (e unpatchableError) Error() string { return string(e) }
