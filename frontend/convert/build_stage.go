package convert

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/pkg/errors"
)

// convertBuildStages converts the build stages the final APP ships from
// (APP --from=<name>), and those they start from (FROM <stage>): each is
// the state after its last step, in the builder's done. A build stage is
// never part of the image: only the outputs APP --from takes from it are,
// so a stage nothing ships from is not built at all. patchRefs are the
// PATCH candidates, whose release may have carried the stages' caches.
func convertBuildStages(ctx context.Context, pf *patchfile.File, opt Opt, platform ocispecs.Platform, patchRefs []string) (*stageBuilder, error) {
	b := &stageBuilder{pf: pf, opt: opt, platform: platform, done: map[string]*converter{}}
	if pf.App == nil || pf.App.From == "" {
		return b, nil
	}
	stage := pf.BuildStage(pf.App.From)
	if stage == nil {
		// Parse checks it; a File made otherwise gets a located error too.
		return nil, parser.WithLocationOnce(errors.Errorf("APP --from=%s names no build stage", pf.App.From), pf.App.Location())
	}
	if err := b.readCarried(ctx, patchRefs); err != nil {
		return nil, err
	}
	if _, err := b.convert(ctx, stage, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// readCarried reads what carrying the stages' caches needs, when a stage
// carries one: the tool's image and the caches the release carried.
func (b *stageBuilder) readCarried(ctx context.Context, patchRefs []string) error {
	carries := false
	for _, s := range b.pf.BuildStages {
		carries = carries || len(s.Carry) > 0
	}
	if !carries || b.opt.Releases == nil {
		return nil
	}
	tool, err := b.opt.Releases.Tool(ctx)
	if err != nil || tool == nil {
		return err
	}
	b.tool = tool
	b.release, b.seeds = b.opt.Releases.Carried(ctx, patchRefs, b.platform)
	return nil
}

// state is the named build stage's state after its last step.
func (b *stageBuilder) state(name string) llb.State {
	return b.done[name].state
}

// stageBuilder converts build stages once each, a stage that starts from
// another after it.
type stageBuilder struct {
	pf       *patchfile.File
	opt      Opt
	platform ocispecs.Platform
	done     map[string]*converter // by stage name
	// tool, release and seeds are the stages' carrying (newCarrying).
	tool    *Tool
	release string
	seeds   map[string]digest.Digest
}

// convert converts one build stage: its base (a pinned image, or an
// earlier build stage: FROM <stage>), its dependency steps (DEPS and RUN,
// as in the final stage: only the DEPS files are there), its sources (APP,
// merged on as a layer of their own, like COPY --link) and the build
// commands after them. Every step changes the stage's filesystem; none
// changes the image's config. seen are the stages being converted, which a
// FROM may not name.
func (b *stageBuilder) convert(ctx context.Context, stage *patchfile.Stage, seen []string) (*converter, error) {
	if c, ok := b.done[stage.Name]; ok {
		return c, nil
	}
	c := &converter{opt: b.opt, pf: b.pf, stage: stage, stepTag: stage.Name, platform: b.platform, target: b.platform, lex: shell.NewLex(b.pf.Escape)}
	if err := c.scopeFrom(); err != nil {
		return nil, err
	}
	base, err := c.expand(stage.From.Image)
	if err != nil {
		return nil, parser.WithLocationOnce(err, stage.From.Location())
	}
	if parent := b.earlierStage(stage, base); parent != nil {
		if slices.Contains(seen, parent.Name) {
			return nil, parser.WithLocationOnce(errors.Errorf("FROM %s: stage %s starts from itself through %s", base, stage.Name, strings.Join(seen, ", ")), stage.From.Location())
		}
		from, err := b.convert(ctx, parent, append(seen, stage.Name))
		if err != nil {
			return nil, err
		}
		// The stage goes on from where the other ended: its files, its
		// environment, working directory and user.
		img := *from.image
		img.Config.Env = slices.Clone(from.image.Config.Env)
		c.image, c.state, c.platform = &img, from.state, from.platform
	} else if _, err := c.convertFrom(ctx); err != nil {
		return nil, err
	}
	c.enterStage()
	c.carry = newCarrying(stage.CarriedPaths(), b.tool, b.release, b.seeds)
	for _, inst := range stage.Steps {
		switch inst.(type) {
		case *instructions.RunCommand, *patchfile.DepsInstruction, *instructions.WorkdirCommand, *patchfile.AppInstruction:
			c.nsteps++
		}
	}
	for _, inst := range stage.Steps {
		var err error
		if _, ok := inst.(*patchfile.AppInstruction); ok {
			err = c.convertSources(ctx)
			c.sourcesIn = true
		} else {
			err = c.convertStep(ctx, inst, true)
		}
		if err != nil {
			return nil, parser.WithLocationOnce(err, inst.Location())
		}
	}
	if err := c.checkCarried(); err != nil {
		return nil, err
	}
	b.done[stage.Name] = c
	return c, nil
}

// earlierStage is the build stage before stage that name names, or nil.
func (b *stageBuilder) earlierStage(stage *patchfile.Stage, name string) *patchfile.Stage {
	for _, s := range b.pf.BuildStages {
		if s == stage {
			return nil
		}
		if s.Name == name {
			return s
		}
	}
	return nil
}

// convertSources lands a build stage's APP sources on its state, as a
// layer of their own (the build's layer plan, as the final stage's app
// tree): their copy does not depend on the dependency steps, so an edit
// re-runs only the build commands after it. The files are read as the
// final stage's APP reads them (loadApp: the same checks, and the same
// directory key, without which a warm builder's cache could hand the build
// a directory with its old mode or owner, moby/buildkit#7176); nothing is
// decided from their hashes.
func (c *converter) convertSources(ctx context.Context) error {
	app, patterns, err := c.resolveApp()
	if err != nil {
		return err
	}
	st, _, err := c.loadApp(ctx, &app, patterns)
	if err != nil {
		return err
	}
	c.step++
	name := c.stepName("APP " + strings.Join(app.Sources, " ") + " " + app.Dest)
	tree := app.Tree(st, llb.WithCustomName(name), c.location(c.stage.App))
	c.state = c.opt.Plan().Full(c.state, tree, llb.WithCustomName(name), c.location(c.stage.App))
	return nil
}

// OutputsName names the tree of a build stage's outputs in progress and
// errors.
func OutputsName(stage string) string { return "the outputs of build stage " + stage }

// loadOutputs makes the tree the final APP --from ships: its sources,
// copied from the build stage with APP's own options onto an empty
// filesystem (the outputs' tree), listed and hashed as context files are.
// It turns spec into the APP that lands that whole tree at the
// destination, so that the full build, the file list and a patch's copies
// all read the one tree that was hashed. Copying --chown and --chmod
// again changes nothing.
//
// A destination that is not a directory cannot be patched (unpatchableApp):
// the full build then copies straight from the stage, and nothing is hashed.
func (c *converter) loadOutputs(ctx context.Context, spec *AppSpec, build llb.State, patchRefs []string) (llb.State, []buildcontext.File, error) {
	if unpatchableApp(*spec) != "" {
		return build, nil, nil
	}
	if c.opt.Releases != nil {
		// A first release has no build cache to import yet: importing
		// one that is not there shows as a failed step.
		patchRefs = c.opt.Releases.Released(ctx, patchRefs, c.platform)
	}
	caches, note := buildCaches(patchRefs)
	collect := AppSpec{Sources: spec.Sources, Dest: "/", Excludes: spec.Excludes, chown: spec.chown, chmod: spec.chmod}
	name := c.opt.VertexName(c.platform, spec.From, fmt.Sprintf("collect %s for APP", strings.Join(spec.Sources, " ")))
	if note != "" {
		name += " (" + note + ")"
	}
	tree := collect.Tree(build, llb.WithCustomName(name), c.location(c.stage.App))
	files, err := c.opt.Context.Outputs(ctx, tree, OutputsName(spec.From), caches)
	if err != nil {
		return llb.State{}, nil, err
	}
	if files == nil {
		files = []buildcontext.File{} // listed, and empty
	}
	shipped := AppSpec{Sources: []string{"."}, Dest: spec.Dest, Chown: spec.Chown, Chmod: spec.Chmod, From: spec.From, chown: spec.chown, chmod: spec.chmod}
	if err := refuseSpecialFiles(files, shipped); err != nil {
		return llb.State{}, nil, err
	}
	shipped.dirsKey = dirsKey(files)
	*spec = shipped
	return tree, files, nil
}

// BuildCacheTag is the tag, in the repository of each PATCH candidate,
// where releases keep the build cache of their build stages: a registry
// cache with every step (mode=max), which a release build exports with
// --cache-to type=registry,ref=<repository>:buildcache,mode=max. A build
// stage's steps are not in the release image, so its inline cache cannot
// hold them; this cache lets a cold builder take the build's dependency
// steps (npm ci with the dev dependencies, go mod download) from the
// registry instead of running them, with no cache flag on the deploy.
const BuildCacheTag = "buildcache"

// BuildCacheRefs are the build caches of patchRefs' repositories, once
// each, in the candidates' order.
func BuildCacheRefs(patchRefs []string) []string {
	var out []string
	for _, ref := range patchRefs {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			continue
		}
		cache := reference.TrimNamed(named).String() + ":" + BuildCacheTag
		if !slices.Contains(out, cache) {
			out = append(out, cache)
		}
	}
	return out
}

// buildCaches returns the build caches a build stage's steps may come from
// (BuildCacheRefs) and a note for the progress that names them and how a
// release pushes one. They are not looked up first: a registry cache is
// not an image, and resolving one shows as a failed step; BuildKit's own
// "importing cache manifest" step shows whether it was there, and a build
// goes on without it. A cache is read with the trust of the release
// itself: whoever can push the one can push the other.
func buildCaches(patchRefs []string) ([]string, string) {
	refs := BuildCacheRefs(patchRefs)
	if len(refs) == 0 {
		return nil, ""
	}
	return refs, fmt.Sprintf("build cache: %s, which releases push with --cache-to type=registry,ref=%s,mode=max", strings.Join(refs, ", "), refs[0])
}
