package frontend

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/solver/pb"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/pkg/errors"
)

// candidateReader reads the PATCH candidates' image configs through the
// builder (the registry), for the decision (decide.Resolve). It reads each
// candidate once per platform of a build: the early look that may start
// the dependency stage (earlyStart) and the decision see the same configs,
// even if a tag moves in between.
type candidateReader struct {
	opt  convert.Opt
	mu   sync.Mutex
	seen map[candidateKey]*candidate
}

type candidateKey struct {
	ref      string
	platform string
}

// candidate is one read, once it is done.
type candidate struct {
	done chan struct{}
	rel  *decide.Release
	why  *decide.Reason
}

func newCandidateReader(opt convert.Opt) *candidateReader {
	return &candidateReader{opt: opt, seen: map[candidateKey]*candidate{}}
}

// entry returns ref's read for platform, and whether the caller is the
// first to ask and must read it.
func (r *candidateReader) entry(ref string, platform ocispecs.Platform) (*candidate, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := candidateKey{ref, decide.PlatformID(platform)}
	if c, ok := r.seen[key]; ok {
		return c, false
	}
	c := &candidate{done: make(chan struct{})}
	r.seen[key] = c
	return c, true
}

// resolve is the decision's way to read candidates for a platform.
func (r *candidateReader) resolve(ctx context.Context, platform ocispecs.Platform) decide.Resolve {
	return func(ref string) (*decide.Release, *decide.Reason) {
		c, first := r.entry(ref, platform)
		if first {
			r.read(ctx, c, ref, platform)
		}
		<-c.done // a read started early (prefetch) ends with its context
		return c.rel, c.why
	}
}

// prefetch starts reading the first PATCH candidate, in the background,
// as soon as the Patchfile is parsed, for the platform the build will
// read it for: the read (a manifest and a config, a round trip or more
// each) then overlaps the base image's resolve and the context upload
// instead of following them. It reads only what the decision reads first,
// so it adds no request; when the candidates or the platform are only
// known to the conversion (a word from the base image's ENV, FROM
// --platform) it does nothing.
func (r *candidateReader) prefetch(ctx context.Context, res *convert.Resolution, platform ocispecs.Platform) {
	final := res.Stages[len(res.Stages)-1]
	if !res.PatchKnown || len(res.PatchRefs) == 0 || final.From.Platform != "" {
		return
	}
	ref := res.PatchRefs[0]
	c, first := r.entry(ref, platform)
	if !first {
		return
	}
	go r.read(ctx, c, ref, platform)
}

// read does the read c stands for, for whoever waits on it.
func (r *candidateReader) read(ctx context.Context, c *candidate, ref string, platform ocispecs.Platform) {
	c.rel, c.why = r.lookUp(ctx, ref, platform)
	close(c.done)
}

// lookUp reads a candidate's config and, for a patch, its release's. It
// returns the Patchfile release the candidate stands for, or why there is
// none (nothing there yet, unreachable, not built by Patchfile, a
// malformed patch).
func (r *candidateReader) lookUp(ctx context.Context, ref string, platform ocispecs.Platform) (*decide.Release, *decide.Reason) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, decide.Because(decide.NotAReference, ref)
	}
	rel, err := r.load(ctx, named.String(), platform)
	switch {
	case decide.IsNoPlatform(err):
		return nil, decide.Because(decide.NoPlatformImage, ref, decide.PlatformID(platform))
	case decide.IsNotFound(err, named.String()):
		return nil, decide.Because(decide.NotYetReleased, ref)
	case decide.IsBadConfig(err):
		return nil, decide.Because(decide.ConfigNotRead, ref, err)
	case err != nil:
		return nil, decide.Because(decide.Unreachable, ref, err)
	case !rel.BuiltByPatchfile():
		return nil, decide.Because(decide.NotBuiltByPatchfile, ref)
	}
	dgst, isPatch, why := rel.PatchOf(ref)
	if why != nil {
		return nil, why
	}
	if isPatch {
		// A patch: patch its release, never a patch on a patch.
		pinned := reference.TrimNamed(named).String() + "@" + dgst.String()
		if rel, err = r.load(ctx, pinned, platform); err != nil {
			if decide.IsNotFound(err, pinned) {
				return nil, decide.Because(decide.ReleaseGone, dgst, ref)
			}
			return nil, decide.Because(decide.ReleaseUnreachable, dgst, ref, err)
		}
		if rel.IsPatch() || !rel.BuiltByPatchfile() {
			return nil, decide.Because(decide.ReleaseNotPatchfile, dgst, ref)
		}
	}
	return rel, nil
}

// load resolves one image config and reads it within bounds
// (decide.ParseConfig).
//
// BuildKit shows every resolve as a step, and one that fails (a candidate
// with nothing there yet, the first release) as a failed step, whatever
// its name: the frontend names it, and the build's full-build line says
// that nothing was there yet, without a warning.
func (r *candidateReader) load(ctx context.Context, ref string, platform ocispecs.Platform) (*decide.Release, error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeoutCause(ctx, readTimeout, errors.Errorf("no answer in %s", readTimeout))
		rel, err := r.loadOnce(actx, ref, platform, attempt)
		cancel()
		if err == nil || attempt == readAttempts || !transient(err, ref) || ctx.Err() != nil {
			if err != nil && attempt > 1 {
				err = errors.Wrapf(err, "%d attempts", attempt)
			}
			return rel, err
		}
		select {
		case <-time.After(retryWaits[attempt-1]):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// A candidate's config is read up to readAttempts times when the registry
// does not answer or answers with an error that may pass (a refused or
// reset connection, a 5xx, no answer within readTimeout), waiting
// retryWaits in between: about a minute in all before the build stops or
// builds in full (decide.KeyOnUnreachable). Each attempt is a step of its
// own in the progress.
var (
	readAttempts = 3
	readTimeout  = 15 * time.Second
	retryWaits   = []time.Duration{2 * time.Second, 5 * time.Second}
)

// transient tells whether reading ref may succeed if tried again: not
// when the registry answered that nothing is there, that the image has
// no such platform, that the config is not one, or that the credentials
// are refused.
func transient(err error, ref string) bool {
	if decide.IsNotFound(err, ref) || decide.IsNoPlatform(err) || decide.IsBadConfig(err) {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"401", "403", "unauthorized", "forbidden", "denied"} {
		if strings.Contains(msg, s) {
			return false
		}
	}
	return true
}

// loadOnce is one attempt of load.
func (r *candidateReader) loadOnce(ctx context.Context, ref string, platform ocispecs.Platform, attempt int) (*decide.Release, error) {
	name := "load metadata for " + ref
	if attempt > 1 {
		name += fmt.Sprintf(" (attempt %d of %d)", attempt, readAttempts)
	}
	resolveOpt := sourceresolver.Opt{
		LogName:  r.opt.VertexName(platform, "patch", name),
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &platform, ResolveMode: r.opt.ImageResolveMode.String()},
	}
	_, dgst, dt, err := r.opt.MetaResolver.ResolveImageConfig(ctx, ref, resolveOpt)
	if sm, ok := r.opt.MetaResolver.(sourceMetaResolver); ok && err == nil && dgst == "" {
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
	return decide.ParseConfig(ref, dgst, dt)
}

// sourceMetaResolver is the gateway client's source metadata resolver.
type sourceMetaResolver interface {
	ResolveSourceMetadata(ctx context.Context, op *pb.SourceOp, opt sourceresolver.Opt) (*sourceresolver.MetaResponse, error)
}

// releaseSource is convert.ReleaseSource for a build: the candidates as
// the decision reads them, and the frontend's own image.
type releaseSource struct {
	g     *gatewayContext
	cands *candidateReader
}

func (s releaseSource) Tool(ctx context.Context) (*convert.Tool, error) {
	return s.g.selfTool(ctx)
}

func (s releaseSource) Released(ctx context.Context, patchRefs []string, platform ocispecs.Platform) []string {
	var out []string
	for ref := range s.releases(ctx, patchRefs, platform) {
		out = append(out, ref)
	}
	return out
}

func (s releaseSource) Carried(ctx context.Context, patchRefs []string, platform ocispecs.Platform) (string, map[string]digest.Digest) {
	for _, rel := range s.releases(ctx, patchRefs, platform) {
		return rel.Ref, rel.Carried()
	}
	return "", nil
}

// releases yields the candidates of patchRefs that stand for a Patchfile
// release, in order, with the release, read as the decision reads them
// (once each); it reads no candidate past the one its caller stops at.
func (s releaseSource) releases(ctx context.Context, patchRefs []string, platform ocispecs.Platform) iter.Seq2[string, *decide.Release] {
	resolve := s.cands.resolve(ctx, platform)
	return func(yield func(string, *decide.Release) bool) {
		for _, ref := range patchRefs {
			if rel, _ := resolve(ref); rel != nil && !yield(ref, rel) {
				return
			}
		}
	}
}
