package convert

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/patchfile"
	pllb "github.com/patchfile/patchfile/llb"
	"github.com/pkg/errors"
)

// AppSpec is a resolved APP instruction.
type AppSpec struct {
	// Sources are paths or wildcards relative to the context root.
	Sources []string
	// Dest is absolute; it ends in "/" when it names a directory.
	Dest     string
	Chown    string
	Chmod    string
	Excludes []string
	// From is the build stage the files come from (APP --from), "" for the
	// build context. Sources are then paths of the stage's filesystem.
	// After loadOutputs, Sources is ["."] of the outputs' tree.
	From string

	chown *llb.ChownOpt
	chmod *llb.ChmodOpt
	// dirsKey is added to the exclude patterns of every copy that lands
	// directories: see dirsKey.
	dirsKey string
	// waits are states the tree's copy waits for, copying nothing of them
	// (pllb.AddWait): a full build's carry steps.
	waits []llb.State
}

// Hash identifies how app files land: where, with which owner and mode.
// Which files are shipped is not part of it: patches handle that. Nor is
// where they come from (the context, or a build stage with --from): a
// patch compares the shipped files by content, whatever made them.
func (a AppSpec) Hash() digest.Digest {
	h := sha256.New()
	fmt.Fprintf(h, "patchfile app v1\ndest %q\nchown %q\nchmod %q\n", a.Dest, a.Chown, a.Chmod)
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
}

// Tree returns the app files on an empty filesystem, every entry with the
// pinned time so equal files give equal layers on any builder.
func (a AppSpec) Tree(appContext llb.State, opts ...llb.ConstraintsOpt) llb.State {
	var action *llb.FileAction
	for _, src := range a.Sources {
		info := pllb.PinnedCopy()
		info.CopyDirContentsOnly = true
		info.AllowWildcard = true
		info.CreateDestPath = true
		info.ExcludePatterns = a.withDirsKey(a.Excludes)
		info.ChownOpt, info.Mode = a.chown, a.chmod
		action = action.Copy(appContext, "/"+src, a.Dest, info) // a nil action starts the chain
	}
	for _, st := range a.waits {
		action = pllb.AddWait(action, st)
	}
	if len(a.Sources) > 1 {
		// Each copy after the first adds entries to the destination,
		// which bumps its time to the build's: pin it again, or the layer
		// would differ from one build to the next.
		action = pllb.AddRepinDir(action, a.Dest)
	}
	opts = append([]llb.ConstraintsOpt{llb.WithCustomName(fmt.Sprintf("[app] copy %s to %s", strings.Join(a.Sources, " "), a.Dest))}, opts...)
	return llb.Scratch().File(action, opts...)
}

// resolveApp resolves the APP instruction: sources, destination, owner
// and mode, and the context patterns to load (none for the whole context).
func (c *converter) resolveApp() (AppSpec, []string, error) {
	inst := c.stage.App
	spec := AppSpec{From: inst.From}
	var err error
	if spec.Sources, spec.Excludes, err = appSources(inst, c.expand); err != nil {
		return spec, nil, err
	}
	dest, err := c.expand(inst.Dest)
	if err != nil {
		return spec, nil, err
	}
	isDir := strings.HasSuffix(dest, "/") || len(spec.Sources) > 1 || spec.Sources[0] == "."
	if !path.IsAbs(dest) {
		dest = path.Join("/", c.image.Config.WorkingDir, dest)
	}
	dest = path.Clean(dest)
	if dest == "/" {
		return spec, nil, errors.New("APP to / would mix application files with the whole system: pick a directory such as /app")
	}
	if isDir {
		dest += "/"
	}
	spec.Dest = dest
	spec.Chown, spec.Chmod = inst.Chown, inst.Chmod
	if spec.chown, spec.chmod, err = c.copyOwnership(inst.Chown, inst.Chmod, false); err != nil {
		return spec, nil, err
	}
	return spec, appPatterns(spec.Sources), nil
}

// appSources expands an APP's sources and excludes. A source is a context
// path, or with --from a path of the build stage's filesystem relative to
// its root as in COPY --from ("/src/dist" and "src/dist" are the same).
func appSources(inst *patchfile.AppInstruction, expand func(string) (string, error)) (sources, excludes []string, err error) {
	for _, src := range inst.Sources {
		p, err := expand(src)
		if err != nil {
			return nil, nil, err
		}
		if inst.From != "" {
			if p = path.Clean("/" + p)[1:]; p == "" {
				p = "."
			}
		} else if p, err = ContextPath(p); err != nil {
			return nil, nil, errors.Wrap(err, "APP")
		}
		sources = append(sources, p)
	}
	for _, e := range inst.Excludes {
		e, err := expand(e)
		if err != nil {
			return nil, nil, err
		}
		excludes = append(excludes, e)
	}
	return sources, excludes, nil
}

// appPatterns are the context patterns APP loads for its sources: none
// (the whole context) when one is the context root.
func appPatterns(sources []string) []string {
	if slices.Contains(sources, ".") {
		return nil
	}
	return sources
}

// LiteralAppPatterns returns the context patterns APP (contextApp) will load, as
// resolveApp makes them, when its sources are literal paths: no variable,
// quote or escape, which only the conversion can resolve. A build starts
// loading and hashing them with them before it converts the rest.
func LiteralAppPatterns(pf *patchfile.File) ([]string, bool) {
	app := contextApp(pf)
	if app == nil {
		return nil, false
	}
	var sources []string
	for _, src := range app.Sources {
		if strings.ContainsAny(src, "$'\"") || strings.ContainsRune(src, pf.Escape) {
			return nil, false
		}
		p, err := ContextPath(src)
		if err != nil {
			return nil, false
		}
		sources = append(sources, p)
	}
	return appPatterns(sources), true
}

// contextApp is the APP whose sources are the app files of the build
// context: the final stage's, or, when it ships a build's outputs, the
// build stage's (nil if it has none).
func contextApp(pf *patchfile.File) *patchfile.AppInstruction {
	switch {
	case pf.App == nil:
		return nil
	case pf.App.From == "":
		return pf.App
	case pf.BuildStage(pf.App.From) != nil:
		return pf.BuildStage(pf.App.From).App
	}
	return nil
}

// AppContextName names the app files' context (ContextSource.Files).
const AppContextName = "application files"

// loadApp loads the context an APP instruction reads. The files are read
// (and hashed) from the very state the copy uses.
func (c *converter) loadApp(ctx context.Context, spec *AppSpec, patterns []string) (llb.State, []buildcontext.File, error) {
	st, files, err := c.opt.Context.Files(ctx, AppContextName, patterns)
	if err != nil {
		return llb.State{}, nil, err
	}
	for _, p := range patterns {
		if !AnyMatch(p, files) {
			return llb.State{}, nil, errors.Errorf("APP %s matches no file in the build context: check the path (relative to the context root, also when it starts with /) and that .dockerignore does not exclude it", p)
		}
	}
	if err := refuseSpecialFiles(files, *spec); err != nil {
		return llb.State{}, nil, err
	}
	spec.dirsKey = dirsKey(files)
	return st, files, nil
}

// appShips returns whether APP's copy ships a path (relative to its
// source): whether --exclude leaves it in.
func appShips(spec AppSpec) (func(rel string) bool, error) {
	if len(spec.Excludes) == 0 {
		return func(string) bool { return true }, nil
	}
	excludes, err := patternmatcher.New(spec.Excludes)
	if err != nil {
		return nil, errors.Wrap(err, "APP --exclude")
	}
	return func(rel string) bool {
		ex, _ := excludes.MatchesOrParentMatches(rel)
		return !ex
	}, nil
}

// refuseSpecialFiles fails when APP would ship a named pipe, a socket or
// a device. A full build's copy recreates one; a patch layer, made from
// the file list, cannot (the list holds files, directories and symlinks),
// and a patch that left one behind would differ from the full build. So
// both refuse, before any step runs, and say how to leave it out.
func refuseSpecialFiles(files []buildcontext.File, spec AppSpec) error {
	return appLandings(files, spec, func(rel string, f *buildcontext.File) error {
		if kind := specialKind(f.Mode); kind != "" && spec.From != "" {
			return errors.Errorf("APP --from=%s would ship %q, a %s, which a patch cannot carry: leave it out with APP --exclude, or remove it in the build", spec.From, f.Path, kind)
		} else if kind != "" {
			return errors.Errorf("APP would ship %q, a %s, which a patch cannot carry: remove it from the build context, or leave it out with .dockerignore or APP --exclude=%s", f.Path, kind, rel)
		}
		return nil
	})
}

// specialKind names a file type that is not a regular file, a directory
// or a symlink, or returns "".
func specialKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	case m&os.ModeIrregular != 0:
		return "special file"
	}
	return ""
}

// dirsKey is an exclude pattern that matches nothing (copy sources are
// relative paths, never under "..") and names a digest of the directories
// read from the context: their paths, modes and owners.
//
// BuildKit keys a copy by the content checksums of its sources, and a warm
// builder's checksum of a directory whose mode or owner changed since the
// previous build is stale: fsutil's DiskWriter rewrites an existing
// directory's metadata without telling the checksum cache
// (moby/buildkit#7176). A copy would then come from the cache with the old
// mode while the file list, read from the synced context, records the new
// one. With this pattern in their definition, copies that land directories
// re-run whenever a directory's metadata changed, and only then.
func dirsKey(files []buildcontext.File) string {
	h := sha256.New()
	for _, f := range files {
		if f.Mode.IsDir() {
			fmt.Fprintf(h, "%q %o %d %d\n", f.Path, uint32(f.Mode), f.UID, f.GID)
		}
	}
	return fmt.Sprintf("../patchfile-dirs-%x", h.Sum(nil))
}

// withDirsKey returns patterns plus dirsKey, if set.
func (a AppSpec) withDirsKey(patterns []string) []string {
	if a.dirsKey == "" {
		return patterns
	}
	return append(slices.Clip(patterns), a.dirsKey)
}

// copyOwnership parses --chown and --chmod. byName allows user and group
// names, looked up in the stage; APP lands on an empty layer where there is
// no /etc/passwd, so it takes numbers.
func (c *converter) copyOwnership(chown, chmod string, byName bool) (*llb.ChownOpt, *llb.ChmodOpt, error) {
	var own *llb.ChownOpt
	if chown != "" {
		chown, err := c.expand(chown)
		if err != nil {
			return nil, nil, err
		}
		uid, gid, numeric := numericOwner(chown)
		switch {
		case numeric:
			own = &llb.ChownOpt{User: &llb.UserOpt{UID: uid}, Group: &llb.UserOpt{UID: gid}}
		case byName:
			var info llb.CopyInfo
			llb.WithUser(chown).SetCopyOption(&info)
			own = info.ChownOpt
		default:
			return nil, nil, errors.Errorf("--chown=%s: APP files land on a layer of their own where names cannot be looked up; write numbers, e.g. --chown=1000:1000", chown)
		}
	}
	var mode *llb.ChmodOpt
	if chmod != "" {
		m, err := strconv.ParseUint(chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return nil, nil, errors.Errorf("--chmod=%s is not an octal mode: write e.g. --chmod=0644 or --chmod=0755", chmod)
		}
		mode = &llb.ChmodOpt{Mode: os.FileMode(m)}
	}
	return own, mode, nil
}

// numericOwner parses "uid" or "uid:gid".
func numericOwner(s string) (int, int, bool) {
	u, g, hasGroup := strings.Cut(s, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return 0, 0, false
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0, false
		}
	}
	return uid, gid, true
}
