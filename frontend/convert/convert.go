package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	pllb "github.com/patchfile/patchfile/llb"
	"github.com/patchfile/patchfile/version"
	"github.com/pkg/errors"
)

// historyComment marks the history entries a Patchfile build writes.
const historyComment = "patchfile.v0"

// Opt is everything a conversion needs besides the Patchfile.
type Opt struct {
	dockerui.Config
	// TargetPlatform is the platform to build; nil means the build platform.
	TargetPlatform *ocispecs.Platform
	// MetaResolver resolves image configs (the gateway client in a build).
	MetaResolver llb.ImageMetaResolver
	// SourceMap ties LLB operations to Patchfile lines; may be nil.
	SourceMap *llb.SourceMap
	// Context gives access to the build context.
	Context ContextSource
	// Epoch is SOURCE_DATE_EPOCH, used for image and history timestamps.
	Epoch *time.Time
	// NamedContexts are the build's named contexts (`--build-context
	// name=value`, the "context:" frontend options), by name.
	NamedContexts map[string]string
	// DepsReady, when set, is called once the dependency stage and the
	// build's identity are known, before the app files are read: reading
	// and hashing them takes seconds on a large app, which Build spends
	// running the dependency stage when no candidate can be patched
	// (the frontend's earlyStart). It must not block for long.
	DepsReady func(ctx context.Context, e *BeforeApp)

	// Releases, when set, reads what the releases of the PATCH candidates
	// hold for a build stage: the build caches to import, the compiler
	// caches they carried (CARRY).
	Releases ReleaseSource

	// Layers is how the app files become layers (ChoosePlan); nil means
	// the Merge/Diff plan.
	Layers LayerPlan
}

// Plan returns the build's layer plan.
func (o Opt) Plan() LayerPlan {
	if o.Layers == nil {
		return mergeDiffPlan{}
	}
	return o.Layers
}

// VertexName is how a step shows in progress output: "[tag] text", with
// the platform first when several are built ("[linux/arm64 deps 1/2] RUN
// ..."), as BuildKit's Dockerfile frontend names its steps.
func (o Opt) VertexName(p ocispecs.Platform, tag, text string) string {
	if o.MultiPlatformRequested {
		tag = platforms.FormatAll(p) + " " + tag
	}
	return "[" + tag + "] " + text
}

// BeforeApp is what a conversion knows before it reads the app files: the
// dependency stage, and enough to tell whether a candidate could be
// patched.
type BeforeApp struct {
	// Deps is the dependency stage alone.
	Deps llb.State
	// Identity says what the build was made of, as recorded in the labels.
	Identity decide.Identity
	// PatchRefs are the PATCH candidates, expanded, in order. PatchDisabled
	// is set when --build-arg PATCH= (empty) turned patching off.
	PatchRefs     []string
	PatchDisabled bool
	// Platform is the platform built.
	Platform ocispecs.Platform
	// AppTree is the full build's app tree as it is known before the app
	// files are read: without the directory key (dirsKey), which needs
	// them. Nil when the APP form cannot be checked after (see
	// Result.EarlyTree). A DepsReady that starts solving it sets
	// AppTreeStarted, and the full build then uses it.
	AppTree        *llb.State
	AppTreeStarted bool
}

// Result is the LLB and image config of one platform's full build.
type Result struct {
	BeforeApp
	// AppTree is the application files on an empty filesystem.
	AppTree llb.State
	// EarlyTree is set when AppTree is BeforeApp.AppTree, solved while the
	// app files were read. It carries no directory key, so a warm
	// builder's cache may hold it with a directory's old mode or owner
	// (dirsKey): before using it, the caller compares the directories it
	// holds with TreeDirs and calls UseKeyedTree if any differs.
	EarlyTree bool
	keyedTree llb.State
	// carryTree is the app tree that waits for the build stages' carry
	// steps, and carryLabel the release's decide.LabelCarry; nil and ""
	// when nothing is carried. See Carry.
	carryTree  *llb.State
	carryLabel string
	// plan and fullName make the full build's final state (Full).
	plan     LayerPlan
	fullName string
	// Image is the config of the final image.
	Image *dockerspec.DockerOCIImage
	// BaseImage is the config of the FROM image, so exporters leave its layers alone.
	BaseImage *dockerspec.DockerOCIImage
	// App is the resolved APP instruction.
	App AppSpec
	// AppContext is the build context the app files come from.
	AppContext llb.State
	// AppFiles are the context entries AppContext holds, read for hashing.
	AppFiles []buildcontext.File
	// AppList is the app tree as a file list (appFileList), computed once
	// for the decision and the release's config; nil when the APP form
	// cannot be patched, and AppUnpatchable says why.
	AppList        *filelist.List
	AppUnpatchable string
	// location ties ops to the APP line.
	AppLocation llb.ConstraintsOpt
}

// converter threads the state of one conversion through the instructions.
type converter struct {
	opt   Opt
	pf    *patchfile.File
	stage *patchfile.Stage // the stage converted: the final one, or a build stage
	// stepTag names the stage's steps in progress: "deps" for the final
	// stage's dependency steps ("[deps 2/3] RUN ..."), a build stage's name.
	stepTag  string
	platform ocispecs.Platform // the stage's: FROM --platform can set it
	// target is the platform the build makes (TARGETPLATFORM), whatever a
	// build stage's FROM --platform says.
	target ocispecs.Platform
	lex    *shell.Lex
	state  llb.State
	image  *dockerspec.DockerOCIImage
	// scope is what the stage's words expand with (FROM's, then the
	// stage's from enterStage on); meta are the values of the ARGs
	// declared before the first FROM, which a bare ARG <name> in a stage
	// brings into scope.
	scope *Scope
	meta  map[string]string
	deps  *depsHasher
	// carry is a build stage's carrying of caches (CARRY), nil for the
	// final stage; sourcesIn is set once its APP sources are in, after
	// which its RUNs are build commands.
	carry     *carrying
	sourcesIn bool
	step      int // dependency stage step, for progress names
	nsteps    int
	cmdSet    bool // CMD was set by the Patchfile (ENTRYPOINT keeps it)
}

// Platform is the platform a conversion builds: TargetPlatform (a build
// sets it for each platform it builds), else the first of the build's
// target platforms (--platform: what a subrequest such as --call=outline
// reads, as the Dockerfile frontend's do), else the builder's own.
// (FROM --platform changes the final stage's.)
func (o Opt) Platform() ocispecs.Platform {
	switch {
	case o.TargetPlatform != nil:
		return platforms.Normalize(*o.TargetPlatform)
	case len(o.TargetPlatforms) > 0:
		return platforms.Normalize(o.TargetPlatforms[0])
	}
	return o.buildPlatform(platforms.Normalize(platforms.DefaultSpec()))
}

// buildPlatform is the builder's platform, as the build's config gives
// it, or fallback when it gives none.
func (o Opt) buildPlatform(fallback ocispecs.Platform) ocispecs.Platform {
	if len(o.BuildPlatforms) > 0 {
		return o.BuildPlatforms[0]
	}
	return fallback
}

// PlatformArgs are the platform ARGs of the conversion opt describes, as
// its final stage sees them before a FROM --platform: what the outline and
// the checks resolve with (Resolve).
func (o Opt) PlatformArgs() map[string]string {
	tp := o.Platform()
	return PlatformArgs(o.buildPlatform(tp), tp)
}

// Convert turns a Patchfile into the LLB and image config of a full build.
func Convert(ctx context.Context, pf *patchfile.File, opt Opt) (*Result, error) {
	platform := opt.Platform()
	c := &converter{opt: opt, pf: pf, stage: &pf.Stage, stepTag: "deps", platform: platform, target: platform, lex: shell.NewLex(pf.Escape)}
	if err := c.scopeFrom(); err != nil {
		return nil, err
	}
	baseImg, err := c.convertFrom(ctx)
	if err != nil {
		return nil, err
	}
	c.enterStage()
	for _, st := range pf.DepsSteps() {
		switch st.(type) {
		case *instructions.RunCommand, *patchfile.DepsInstruction, *instructions.WorkdirCommand:
			c.nsteps++
		}
	}
	for _, inst := range pf.DepsSteps() {
		if err := c.convertStep(ctx, inst, true); err != nil {
			return nil, parser.WithLocationOnce(err, inst.Location())
		}
	}
	deps := c.state
	app, appPatterns, err := c.resolveApp()
	if err != nil {
		return nil, parser.WithLocationOnce(err, pf.App.Location())
	}
	// Config steps only change the config: they go before the app files
	// are read, so that everything but those files is known early.
	for _, inst := range pf.ConfigSteps() {
		if err := c.convertStep(ctx, inst, false); err != nil {
			return nil, parser.WithLocationOnce(err, inst.Location())
		}
	}
	if err := c.buildLabels(); err != nil {
		return nil, err
	}
	patchRefs, patchDisabled, err := expandPatchRefs(c.pf, c.opt.BuildArgs, c.scope.WithMetaArgs().Expand)
	if err != nil {
		return nil, err
	}
	before := BeforeApp{Deps: deps, Identity: decide.Identity{Base: c.deps.base, Deps: c.deps.Sum(), App: app.Hash()},
		PatchRefs: patchRefs, PatchDisabled: patchDisabled, Platform: c.platform}
	if unpatchableApp(app) == "" && app.From == "" {
		// Only a tree whose directories the file list predicts can be
		// checked after it is solved; a build's outputs are not known
		// before the build.
		early, err := c.opt.Context.Load(ctx, AppContextName, appPatterns)
		if err != nil {
			return nil, parser.WithLocationOnce(err, pf.App.Location())
		}
		tree := app.Tree(early, llb.WithCustomName(c.opt.VertexName(c.platform, "app", "copy the application files to "+app.Dest)), c.location(pf.App))
		before.AppTree = &tree
	}
	if opt.DepsReady != nil {
		opt.DepsReady(ctx, &before)
	}
	// The build stages are converted once the candidates are known: a
	// stage may start from the caches the release carried.
	builds, err := convertBuildStages(ctx, pf, opt, platform, before.PatchRefs)
	if err != nil {
		return nil, err
	}
	var appContext llb.State
	var appFiles []buildcontext.File
	if app.From != "" {
		appContext, appFiles, err = c.loadOutputs(ctx, &app, builds.state(app.From), before.PatchRefs)
	} else {
		appContext, appFiles, err = c.loadApp(ctx, &app, appPatterns)
	}
	if err != nil {
		return nil, parser.WithLocationOnce(err, pf.App.Location())
	}
	if c.image.Config.Labels == nil {
		c.image.Config.Labels = map[string]string{}
	}
	maps.Copy(c.image.Config.Labels, before.Identity.Labels())
	c.image.Config.Labels[decide.LabelFrontend] = version.Version

	appList, appUnpatchable, err := appTree(app, appFiles)
	if err != nil {
		return nil, parser.WithLocationOnce(err, pf.App.Location())
	}
	copied := countFiles(appFiles) + " files"
	if appFiles == nil && app.From != "" {
		copied = OutputsName(app.From) // straight from the stage: not listed
	}
	treeName := llb.WithCustomName(c.opt.VertexName(c.platform, "app", fmt.Sprintf("copy %s to %s", copied, app.Dest)))
	keyed := app.Tree(appContext, treeName, c.location(pf.App))
	// A release's tree waits for the steps that carry the build stages'
	// caches (Carry): they run in a release, never in a patch or a deploy.
	var carrying *llb.State
	var carryLabel string
	if appFiles != nil {
		withCarry := app
		if withCarry.waits, carryLabel = builds.carrySteps(appFiles); carryLabel != "" {
			tree := withCarry.Tree(appContext, treeName, c.location(pf.App))
			carrying = &tree
		}
	}
	tree, early := keyed, before.AppTreeStarted && appList != nil
	if early {
		tree = *before.AppTree
	}
	return &Result{
		BeforeApp: before, AppTree: tree, EarlyTree: early, keyedTree: keyed, carryTree: carrying, carryLabel: carryLabel, Image: c.image, BaseImage: baseImg,
		App: app, AppContext: appContext, AppFiles: appFiles,
		AppList: appList, AppUnpatchable: appUnpatchable,
		AppLocation: c.location(pf.App),
		plan:        c.opt.Plan(),
		fullName:    c.opt.VertexName(c.platform, "app", fmt.Sprintf("add %s as its own layer", app.Dest)),
	}, nil
}

// Full is the full build's final filesystem: the app tree as a layer of
// its own on the dependency stage, by the build's layer plan. Its step is
// named name, or, for "", by the APP destination.
func (r *Result) Full(name string) llb.State {
	if name == "" {
		name = r.fullName
	}
	return r.plan.Full(r.Deps, r.AppTree, llb.WithCustomName(name), r.AppLocation)
}

// Carry makes the full build a release that keeps its build stages'
// caches for the builds that patch it (CARRY): its app tree waits for the
// carry steps, and its config records them (decide.LabelCarry). Only a
// release by intent does (decide.Decision.IsRelease): a deploy that is a
// full build would copy the caches for no build to take.
func (r *Result) Carry() {
	if r.carryTree == nil {
		return
	}
	r.AppTree, r.EarlyTree = *r.carryTree, false
	r.Image.Config.Labels[decide.LabelCarry] = r.carryLabel
}

// UseKeyedTree makes the full build copy the app files again, with the
// directory key, instead of using the early tree (EarlyTree).
func (r *Result) UseKeyedTree() {
	r.AppTree, r.EarlyTree = r.keyedTree, false
}

// TreeDirs are the directories the app tree holds, by their path in it,
// with the mode and owner the full build gives them: what an early tree
// is checked against. Nil without a file list.
func (r *Result) TreeDirs() []filelist.Entry {
	if r.AppList == nil {
		return nil
	}
	var dirs []filelist.Entry
	for _, e := range r.AppList.Entries {
		if e.Type == filelist.TypeDir {
			e.Path = path.Join(r.App.Dest, e.Path)
			dirs = append(dirs, e)
		}
	}
	return dirs
}

// location ties an op to an instruction's lines. Without a source map it
// changes nothing: (*llb.SourceMap)(nil).Location is a no-op, where a blank
// custom name would erase the op's name.
func (c *converter) location(inst patchfile.Instruction) llb.ConstraintsOpt {
	return c.opt.SourceMap.Location(ToPBRanges(inst.Location()))
}

// FromPBRanges is ToPBRanges undone: a lint result's location as an
// error's.
func FromPBRanges(r []*pb.Range) []parser.Range {
	out := make([]parser.Range, 0, len(r))
	for _, r := range r {
		out = append(out, parser.Range{
			Start: parser.Position{Line: int(r.Start.Line), Character: int(r.Start.Character)},
			End:   parser.Position{Line: int(r.End.Line), Character: int(r.End.Character)},
		})
	}
	return out
}

func ToPBRanges(r []parser.Range) []*pb.Range {
	out := make([]*pb.Range, 0, len(r))
	for _, r := range r {
		out = append(out, &pb.Range{
			Start: &pb.Position{Line: int32(r.Start.Line), Character: int32(r.Start.Character)},
			End:   &pb.Position{Line: int32(r.End.Line), Character: int32(r.End.Character)},
		})
	}
	return out
}

// convertFrom resolves the pinned base image and starts the stage on it.
func (c *converter) convertFrom(ctx context.Context) (*dockerspec.DockerOCIImage, error) {
	from := c.stage.From
	fail := func(err error) (*dockerspec.DockerOCIImage, error) {
		return nil, parser.WithLocationOnce(err, from.Location())
	}
	name, err := c.expand(from.Image)
	if err != nil {
		return fail(err)
	}
	if c.stage == &c.pf.Stage && c.pf.BuildStage(name) != nil {
		return fail(errors.Errorf("FROM %s names a build stage: the final stage starts from an image pinned by digest (the digest is part of what a patch checks); ship the stage's outputs with APP --from=%s <path>... <dest> instead", name, name))
	}
	if from.Platform != "" {
		p, err := c.expand(from.Platform)
		if err != nil {
			return fail(err)
		}
		if c.platform, err = platforms.Parse(p); err != nil {
			return fail(errors.Wrapf(err, "FROM --platform=%s", p))
		}
		c.platform = platforms.Normalize(c.platform)
	}
	base, err := PinnedImage(name)
	if err != nil {
		return fail(err)
	}
	if base, err = c.replacedBase(base); err != nil {
		return fail(err)
	}
	_, manifest, config, err := c.opt.MetaResolver.ResolveImageConfig(ctx, base.String(), sourceresolver.Opt{
		LogName:  c.opt.VertexName(c.platform, "base", "load metadata for "+base.String()),
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &c.platform, ResolveMode: c.opt.ImageResolveMode.String()},
	})
	if err != nil {
		return fail(errors.Wrapf(err, "resolving base image %s", base))
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(config, &img); err != nil {
		return fail(errors.Wrapf(err, "base image %s has an invalid config", base))
	}
	baseImg := img
	c.image = newImage(&img, c.platform, c.opt.Epoch)
	st := llb.Image(base.String(), llb.Platform(c.platform), llb.WithCustomName(c.opt.VertexName(c.platform, "base", base.String())), c.location(from))
	if st, err = st.WithImageConfig(config); err != nil {
		return fail(err)
	}
	// Steps run for the platform built, whatever the config says (as
	// dockerfile2llb does), so a registry's answer cannot change it.
	c.state = st.Platform(c.platform)
	c.deps = newDepsHasher(base.Digest(), manifest, c.platform)
	return &baseImg, nil
}

// replacedBase applies a named context that replaces the base image
// (`--build-context <FROM image>=docker-image://<mirror>@sha256:...`, as
// with the Dockerfile frontend's FROM). Only a pinned image can replace it:
// the base digest is part of the build's identity, and a local directory or
// a tag would make that identity a guess.
func (c *converter) replacedBase(base reference.Canonical) (reference.Canonical, error) {
	name, value, ok := namedContext(c.opt.NamedContexts, base, c.platform)
	if !ok {
		return base, nil
	}
	ref, found := strings.CutPrefix(value, "docker-image://")
	if !found {
		return nil, errors.Errorf("--build-context %s=%s cannot replace the base image: use docker-image://<image>@sha256:<digest>", name, value)
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, errors.Wrapf(err, "--build-context %s=%s is not a valid image reference", name, value)
	}
	canonical, ok := named.(reference.Canonical)
	if !ok {
		return nil, errors.Errorf("--build-context %s=%s is not pinned: write docker-image://%s@sha256:<digest> so the base stays the one the release was built from", name, value, reference.FamiliarString(named))
	}
	return canonical, nil
}

// namedContext finds the named context given for an image, trying the
// names dockerui.Client.NamedContext tries: the familiar name with the
// platform, then without.
func namedContext(contexts map[string]string, image reference.Named, p ocispecs.Platform) (name, value string, ok bool) {
	familiar := strings.TrimSuffix(reference.FamiliarString(image), ":latest")
	for _, n := range []string{familiar + "::" + platforms.FormatAll(platforms.Normalize(p)), familiar} {
		if v, ok := contexts[n]; ok {
			return n, v, true
		}
	}
	return "", "", false
}

// PinnedImage parses a FROM reference and insists on a digest.
func PinnedImage(name string) (reference.Canonical, error) {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, errors.Wrapf(err, "FROM %s is not a valid image reference", name)
	}
	canonical, ok := ref.(reference.Canonical)
	if !ok {
		return nil, errors.Errorf("FROM %s is not pinned: write FROM %s@sha256:<digest> so every build starts from the same base (docker buildx imagetools inspect %s prints the digest)", name, reference.FamiliarString(ref), reference.FamiliarString(ref))
	}
	return canonical, nil
}

// newImage starts the output config from the base config.
func newImage(base *dockerspec.DockerOCIImage, platform ocispecs.Platform, epoch *time.Time) *dockerspec.DockerOCIImage {
	img := &dockerspec.DockerOCIImage{}
	img.Architecture, img.OS, img.Variant = platform.Architecture, platform.OS, platform.Variant
	img.OSVersion, img.OSFeatures = platform.OSVersion, platform.OSFeatures
	img.Config = base.Config
	img.Config.Env = slices.Clone(base.Config.Env)
	img.Config.Labels = decide.WithoutPatchfileLabels(base.Config.Labels)
	img.Config.ExposedPorts = maps.Clone(base.Config.ExposedPorts)
	img.History = slices.Clone(base.History)
	img.RootFS = ocispecs.RootFS{Type: "layers", DiffIDs: slices.Clone(base.RootFS.DiffIDs)}
	created := imageTime(epoch)
	img.Created = &created
	return img
}

// imageTime is the creation time of images and history entries:
// SOURCE_DATE_EPOCH when given, otherwise the pinned file time, so that the
// same inputs give the same digest on any builder.
func imageTime(epoch *time.Time) time.Time {
	if epoch != nil {
		return epoch.UTC()
	}
	return pllb.PinnedTime
}

// addHistory records one instruction in the image history.
func (c *converter) addHistory(createdBy string, withLayer bool) {
	t := imageTime(c.opt.Epoch)
	c.image.History = append(c.image.History, ocispecs.History{
		Created: &t, CreatedBy: createdBy, Comment: historyComment, EmptyLayer: !withLayer,
	})
}

// expand substitutes ARG and ENV values in one word, removing quotes.
func (c *converter) expand(word string) (string, error) {
	return c.scope.Expand(word)
}

// declareArgs brings ARGs into scope with their build-arg or default
// values (Scope.Declare); in the dependency stage they count in its hash.
func (c *converter) declareArgs(cmd *instructions.ArgCommand, hash *depsHasher) error {
	declared, err := c.scope.Declare(cmd)
	if err != nil {
		return err
	}
	if hash != nil {
		for _, kv := range declared {
			hash.add("ARG", kv)
		}
	}
	return nil
}

// platformArgs are the ARGs a Dockerfile defines for every build
// (BUILDPLATFORM, TARGETARCH, ...): in scope for FROM, and given a value
// by a bare ARG <name> in a stage. The target is the platform this
// conversion builds; the build platform is the builder's.
func (c *converter) platformArgs() map[string]string {
	return PlatformArgs(c.opt.buildPlatform(c.platform), c.target)
}

// PlatformArgs are the platform ARGs of a build on the build platform bp
// for the target platform tp.
func PlatformArgs(bp, tp ocispecs.Platform) map[string]string {
	return map[string]string{
		"BUILDPLATFORM": platforms.Format(bp), "BUILDOS": bp.OS, "BUILDOSVERSION": bp.OSVersion,
		"BUILDARCH": bp.Architecture, "BUILDVARIANT": bp.Variant,
		"TARGETPLATFORM": platforms.FormatAll(tp), "TARGETOS": tp.OS, "TARGETOSVERSION": tp.OSVersion,
		"TARGETARCH": tp.Architecture, "TARGETVARIANT": tp.Variant,
	}
}

// scopeFrom puts the meta ARGs (before the first FROM) in scope, over the
// platform ARGs, for the FROM line.
func (c *converter) scopeFrom() error {
	meta, err := MetaArgs(c.pf, c.lex, c.opt.BuildArgs, c.platformArgs())
	if err != nil {
		return err
	}
	c.meta = meta
	c.scope = FromScope(c.pf, c.lex, c.opt.BuildArgs, meta, c.platformArgs())
	return nil
}

// enterStage starts the stage's own scope once its FROM is read: the ARGs
// before FROM are in scope for FROM only, as in a Dockerfile, and the ENV
// is the base image's.
func (c *converter) enterStage() {
	c.scope = NewScope(c.lex, c.opt.BuildArgs, c.meta, c.platformArgs())
	c.scope.SetBase(c.image.Config.Env)
}

// KeyPatchArg is the build arg that overrides PATCH: a list of references,
// or empty to force a full build.
const KeyPatchArg = "PATCH"

// expandPatchRefs expands the PATCH candidates with expand, the final stage's
// scope with the ARGs before FROM it did not declare
// (Scope.WithMetaArgs): a release reference is usually passed that way.
// The PATCH build arg replaces them; disabled says it is empty (PATCH=).
// The conversion and the Resolution both expand them here.
func expandPatchRefs(pf *patchfile.File, buildArgs map[string]string, expand func(string) (string, error)) (refs []string, disabled bool, err error) {
	if v, ok := buildArgs[KeyPatchArg]; ok {
		// Presence, not emptiness: dockerui passes --build-arg PATCH= as "".
		return strings.Fields(v), strings.TrimSpace(v) == "", nil
	}
	for _, p := range pf.Patch {
		for _, w := range p.Refs {
			ref, err := expand(w)
			if err != nil {
				return nil, false, parser.WithLocationOnce(err, p.Location())
			}
			if ref != "" {
				refs = append(refs, ref)
			}
		}
	}
	return refs, false, nil
}

// countFiles formats the number of non-directory entries, e.g. "1,254".
func countFiles(files []buildcontext.File) string {
	n := 0
	for _, f := range files {
		if !f.Mode.IsDir() {
			n++
		}
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// buildLabels applies the build's own labels (`docker buildx build
// --label`, Compose's and bake's labels) over the Patchfile's LABELs, as
// the Dockerfile frontend does. The frontend's own labels cannot be set.
func (c *converter) buildLabels() error {
	for _, k := range slices.Sorted(maps.Keys(c.opt.Labels)) {
		if strings.HasPrefix(k, decide.LabelPrefix) {
			return errors.Errorf("--label %s: labels starting with %q are written by Patchfile itself, pick another name", k, decide.LabelPrefix)
		}
		if c.image.Config.Labels == nil {
			c.image.Config.Labels = map[string]string{}
		}
		c.image.Config.Labels[k] = c.opt.Labels[k]
	}
	return nil
}
