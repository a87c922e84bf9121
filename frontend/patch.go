package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/pkg/errors"
)

const (
	// keyPatchMaxShareArg is the build arg that sets the re-release rule:
	// when a patch would carry more than this percentage of the app tree's
	// bytes, the build is a full one (a new release) instead. 0 means never
	// patch: release pipelines build with it.
	keyPatchMaxShareArg    = "PATCH_MAX_SHARE"
	defaultPatchMaxPercent = 50
)

// release is a release image that a build may patch.
type release struct {
	// Ref is the release pinned by its manifest digest.
	Ref string
	// Digest is what the release reference resolved to: its manifest, or
	// its index for a multi-platform release.
	Digest digest.Digest
	Image  *dockerspec.DockerOCIImage
	// Files is the release's app file list, decoded by decodeFiles only
	// for a release that matches the build: a candidate anyone could have
	// pushed is not decoded for nothing.
	Files *filelist.List
	// filesProblem says why Files is nil after decodeFiles.
	filesProblem string
	// encodedFiles is the config's file list field; nil when it has none.
	encodedFiles *string
	// HasBuildCache is set when the config carries BuildKit's inline
	// cache (the release was built with --cache-to type=inline): a build
	// that imports it finds the release's dependency stage in it, and on
	// a cold builder its layers stay in the registry.
	HasBuildCache bool
}

// cacheRef is the release pinned by digest when its config carries an
// inline build cache to import, or "" (also for no release).
func (r *release) cacheRef() string {
	if r == nil || !r.HasBuildCache {
		return ""
	}
	return r.Ref
}

// decision is the path a build takes and why.
type decision struct {
	// Release and Changes are set for a patch build.
	Release *release
	Changes *filelist.ChangeSet
	// Reason says why a build is a full one.
	Reason string
	// Reasons are the candidates' reasons when there are more than the
	// progress line shows (Reason names the first few): the warning has
	// them all.
	Reasons []string
	// Warn is set when the reason is a problem the user should see (a
	// candidate that could not be used), not an expected full build.
	Warn bool
	// DepsFrom is, for a full build, a release whose dependency stage is
	// this build's (same dependency hash): its build cache, when it has
	// one, saves running the stage again (see depsReuse).
	DepsFrom *release
}

// Summary is the line the progress output shows.
func (d *decision) Summary() string {
	if d.Release != nil {
		return patchSummary(d.Release.Digest.String(), d.Changes)
	}
	s := "full build: " + d.Reason
	if d.DepsFrom != nil {
		s += "; " + d.depsReuse()
	}
	return s
}

// depsReuse says where a full build's dependency stage comes from.
func (d *decision) depsReuse() string {
	if d.DepsFrom.HasBuildCache {
		return fmt.Sprintf("dependency stage from release %s (its inline build cache)", d.DepsFrom.Digest)
	}
	return fmt.Sprintf("release %s has the same dependency stage but no inline build cache to take it from (build releases with --cache-to type=inline)", d.DepsFrom.Digest)
}

// decide picks a patch build or a full build, reading only image configs.
// It tries the candidates in order and patches the first that matches.
// For a full build it also names the first candidate whose dependency
// stage is this build's, which may spare running the stage.
func decide(ctx context.Context, res *Result, opt ConvertOpt) (*decision, error) {
	if res.PatchDisabled {
		return &decision{Reason: "PATCH disabled by --build-arg PATCH="}, nil
	}
	if len(res.PatchRefs) == 0 {
		return &decision{Reason: "no PATCH candidate (add PATCH <release image> to patch deploys)"}, nil
	}
	maxShare, err := patchMaxShare(opt.BuildArgs)
	if err != nil {
		return nil, err
	}
	cur, unpatchable := res.appList, res.appUnpatchable
	full := &decision{}
	var reasons []string
	for _, ref := range res.PatchRefs {
		rel, none := resolveRelease(ctx, ref, &res.Early, opt)
		if rel == nil {
			reasons = append(reasons, none.reason)
			full.Warn = full.Warn || !none.absent
			continue
		}
		if full.DepsFrom == nil && sameDeps(rel, &res.Early) {
			full.DepsFrom = rel
		}
		if unpatchable != "" {
			if full.DepsFrom != nil {
				break
			}
			continue
		}
		if why := mismatch(rel, &res.Early); why != "" {
			reasons = append(reasons, why)
			continue
		}
		cs := filelist.Changes(rel.Files, cur)
		if why := tooBigToPatch(rel, cs, cur.TotalSize(), maxShare); why != "" {
			return &decision{Reason: why, DepsFrom: rel}, nil
		}
		return &decision{Release: rel, Changes: cs}, nil
	}
	full.Reason = strings.Join(reasons, "; ")
	if len(reasons) > maxReasonsShown {
		full.Reason = fmt.Sprintf("%s; and %d more candidates", strings.Join(reasons[:maxReasonsShown], "; "), len(reasons)-maxReasonsShown)
		full.Reasons = reasons
	}
	if unpatchable != "" {
		full.Reason, full.Warn = unpatchable, false
	}
	return full, nil
}

// maxReasonsShown is how many candidates' reasons a progress line names:
// a long PATCH list must not make a line of thousands of characters.
const maxReasonsShown = 3

// tooBigToPatch says why a matching release should get a new release
// rather than a patch, or "": more of the app than PATCH_MAX_SHARE allows
// (0: never patch).
func tooBigToPatch(rel *release, cs *filelist.ChangeSet, total int64, maxShare int) string {
	if maxShare == 0 && !cs.Empty() {
		return fmt.Sprintf("%s=0: a new release instead of patching release %s", keyPatchMaxShareArg, rel.Digest)
	}
	if total > 0 && cs.ChangedBytes*100 > total*int64(maxShare) {
		return fmt.Sprintf("the change is %d%% of the app tree's bytes (more than %s=%d%%): a new release is smaller to ship than patching release %s",
			cs.ChangedBytes*100/total, keyPatchMaxShareArg, maxShare, rel.Digest)
	}
	return ""
}

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

func patchMaxShare(args map[string]string) (int, error) {
	v, ok := args[keyPatchMaxShareArg]
	if !ok || v == "" {
		return defaultPatchMaxPercent, nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
	if err != nil || n < 0 || n > 100 {
		return 0, errors.Errorf("%s=%s is not a percentage from 0 to 100", keyPatchMaxShareArg, v)
	}
	return n, nil
}

// noRelease says why a candidate stands for no release.
type noRelease struct {
	reason string
	// absent is set when nothing is at the candidate's reference yet (the
	// first release): expected, so the build does not warn about it.
	absent bool
}

// unusable is a candidate that is there but cannot be used.
func unusable(format string, args ...any) noRelease {
	return noRelease{reason: fmt.Sprintf(format, args...)}
}

// resolveRelease reads a candidate's config and, for a patch, its release's.
// It returns the Patchfile release the candidate stands for, or why there
// is none (nothing there yet, unreachable, not built by Patchfile, a
// malformed patch).
//
// A build resolves each candidate once (opt.candidates): the early look
// that may start the dependency stage (startDeps) and the decision read
// the same configs, even if a tag moves in between.
func resolveRelease(ctx context.Context, ref string, e *Early, opt ConvertOpt) (*release, noRelease) {
	if opt.candidates == nil {
		return lookUpRelease(ctx, ref, e, opt)
	}
	return opt.candidates.resolve(ref, func() (*release, noRelease) { return lookUpRelease(ctx, ref, e, opt) })
}

// lookUpRelease is resolveRelease without the memo.
func lookUpRelease(ctx context.Context, ref string, e *Early, opt ConvertOpt) (*release, noRelease) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, unusable("PATCH %s is not an image reference", ref)
	}
	rel, err := loadRelease(ctx, named.String(), e, opt)
	if isNotFound(err, named.String()) {
		return nil, noRelease{reason: fmt.Sprintf("no release at %s yet", ref), absent: true}
	}
	var bad badConfigError
	if errors.As(err, &bad) {
		return nil, unusable("candidate %s has an image config that is not read (%v)", ref, err)
	}
	if err != nil {
		return nil, unusable("candidate %s unreachable (%v)", ref, err)
	}
	labels := rel.Image.Config.Labels
	if labels[LabelDeps] == "" {
		return nil, unusable("candidate %s was not built by Patchfile", ref)
	}
	if from := labels[LabelRelease]; from != "" {
		// A patch: patch its release, never a patch on a patch.
		dgst, err := digest.Parse(from)
		if err != nil {
			return nil, unusable("candidate %s has a malformed %s label", ref, LabelRelease)
		}
		if rel, err = loadRelease(ctx, reference.TrimNamed(named).String()+"@"+dgst.String(), e, opt); err != nil {
			return nil, unusable("release %s of candidate %s unreachable (%v)", dgst, ref, err)
		}
		if labels := rel.Image.Config.Labels; labels[LabelRelease] != "" || labels[LabelDeps] == "" {
			return nil, unusable("release %s of candidate %s is not a Patchfile release", dgst, ref)
		}
	}
	return rel, noRelease{}
}

// isNotFound tells whether err says the registry has nothing at ref (a
// tag not pushed yet, a repository not created). The gateway carries the
// builder's error as text only; containerd's resolver words it
// "<ref>: not found", on standalone BuildKit and Docker Engine alike.
func isNotFound(err error, ref string) bool {
	return err != nil && strings.Contains(err.Error(), ref+": not found")
}

// mismatch says why a release cannot be patched into this build, or "".
func mismatch(rel *release, e *Early) string {
	if why := identityMismatch(rel, e); why != "" {
		return why
	}
	if rel.decodeFiles(); rel.Files == nil {
		return fmt.Sprintf("release %s has no usable file list (%s)", rel.Digest, rel.filesProblem)
	}
	return ""
}

// decodeFiles decodes the release's file list, once. A malformed or
// oversized list leaves Files nil, and the release is not patched.
func (r *release) decodeFiles() {
	if r.Files != nil || r.filesProblem != "" {
		return
	}
	if r.encodedFiles == nil {
		r.filesProblem = "its config has no " + filelist.ConfigField + " field"
		return
	}
	files, err := filelist.Decode(*r.encodedFiles)
	if err != nil {
		r.filesProblem = err.Error()
		return
	}
	r.Files = files
}

// identityMismatch says why a release is not of this build's platform,
// base, dependency stage and APP spec, or "": what can be told before the
// app files are read.
func identityMismatch(rel *release, e *Early) string {
	labels, want := rel.Image.Config.Labels, e.Identity
	switch {
	case imagePlatform(rel.Image) != platformID(e.Platform):
		// A single-manifest release resolves for any platform asked.
		return fmt.Sprintf("release %s is for %s, not %s", rel.Digest, imagePlatform(rel.Image), platformID(e.Platform))
	case labels[LabelBase] != want.Base.String():
		return fmt.Sprintf("base image changed since release %s (it has %s, FROM pins %s)", rel.Digest, labels[LabelBase], want.Base)
	case labels[LabelDeps] != want.Deps.String():
		return fmt.Sprintf("dependencies changed since release %s (a DEPS file or a step before APP differs)", rel.Digest)
	case labels[LabelApp] != want.App.String():
		return fmt.Sprintf("APP destination or --chown changed since release %s", rel.Digest)
	}
	return ""
}

// sameDeps tells whether a release holds this build's dependency stage:
// the same platform, base and dependency hash (which covers the base).
func sameDeps(rel *release, e *Early) bool {
	labels := rel.Image.Config.Labels
	return imagePlatform(rel.Image) == platformID(e.Platform) &&
		labels[LabelBase] == e.Identity.Base.String() && labels[LabelDeps] == e.Identity.Deps.String()
}

// imagePlatform is the platform an image config declares, normalized.
func imagePlatform(img *dockerspec.DockerOCIImage) string {
	return platformID(ocispecs.Platform{OS: img.OS, Architecture: img.Architecture, Variant: img.Variant})
}

// loadRelease resolves one image config, with its file list (still
// encoded) if it has one.
//
// BuildKit shows every resolve as a step, and one that fails (a candidate
// with nothing there yet, the first release) as a failed step, whatever
// its name: the frontend names it, and the build's full-build line says
// that nothing was there yet, without a warning.
func loadRelease(ctx context.Context, ref string, e *Early, opt ConvertOpt) (*release, error) {
	resolveOpt := sourceresolver.Opt{
		LogName:  opt.vertexName(e.Platform, "patch", "load metadata for "+ref),
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &e.Platform, ResolveMode: opt.ImageResolveMode.String()},
	}
	_, dgst, dt, err := opt.MetaResolver.ResolveImageConfig(ctx, ref, resolveOpt)
	if sm, ok := opt.MetaResolver.(sourceMetaResolver); ok && err == nil && dgst == "" {
		// Docker Engine's graphdriver builder answers from its local image
		// store, with no digest, for an image it holds (it built the
		// release): a patch needs the release's registry digest. Asked to
		// pull, it reads the registry. (ResolveImageConfig drops the mode
		// on builders with the source metadata resolver, so ask that.)
		resolveOpt.ImageOpt.ResolveMode = llb.ResolveModeForcePull.String()
		var res *sourceresolver.MetaResponse
		if res, err = sm.ResolveSourceMetadata(ctx, &pb.SourceOp{Identifier: "docker-image://" + ref}, resolveOpt); err == nil && res.Image != nil {
			dgst, dt = res.Image.Digest, res.Image.Config
		}
	}
	if err != nil {
		return nil, err
	}
	if dgst == "" {
		return nil, errors.New("the builder resolved it without a digest")
	}
	if len(dt) > maxReleaseConfig {
		return nil, badConfig("it is %d bytes, more than the %d MiB a release's can be", len(dt), maxReleaseConfig>>20)
	}
	if jsonValues(dt) > maxReleaseConfigValues {
		return nil, badConfig("it holds more than %d JSON values", maxReleaseConfigValues)
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(dt, &img); err != nil {
		return nil, badConfig("%v", err)
	}
	var extra struct {
		Files      *string   `json:"dev.patchfile.files"`
		BuildCache jsonIsSet `json:"moby.buildkit.cache.v0"`
	}
	_ = json.Unmarshal(dt, &extra)
	rel := &release{Digest: dgst, Image: &img, HasBuildCache: bool(extra.BuildCache)}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, err
	}
	rel.Ref = reference.TrimNamed(named).String() + "@" + dgst.String()
	rel.encodedFiles = extra.Files
	return rel, nil
}

// maxReleaseConfig bounds a candidate's image config, read before anything
// in it is decoded. A config reaches the frontend in one gateway message,
// which gRPC already bounds to 16 MiB (manifests and indexes are bounded
// to 4 MiB by containerd's resolver, inline build cache to 1 MiB by
// BuildKit's importer); this says so where the frontend relies on it. A
// release of 500,000 files (the file list's bound) has a config of about
// 23 MiB, so apps that large have no usable release: BENCHMARKS.md gives
// the list's size per file.
const maxReleaseConfig = 16 << 20

// badConfigError is a candidate's image config that the frontend does not
// decode: over a bound, or not an image config.
type badConfigError struct{ msg string }

func (e badConfigError) Error() string { return e.msg }

func badConfig(format string, args ...any) error {
	return badConfigError{msg: fmt.Sprintf(format, args...)}
}

// maxReleaseConfigValues bounds the JSON values (array elements, object
// members) of a candidate's config, counted before it is decoded: a few
// bytes of JSON can decode to far more memory ("history":[{},{},...] costs
// about 80 bytes per 3 bytes, 15 MiB of it 380 MiB). Real configs hold
// hundreds (history entries, layers, environment, labels); the file list
// and the inline cache are single strings.
const maxReleaseConfigValues = 100_000

// jsonValues counts the array elements and object members of a JSON text,
// an upper bound found without decoding it: the commas, opening brackets
// and opening braces outside strings.
func jsonValues(dt []byte) int {
	n, inString, escaped := 0, false, false
	for _, c := range dt {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ',' || c == '[' || c == '{':
			n++
		}
	}
	return n
}

// jsonIsSet records whether a JSON field holds anything but null, without
// keeping its bytes (the inline build cache can be large).
type jsonIsSet bool

func (s *jsonIsSet) UnmarshalJSON(dt []byte) error {
	*s = string(dt) != "null"
	return nil
}

// sourceMetaResolver is the gateway client's source metadata resolver.
type sourceMetaResolver interface {
	ResolveSourceMetadata(ctx context.Context, op *pb.SourceOp, opt sourceresolver.Opt) (*sourceresolver.MetaResponse, error)
}

// appFileList computes the app tree as the full build lands it: each
// source in order (a directory's contents, a file or symlink by its name,
// every match of a wildcard), minus --exclude, later sources over earlier
// ones as BuildKit's copies land them. It records where each entry comes
// from in the context (Manifest.origins), for the patch's copies. A shape
// whose landing it cannot predict exactly is an unpatchableError.
func appFileList(files []buildcontext.File, spec AppSpec) (*filelist.List, error) {
	uid, gid, chown := numericOwner(spec.Chown)
	landed := map[string]filelist.Entry{}
	origins := map[string]string{}
	err := appLandings(files, spec, func(rel string, f buildcontext.File) error {
		e := filelist.Entry{Path: rel, Mode: f.Mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky), UID: f.UID, GID: f.GID}
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
		if prev, ok := landed[rel]; ok && (prev.Type == filelist.TypeDir) != (e.Type == filelist.TypeDir) {
			return unpatchableError(fmt.Sprintf("APP sources put a directory and a file at %s", rel))
		}
		landed[rel], origins[rel] = e, f.Path
		return nil
	})
	if err != nil {
		return nil, err
	}
	m := &filelist.List{Origins: origins}
	for _, e := range landed {
		m.Entries = append(m.Entries, e)
	}
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
	return m, nil
}

// appLandings calls land for every context entry APP ships, in the order
// the full build's copies land them, with its path under the destination:
// each source in turn, a directory's entries (those --exclude leaves in,
// matched relative to the directory), a file or symlink by its name (a
// file source is never excluded: measured on BuildKit v0.33.1, APP
// --exclude=*.md README.md docs/ ships README.md, not docs/a.md), every
// match of a wildcard.
func appLandings(files []buildcontext.File, spec AppSpec, land func(rel string, f buildcontext.File) error) error {
	shipped, err := appShips(spec)
	if err != nil {
		return err
	}
	byPath := make(map[string]buildcontext.File, len(files))
	for _, f := range files {
		byPath[f.Path] = f
	}
	for _, src := range spec.Sources {
		for _, m := range sourceMatches(src, files, byPath) {
			if m != "." && !byPath[m].Mode.IsDir() {
				if err := land(path.Base(m), byPath[m]); err != nil {
					return err
				}
				continue
			}
			for _, f := range files {
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
func sourceMatches(src string, files []buildcontext.File, byPath map[string]buildcontext.File) []string {
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

// candidates memoizes resolveRelease for one platform of one build.
type candidates struct {
	mu sync.Mutex
	m  map[string]resolvedCandidate
}

type resolvedCandidate struct {
	rel  *release
	none noRelease
}

func newCandidates() *candidates { return &candidates{m: map[string]resolvedCandidate{}} }

// resolve returns the memoized answer for ref, or look's.
func (c *candidates) resolve(ref string, look func() (*release, noRelease)) (*release, noRelease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.m[ref]; ok {
		return r.rel, r.none
	}
	rel, none := look()
	c.m[ref] = resolvedCandidate{rel, none}
	return rel, none
}
