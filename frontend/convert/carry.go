package convert

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/carry"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/parser"
	pllb "github.com/patchfile/patchfile/llb"
	"github.com/pkg/errors"
)

// DefaultToolBinary is where the repository's Dockerfile puts the
// frontend's binary in its image, for an image whose config names no
// entrypoint (ToolBinaryOf).
const DefaultToolBinary = "/bin/patchfile-frontend"

// Tool is the frontend's own image and its binary there: the build steps
// the frontend adds (hashing files, carrying caches) run it.
type Tool struct {
	Image  llb.State
	Binary string
}

// ToolBinaryOf is the frontend's binary as its image's config names it:
// the last word of the entrypoint (BuildKit runs a frontend image by its
// entrypoint, whose last word is the frontend when a wrapper such as an
// init comes first), else the command's first, else DefaultToolBinary. An
// image laid out otherwise than the repository's (a distroless base,
// another path) then still hashes and carries in build steps.
func ToolBinaryOf(entrypoint, cmd []string) string {
	switch {
	case len(entrypoint) > 0:
		return entrypoint[len(entrypoint)-1]
	case len(cmd) > 0:
		return cmd[0]
	}
	return DefaultToolBinary
}

// ReleaseSource gives a conversion what a build stage needs of the
// releases its PATCH candidates stand for, as the decision reads them.
type ReleaseSource interface {
	// Released returns those of patchRefs that stand for a Patchfile
	// release, in order: the repositories whose build cache to import.
	Released(ctx context.Context, patchRefs []string, platform ocispecs.Platform) []string
	// Tool is the frontend's own image and binary, which copies a cache,
	// or nil when the frontend does not know its image (it runs in the
	// client's process): nothing is carried then.
	Tool(ctx context.Context) (*Tool, error)
	// Carried reads which caches the release a build starts from carried:
	// the first of patchRefs that stands for a Patchfile release (a patch
	// stands for its release), its reference pinned by digest, and its
	// decide.Release.Carried. It returns "" when none is.
	Carried(ctx context.Context, patchRefs []string, platform ocispecs.Platform) (release string, ids map[string]digest.Digest)
}

// How a cache travels from a release to the builds after it.
//
// A cache mount is not part of a step's cache key and BuildKit never
// exports one (moby/buildkit#1512), so a cold builder starts every
// RUN --mount=type=cache empty, and a registry cache cannot hold a build's
// cache under the build's own keys, which cover the sources a deploy
// changed. A release therefore runs one more step after its build stage's
// commands, the carry step: in the frontend's image, it copies the cache
// mount into a tree of its own. Its cache key is made to cover nothing of
// the build but an id, which the release records in a label
// (decide.LabelCarry): the step's inputs are the frontend's image and a
// one-file marker holding the id, mounted read-only with a selector, which
// BuildKit keys by content; the cache mount itself is not an input. A later
// build reads the id from its release, and asks for the same step over a
// marker it makes from nothing: the keys match, so BuildKit takes the
// release's tree from the build cache (a registry cache exported with
// mode=max on a cold builder, the local cache on the release's own), and
// the first build command that mounts the cache fills it from that tree
// before it runs (withCarried). Measured (2026-12,
// TestColdDeployCarriesTheCompilerCache): a cold deploy of the Go example
// compiled 2 packages instead of 196.
//
// The release's carry step runs only where the full build's app tree
// waits for it (pllb.AddWait), so a patch does not pay for it, and the id
// covers the stage, the target and the outputs the release ships, so that
// a release never finds an older release's carry under its own id unless
// both built the same outputs. A carried cache is used as BuildKit uses
// any cache mount: the tools that write one must tolerate a cache from
// another build of other sources (Go's build cache, keyed by content, does).

// carryMarker is the marker file's path: its content is the carry id.
const carryMarker = "/.patchfile-carry"

// carried is one cache a build stage carries: the cache mount its build
// commands use.
type carried struct {
	mount *cacheMount // nil until a build command mounts the target
	// line is the line of the RUN that first mounted it.
	line int
}

// carrying is what a build stage's conversion knows of its caches.
type carrying struct {
	tool *Tool // nil: nothing is carried
	// release names the release whose carried caches the stage starts
	// from (seeds, by decide.CarryKey); "" for none.
	release string
	seeds   map[string]digest.Digest
	byPath  map[string]*carried
}

// carryMount records a build command's cache mount where CARRY names
// its target: the first build command (after APP) that mounts the path
// carries it. It returns the tree to fill the mount from when the release
// the build starts from carried that cache (convertRun wraps the command
// in carry.RunCommand), or nil.
func (c *converter) carryMount(cm cacheMount, run *instructions.RunCommand) (*llb.State, error) {
	if c.carry == nil || !c.sourcesIn {
		return nil, nil
	}
	k, ok := c.carry.byPath[cm.target]
	if !ok {
		return nil, nil
	}
	if k.mount != nil {
		if k.mount.id != cm.id || k.mount.sharing != cm.sharing {
			return nil, errors.Errorf("--mount=type=cache,target=%s mounts another cache than the RUN on line %d (id %s): CARRY %s carries one cache, give both mounts the same id and sharing", cm.target, k.line, k.mount.id, cm.target)
		}
		return nil, nil
	}
	k.mount, k.line = &cm, run.Location()[0].Start.Line
	id, ok := c.carry.seeds[decide.CarryKey(c.stage.Name, cm.target)]
	if !ok || c.carry.tool == nil {
		return nil, nil
	}
	seed := carryStep(*c.carry.tool, carryMarkerOn(llb.Scratch(), id), cm,
		c.opt.VertexName(c.platform, c.stepTag, fmt.Sprintf("CARRY %s: the cache release %s carried (a cold builder takes it from the build cache)", cm.target, shortRef(c.carry.release))))
	return &seed, nil
}

// Where a build command that starts from carried caches finds the
// frontend's image and the trees, mounted read-only.
const (
	carryToolMount  = "/.patchfile/tool"
	carrySeedMounts = "/.patchfile/carried/"
)

// withCarried wraps a build command that mounts carried caches (seeds, by
// target; none leaves args as they are): it runs carry.RunCommand from the
// frontend's image, which fills each mount from its tree, keeping what a
// warm mount holds, and then runs the command in its place. The fill is part of the build step itself, so it happens
// exactly when the build runs; a step of its own would be taken from a
// cache whenever its inputs were, and leave the mount empty.
func (c *converter) withCarried(args []string, seeds map[string]llb.State) ([]string, []llb.RunOption) {
	if len(seeds) == 0 {
		return args, nil
	}
	opts := []llb.RunOption{llb.AddMount(carryToolMount, c.carry.tool.Image, llb.Readonly)}
	wrapped := []string{path.Join(carryToolMount, c.carry.tool.Binary), carry.RunCommand}
	for i, target := range slices.Sorted(maps.Keys(seeds)) {
		at := fmt.Sprintf("%s%d", carrySeedMounts, i)
		opts = append(opts, llb.AddMount(at, seeds[target], llb.Readonly))
		wrapped = append(wrapped, at+"="+target)
	}
	return append(append(wrapped, "--"), args...), opts
}

// checkCarried refuses a CARRY path no build command mounts a cache at.
func (c *converter) checkCarried() error {
	if c.carry == nil {
		return nil
	}
	for _, inst := range c.stage.Carry {
		for _, p := range inst.Paths {
			if c.carry.byPath[p].mount == nil {
				return parser.WithLocationOnce(errors.Errorf("CARRY %s: no build command of stage %s mounts a cache there; mount it in the RUN that builds, after APP: RUN --mount=type=cache,target=%s <build command>", p, c.stage.Name, p), inst.Location())
			}
		}
	}
	return nil
}

// newCarrying is a build stage's carrying, before its steps: the caches
// CARRY names, and those the release carried.
func newCarrying(stagePaths []string, tool *Tool, release string, seeds map[string]digest.Digest) *carrying {
	k := &carrying{tool: tool, release: release, seeds: seeds, byPath: map[string]*carried{}}
	for _, p := range stagePaths {
		k.byPath[p] = &carried{}
	}
	return k
}

// carrySteps are the steps that carry the build stages' caches to the
// builds after this one, for a full build's app tree to wait for, and the
// release's carry label (decide.LabelCarry), "" for none. Each id covers
// the stage, the target and the outputs shipped (outputs).
func (b *stageBuilder) carrySteps(outputs []buildcontext.File) ([]llb.State, string) {
	ids := map[string]digest.Digest{}
	var steps []llb.State
	for _, name := range slices.Sorted(maps.Keys(b.done)) {
		c := b.done[name]
		if c.carry == nil || c.carry.tool == nil {
			continue
		}
		for _, p := range c.stage.CarriedPaths() {
			k := c.carry.byPath[p]
			key := decide.CarryKey(name, p)
			id := carryID(key, outputs)
			ids[key] = id
			steps = append(steps, carryStep(*c.carry.tool, carryMarkerOn(c.state, id), *k.mount,
				c.opt.VertexName(c.platform, c.stepTag, fmt.Sprintf("CARRY %s: keep the cache for the builds that patch this release (a cold builder finds it in the build cache, --cache-to type=registry,mode=max)", p))))
		}
	}
	if len(ids) == 0 {
		return nil, ""
	}
	dt, _ := json.Marshal(ids) // sorted keys
	return steps, string(dt)
}

// carryStep copies the cache mount cm into a tree of its own. Its cache
// key covers the frontend's image and the marker's content only: the
// release's step, over a marker on its build stage, and a later build's,
// over a marker on nothing, have the same key when their ids are equal.
func carryStep(tool Tool, marker llb.State, cm cacheMount, name string) llb.State {
	return tool.Image.Run(
		llb.Args([]string{tool.Binary, carry.CopyCommand, "/cache", "/out"}),
		llb.Network(llb.NetModeNone),
		llb.ReadonlyRootFS(),
		llb.AddMount("/marker", marker, llb.SourcePath(carryMarker), llb.Readonly),
		cm.at("/cache"),
		llb.WithCustomName(name),
	).AddMount("/out", llb.Scratch())
}

// carryMarkerOn adds the marker file holding id to st.
func carryMarkerOn(st llb.State, id digest.Digest) llb.State {
	return st.File(llb.Mkfile(carryMarker, 0o644, []byte(id.String()+"\n"), llb.WithCreatedTime(pllb.PinnedTime)),
		llb.WithCustomName("[internal] mark the carried cache "+id.Encoded()[:12]))
}

// carryID is the id a release's carried cache is keyed by: the stage and
// target (key) and the outputs the release ships.
func carryID(key string, outputs []buildcontext.File) digest.Digest {
	h := sha256.New()
	fmt.Fprintf(h, "patchfile carry v1\n%q\n", key)
	for _, f := range outputs {
		fmt.Fprintf(h, "%q %o %d %d %q %x\n", f.Path, uint32(f.Mode), f.UID, f.GID, f.Linkname, f.SHA256)
	}
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
}

// shortRef shortens a reference pinned by digest for progress names.
func shortRef(ref string) string {
	if name, dgst, ok := strings.Cut(ref, "@sha256:"); ok && len(dgst) > 12 {
		return name + "@sha256:" + dgst[:12] + "…"
	}
	return ref
}
