package decide

import (
	"fmt"
	"strconv"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/pkg/errors"
)

const (
	// KeyPatchMaxShare is the build arg that sets the re-release rule:
	// when a patch would carry more than this percentage of the app tree's
	// bytes, the build is a full one (a new release) instead. 0 means never
	// patch: release pipelines build with it.
	KeyPatchMaxShare       = "PATCH_MAX_SHARE"
	defaultPatchMaxPercent = 50
)

// MaxShare reads PATCH_MAX_SHARE from the build args (default 50).
func MaxShare(args map[string]string) (int, error) {
	v, ok := args[KeyPatchMaxShare]
	if !ok || v == "" {
		return defaultPatchMaxPercent, nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
	if err != nil || n < 0 || n > 100 {
		return 0, errors.Errorf("%s=%s is not a percentage from 0 to 100", KeyPatchMaxShare, v)
	}
	return n, nil
}

// Build is what the decision knows of the build: what it is made of, its
// candidates, and its app tree.
type Build struct {
	Identity Identity
	Platform ocispecs.Platform
	// PatchRefs are the PATCH candidates, expanded, in order.
	// PatchDisabled is set when --build-arg PATCH= turned patching off.
	PatchRefs     []string
	PatchDisabled bool
	// App is the build's app tree; nil when the APP form cannot be
	// patched, and AppUnpatchable says why.
	App            *filelist.List
	AppUnpatchable string
	// MaxShare is PATCH_MAX_SHARE (see MaxShare).
	MaxShare int
	// OnUnreachable is PATCH_ON_UNREACHABLE (see OnUnreachable).
	OnUnreachable string
}

// KeyOnUnreachable is the build arg that says what a build does when no
// candidate is patched and one could not be read (a registry down, timing
// out, refusing the credentials): stop, or build in full.
const KeyOnUnreachable = "PATCH_ON_UNREACHABLE"

const (
	// OnUnreachableFail, the default, stops the build: a registry hiccup
	// must not silently turn a one-second patch into a full dependency
	// install and a whole new app layer.
	OnUnreachableFail = "fail"
	// OnUnreachableFull builds in full, with a warning, as a build
	// without a usable candidate does.
	OnUnreachableFull = "full"
)

// OnUnreachable reads PATCH_ON_UNREACHABLE.
func OnUnreachable(args map[string]string) (string, error) {
	switch v := args[KeyOnUnreachable]; v {
	case "", OnUnreachableFail:
		return OnUnreachableFail, nil
	case OnUnreachableFull:
		return v, nil
	default:
		return "", errors.Errorf("%s=%s: write %s=%s (stop when a candidate cannot be read, the default) or %s=%s (build in full)",
			KeyOnUnreachable, v, KeyOnUnreachable, OnUnreachableFail, KeyOnUnreachable, OnUnreachableFull)
	}
}

// Resolve reads the candidate at ref: the Release it stands for, or why
// there is none. Decide calls it in the order of the candidates and stops
// at the first it patches; the caller does the I/O (and may memoize it).
type Resolve func(ref string) (*Release, *Reason)

// Decision is the path a build takes and why.
type Decision struct {
	// Release and Changes are set for a patch build.
	Release *Release
	Changes *filelist.ChangeSet
	// Reasons say why a build is a full one: each candidate's, in order,
	// or the build's own.
	Reasons []*Reason
	// DepsFrom is, for a full build, a release whose dependency stage is
	// this build's (same dependency hash): its build cache, when it has
	// one, saves running the stage again (see DepsReuse).
	DepsFrom *Release
}

// Decide picks a patch build or a full build. It tries the candidates in
// order and patches the first that matches. For a full build it also
// names the first candidate whose dependency stage is this build's, which
// may spare running the stage.
func Decide(b Build, resolve Resolve) *Decision {
	if b.PatchDisabled {
		return &Decision{Reasons: []*Reason{Because(PatchDisabled)}}
	}
	if len(b.PatchRefs) == 0 {
		return &Decision{Reasons: []*Reason{Because(NoCandidate)}}
	}
	full := &Decision{}
	for _, ref := range b.PatchRefs {
		rel, why := resolve(ref)
		if rel == nil {
			full.Reasons = append(full.Reasons, why)
			continue
		}
		if full.DepsFrom == nil && b.sameDeps(rel) {
			full.DepsFrom = rel
		}
		if b.App == nil {
			if full.DepsFrom != nil {
				break
			}
			continue
		}
		if why := b.mismatch(rel); why != nil {
			full.Reasons = append(full.Reasons, why)
			continue
		}
		cs := filelist.Changes(rel.Files, b.App)
		if why := tooBigToPatch(rel, cs, b.App.TotalSize(), b.MaxShare); why != nil {
			return &Decision{Reasons: []*Reason{why}, DepsFrom: rel}
		}
		return &Decision{Release: rel, Changes: cs}
	}
	if b.App == nil {
		full.Reasons = []*Reason{Because(AppUnpatchable, b.AppUnpatchable)}
	}
	return full
}

// MightPatch is what can be told before the app files are read: whether
// some candidate is of this build's platform, base, dependency stage and
// APP spec (then only the files decide), and otherwise the first release
// whose dependency stage is this build's, if any.
func MightPatch(b Build, resolve Resolve) (maybe bool, depsFrom *Release) {
	if b.PatchDisabled {
		return false, nil
	}
	for _, ref := range b.PatchRefs {
		rel, why := resolve(ref)
		if rel == nil {
			if why != nil && reasons[why.Kind].unreachable && b.stopsOnUnreachable() {
				// The build may stop (Decision.Stop): start nothing.
				return true, nil
			}
			continue
		}
		if b.identityMismatch(rel) == nil {
			return true, nil
		}
		if depsFrom == nil && b.sameDeps(rel) {
			depsFrom = rel
		}
	}
	return false, depsFrom
}

// Stop is, for a full build that must not run, the reason: no candidate
// was patched, one could not be read, and the build was not told to build
// in full then (Build.OnUnreachable). nil otherwise.
//
// A release asked for (PATCH_MAX_SHARE=0) never stops: it builds in full
// whatever its candidates hold, which it reads only to take their
// dependency stage.
func (d *Decision) Stop(b Build) *Reason {
	if d.Release != nil || !b.stopsOnUnreachable() {
		return nil
	}
	for _, r := range d.Reasons {
		if reasons[r.Kind].unreachable {
			return r
		}
	}
	return nil
}

// stopsOnUnreachable tells whether a candidate that cannot be read stops
// the build: unless told to build in full, or asked for a release.
func (b Build) stopsOnUnreachable() bool {
	return b.OnUnreachable != OnUnreachableFull && b.MaxShare != 0
}

// IsRelease tells whether a full build is a release by intent: the first
// one, or one asked for (PATCH_MAX_SHARE=0, PATCH= or no PATCH), which later
// deploys patch. What is kept for them (a build stage's carried caches) is
// made for such builds only.
func (d *Decision) IsRelease() bool {
	if d.Release != nil {
		return false
	}
	for _, r := range d.Reasons {
		if reasons[r.Kind].releases {
			return true
		}
	}
	return false
}

// Warns tells whether the user should be warned: a candidate was there
// but could not be used (not an expected full build).
func (d *Decision) Warns() bool {
	for _, r := range d.Reasons {
		if r.Warns() {
			return true
		}
	}
	return false
}

// Reason is why a full build is one, as the progress line says it: the
// first few reasons, then how many more.
func (d *Decision) Reason() string { return joinReasons(d.Reasons) }

// Detail is every reason when the progress line names only the first few
// (the warning's detail lines), or nil.
func (d *Decision) Detail() []string {
	if len(d.Reasons) <= maxReasonsShown {
		return nil
	}
	out := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		out = append(out, r.Message)
	}
	return out
}

// Summary is the line the progress output shows.
func (d *Decision) Summary() string {
	if d.Release != nil {
		return PatchSummary(d.Release.Digest.String(), d.Changes)
	}
	s := FullBuildPrefix + d.Reason()
	if d.DepsFrom != nil {
		s += "; " + d.DepsReuse()
	}
	return s
}

// DepsReuse says where a full build's dependency stage comes from.
func (d *Decision) DepsReuse() string {
	if d.DepsFrom.HasBuildCache {
		return fmt.Sprintf("dependency stage from release %s (its inline build cache)", d.DepsFrom.Digest)
	}
	return fmt.Sprintf("release %s has the same dependency stage but no inline build cache to take it from (build releases with --cache-to type=inline)", d.DepsFrom.Digest)
}

// PatchSummary is the progress line that says what a patch ships.
func PatchSummary(release string, cs *filelist.ChangeSet) string {
	if cs.Empty() {
		return fmt.Sprintf(PatchPrefix+"%s: no change, the release itself", release)
	}
	return fmt.Sprintf(PatchPrefix+"%s: %d changed, %d deleted, %.1f KiB", release, len(cs.Changed), len(cs.Deleted), float64(cs.ChangedBytes)/1024)
}

// tooBigToPatch says why a matching release should get a new release
// rather than a patch, or nil: more of the app than PATCH_MAX_SHARE allows
// (0: never patch).
func tooBigToPatch(rel *Release, cs *filelist.ChangeSet, total int64, maxShare int) *Reason {
	if maxShare == 0 && !cs.Empty() {
		return Because(NewReleaseAsked, rel.Digest)
	}
	if total > 0 && cs.ChangedBytes*100 > total*int64(maxShare) {
		return Because(ChangeTooLarge, cs.ChangedBytes*100/total, maxShare, rel.Digest)
	}
	return nil
}

// mismatch says why a release cannot be patched into this build, or nil.
func (b Build) mismatch(rel *Release) *Reason {
	if why := b.identityMismatch(rel); why != nil {
		return why
	}
	if rel.decodeFiles(); rel.Files == nil {
		return Because(NoFileList, rel.Digest, rel.filesProblem)
	}
	return nil
}

// identityMismatch says why a release is not of this build's platform,
// base, dependency stage and APP spec, or nil: what can be told before
// the app files are read.
func (b Build) identityMismatch(rel *Release) *Reason {
	labels, want := rel.Image.Config.Labels, b.Identity
	switch {
	case imagePlatform(rel.Image) != PlatformID(b.Platform):
		// A single-manifest release resolves for any platform asked.
		return Because(OtherPlatform, rel.Digest, imagePlatform(rel.Image), PlatformID(b.Platform))
	case labels[LabelBase] != want.Base.String():
		return Because(BaseChanged, rel.Digest, labels[LabelBase], want.Base)
	case labels[LabelDeps] != want.Deps.String():
		return Because(DepsChanged, rel.Digest)
	case labels[LabelApp] != want.App.String():
		return Because(AppSpecChanged, rel.Digest)
	}
	return nil
}

// sameDeps tells whether a release holds this build's dependency stage:
// the same platform, base and dependency hash (which covers the base).
func (b Build) sameDeps(rel *Release) bool {
	labels := rel.Image.Config.Labels
	return imagePlatform(rel.Image) == PlatformID(b.Platform) &&
		labels[LabelBase] == b.Identity.Base.String() && labels[LabelDeps] == b.Identity.Deps.String()
}

// imagePlatform is the platform an image config declares, normalized.
func imagePlatform(img *dockerspec.DockerOCIImage) string {
	return PlatformID(ocispecs.Platform{OS: img.OS, Architecture: img.Architecture, Variant: img.Variant})
}
