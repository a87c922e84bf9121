package convert

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	pllb "github.com/patchfile/patchfile/llb"
)

// patchLayer returns the release with exactly one layer on top: the
// difference between the release's app tree and the new one, computed
// without reading any release layer (zero-pull). It needs MergeOp and
// DiffOp (mergeDiffPlan).
//
// Diff(lower, upper) with upper built on lower is exported from the
// overlay upper directory: precisely the entries the file operation wrote,
// whiteouts for what it removed, and the parents of both. So lower holds
// only what the change touches, rebuilt from the context and the release's
// file list: the APP destination, the existing parents of every change
// (copied from the context: unchanged directories have the release's
// metadata), and a placeholder for every path that goes away. Upper is
// patchActions on lower.
//
// A directory of the release whose mode or owner changed is in lower with
// the release's metadata (cs.DirsBefore), copied from the context with
// that mode and owner, so that upper's copy of it differs and the layer
// carries its new metadata.
//
// Precondition (checked by decide): APP copies into a directory, and cs
// knows where each of its entries comes from in the context (appFileList).
func patchLayer(release llb.State, spec AppSpec, appCtx llb.State, cs *filelist.ChangeSet, name string, opts ...llb.ConstraintsOpt) llb.State {
	lowerSt, upperSt := patchTrees(spec, appCtx, cs, name, opts...)
	named := append([]llb.ConstraintsOpt{llb.WithCustomName(name)}, opts...)
	return llb.Merge([]llb.State{release, llb.Diff(lowerSt, upperSt, opts...)}, named...)
}

// PatchFiles is the tree the patch layer is the difference of, on an
// empty filesystem: the APP destination, the parents of the changes and
// every changed entry, with the patch's own metadata; no release file.
// It is what an SBOM scanner reads of a patch (frontend/sbom): the same
// operations as patchLayer's, so a builder makes them once.
func PatchFiles(spec AppSpec, appCtx llb.State, cs *filelist.ChangeSet, name string, opts ...llb.ConstraintsOpt) llb.State {
	_, upperSt := patchTrees(spec, appCtx, cs, name, opts...)
	return upperSt
}

// patchTrees are patchLayer's lower and upper trees.
func patchTrees(spec AppSpec, appCtx llb.State, cs *filelist.ChangeSet, name string, opts ...llb.ConstraintsOpt) (lowerSt, upperSt llb.State) {
	dest := spec.Dest
	inDest := func(p string) string { return path.Join(dest, p) }
	inCtx := func(p string) string { return path.Join("/", cs.Source(p)) }

	rootInfo := pllb.PinnedCopy()
	rootInfo.CopyDirContentsOnly = true
	rootInfo.CreateDestPath = true
	rootInfo.ChownOpt, rootInfo.Mode = spec.chown, spec.chmod
	// The destination itself, made the way the full build makes it.
	lower := llb.Copy(llb.Scratch(), "/", dest, rootInfo)
	for _, p := range lowerDirs(cs) {
		info := pllb.CopyDirOnly()
		info.ChownOpt, info.Mode = spec.chown, spec.chmod
		info.ExcludePatterns = spec.withDirsKey(info.ExcludePatterns)
		if before, ok := cs.DirsBefore[p]; ok {
			info.Mode = &llb.ChmodOpt{Mode: before.Mode}
			info.ChownOpt = &llb.ChownOpt{User: &llb.UserOpt{UID: int(before.UID)}, Group: &llb.UserOpt{UID: int(before.GID)}}
		}
		lower = lower.Copy(appCtx, inCtx(p), inDest(p), info)
	}
	for _, e := range cs.Deleted {
		if e.Type == filelist.TypeDir {
			lower = lower.Mkdir(inDest(e.Path), 0o755)
		} else {
			lower = lower.Mkfile(inDest(e.Path), 0o644, nil)
		}
	}
	lowerSt = llb.Scratch().File(lower, append([]llb.ConstraintsOpt{dockerui.WithInternalName("patch: the release's tree around the changes")}, opts...)...)
	named := append([]llb.ConstraintsOpt{llb.WithCustomName(name)}, opts...)
	return lowerSt, lowerSt.File(patchActions(spec, appCtx, cs), named...)
}

// patchActions turns a tree that holds the release's app tree (or the
// part of it around the changes) into the new one: it removes what was
// deleted, copies each changed entry with the full build's own copy
// options (directories by themselves, then their entries), and re-pins
// the mtimes of every directory it touched, so that the directories of
// the layer carry the release's metadata. A changed file or symlink is
// removed before it is copied: a removal takes a symlink itself, where a
// copy onto it would follow it.
func patchActions(spec AppSpec, appCtx llb.State, cs *filelist.ChangeSet) *llb.FileAction {
	dest := spec.Dest
	inDest := func(p string) string { return path.Join(dest, p) }
	inCtx := func(p string) string { return path.Join("/", cs.Source(p)) }

	var fa *llb.FileAction // a nil action starts the chain
	for _, e := range cs.Deleted {
		fa = fa.Rm(inDest(e.Path), llb.WithAllowNotFound(true))
	}
	// Each changed entry by its exact path, parents first (Changed is sorted
	// by path): no pattern matching over the whole context, and any name.
	var created []string
	for _, e := range cs.Changed {
		info := pllb.PinnedCopy()
		if e.Type == filelist.TypeDir {
			info = pllb.CopyDirOnly()
			info.ExcludePatterns = spec.withDirsKey(info.ExcludePatterns)
			created = append(created, e.Path)
		}
		info.ChownOpt, info.Mode = spec.chown, spec.chmod
		from, to := inCtx(e.Path), inDest(e.Path)
		if _, existed := cs.DirsBefore[e.Path]; existed {
			// A copy onto a directory that is there lands inside it, and
			// one of its contents leaves its own metadata alone: copy the
			// parent's contents, this directory only, which the copy
			// overwrites as it does every entry below its root.
			base := escapePattern(path.Base(e.Path))
			info.CopyDirContentsOnly = true
			info.IncludePatterns = []string{base}
			info.ExcludePatterns = spec.withDirsKey([]string{base + "/*"})
			from, to = path.Dir(from), inDest(path.Dir(e.Path))
		}
		if e.Type != filelist.TypeDir {
			// A copy resolves symlinks in its destination: onto the
			// release's symlink, it would write where the link points.
			fa = fa.Rm(to, llb.WithAllowNotFound(true))
		}
		fa = fa.Copy(appCtx, from, to, info)
	}
	// Adding and removing entries bumped their parents' mtimes.
	for _, p := range append(append([]string{"."}, existingParents(cs)...), created...) {
		fa = pllb.AddRepinDir(fa, inDest(p))
	}
	return fa
}

// lowerDirs are the directories a patch's lower tree holds, parents
// first: those that hold a change, and those whose metadata changed.
func lowerDirs(cs *filelist.ChangeSet) []string {
	dirs := existingParents(cs)
	for p := range cs.DirsBefore {
		if !slices.Contains(dirs, p) {
			dirs = append(dirs, p)
		}
	}
	sort.Strings(dirs)
	return dirs
}

// existingParents returns the directories (relative to the APP destination,
// parents first) that hold a change and were already in the release.
func existingParents(cs *filelist.ChangeSet) []string {
	created := map[string]bool{}
	for _, e := range cs.Changed {
		if _, existed := cs.DirsBefore[e.Path]; e.Type == filelist.TypeDir && !existed {
			created[e.Path] = true
		}
	}
	set := map[string]bool{}
	add := func(p string) {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if !created[d] {
				set[d] = true
			}
		}
	}
	for _, e := range cs.Changed {
		add(e.Path)
	}
	for _, e := range cs.Deleted {
		add(e.Path)
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// escapePattern makes a file name a copy pattern that matches it alone,
// as fsutil's copy reads patterns (moby/patternmatcher): glob characters
// and a leading "!" escaped. Patterns are trimmed of white space, so a
// leading or trailing one becomes "?", which may match a sibling too: a
// sibling copied from the context lands as the full build has it.
func escapePattern(name string) string {
	// The bytes of name before start and from end on are blanks that
	// trimming would drop.
	start := len(name) - len(strings.TrimLeftFunc(name, unicode.IsSpace))
	end := len(strings.TrimRightFunc(name, unicode.IsSpace))
	var b strings.Builder
	for i, r := range name {
		switch {
		case i < start || i >= end:
			b.WriteByte('?')
			continue
		case strings.ContainsRune(`*?[]\`, r), r == '!' && i == 0:
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PatchImage is the config of a patch: the new Patchfile's config on the
// release's layers, with one history entry for the patch layer.
func PatchImage(img *dockerspec.DockerOCIImage, rel *decide.Release, cs *filelist.ChangeSet, epoch *time.Time) *dockerspec.DockerOCIImage {
	out := *img
	out.Config.Labels = maps.Clone(img.Config.Labels)
	out.Config.Labels[decide.LabelRelease] = rel.Digest.String()
	// A patch carries no cache: its release did (decide.LabelCarry).
	delete(out.Config.Labels, decide.LabelCarry)
	out.RootFS = ocispecs.RootFS{Type: "layers", DiffIDs: slices.Clone(rel.Image.RootFS.DiffIDs)}
	out.History = slices.Clone(rel.Image.History)
	if !cs.Empty() {
		t := imageTime(epoch)
		out.History = append(out.History, ocispecs.History{
			Created:   &t,
			CreatedBy: fmt.Sprintf("APP patch: %d changed, %d deleted", len(cs.Changed), len(cs.Deleted)),
			Comment:   historyComment,
		})
	}
	return &out
}
