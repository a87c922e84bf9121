package frontend

import (
	"context"
	stderrors "errors"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/solver/result"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/pkg/errors"
)

const (
	// DefaultFilename is the Patchfile read when no filename is given.
	DefaultFilename = "Patchfile"

	keyFilename        = "filename"
	keySourceDateEpoch = "SOURCE_DATE_EPOCH"
)

// Build is the frontend: it reads the Patchfile from the build context and
// returns the image for every requested platform. It runs in the gateway
// container (cmd/frontend) or in-process through client.Build.
func Build(ctx context.Context, c client.Client) (_ *client.Result, err error) {
	if opts := c.BuildOpts().Opts; opts != nil && opts[keyFilename] == "" {
		// dockerui defaults to "Dockerfile"; buildctl users expect "Patchfile".
		opts[keyFilename] = DefaultFilename
	}
	bc, err := dockerui.NewClient(c)
	if err != nil {
		return nil, err
	}
	src, err := bc.ReadEntrypoint(ctx, patchfile.Language)
	if err != nil {
		return nil, err
	}
	defer func() { err = withSource(err, src.SourceMap) }()

	pf, err := patchfile.Parse(src.Data)
	if err != nil {
		return nil, err
	}
	for _, w := range pf.Warnings {
		src.Warn(ctx, w, client.WarnOpts{})
	}
	if err := checkTarget(pf, bc.Target); err != nil {
		return nil, err
	}
	epoch, err := sourceDateEpoch(bc.BuildArgs)
	if err != nil {
		return nil, err
	}
	caps := c.BuildOpts().LLBCaps
	layers, err := convert.ChoosePlan(&caps, bc.BuildArgs)
	if err != nil {
		// The plan is how APP's layer is made.
		return nil, parser.WithLocationOnce(err, pf.App.Location())
	}
	hashStep, err := hashStepOf(bc.BuildArgs)
	if err != nil {
		return nil, err
	}
	gctx := &gatewayContext{bc: bc, c: c, hashStep: hashStep,
		warn: func(ctx context.Context, msg string) { src.Warn(ctx, msg, client.WarnOpts{}) }}
	// convertOpt is called once per platform: each gets its own build args
	// map, as dockerui.Client.Build runs the platforms concurrently.
	convertOpt := func() convert.Opt {
		opt := convert.Opt{Config: bc.Config, MetaResolver: c, SourceMap: src.SourceMap, Context: gctx, Epoch: epoch,
			NamedContexts: namedContexts(c.BuildOpts().Opts), Layers: layers}
		opt.BuildArgs = maps.Clone(bc.BuildArgs)
		return opt
	}
	if res, ok, err := handlePlanRequests(ctx, c, bc, pf, convertOpt, gctx); err != nil || ok {
		return res, err
	}
	if res, ok, err := bc.HandleSubrequest(ctx, subrequestHandler(src, pf, convertOpt, gctx)); err != nil || ok {
		return res, err
	}
	if err := checksAsErrors(ctx, src, pf, convertOpt(), gctx); err != nil {
		return nil, err
	}
	// Subrequests (--call=check, outline) solve nothing: any builder
	// serves them. A build fails here, before any step, on a builder that
	// cannot run one.
	if err := convert.CheckBuilder(&caps); err != nil {
		return nil, parser.WithLocationOnce(err, pf.From.Location())
	}
	// The build ends what it started, and waits for it, before it returns
	// (an error in flight could replace its own: see the platforms' below).
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		gctx.Wait()
	}()
	// The app files take the longest to upload and hash: start now, while
	// the conversion reads the dependency manifests and resolves images,
	// when their patterns are known before it.
	if patterns, ok := convert.LiteralAppPatterns(pf); ok {
		gctx.Prefetch(ctx, convert.AppContextName, patterns)
	}
	// The hashing step needs the frontend image's config (its binary):
	// read it now, not after the app files arrive (a registry round trip
	// off the path of a build that hashes in a step).
	go func() { _, _ = gctx.selfTool(ctx) }()
	sbomGen, err := newSBOMGenerator(ctx, c, bc)
	if err != nil {
		return nil, err
	}
	if w := sbomExtrasWarning(bc); w != "" {
		src.Warn(ctx, w, client.WarnOpts{})
	}
	pb := &platformBuild{c: c, bc: bc, src: src, pf: pf, resolution: convert.Resolve(pf, bc.BuildArgs, nil), gctx: gctx, caps: &caps, epoch: epoch, sbomGen: sbomGen, convertOpt: convertOpt}
	rb, err := bc.Build(ctx, func(ctx context.Context, platform *ocispecs.Platform, _ int) (*dockerui.BuildResult, error) {
		return pb.build(ctx, platform)
	})
	if err != nil {
		return nil, err
	}
	if err := addConfigFields(rb, bc.MultiPlatformRequested, &pb.extraConfigs); err != nil {
		return nil, err
	}
	for id, att := range pb.sboms.Range {
		rb.AddAttestation(id.(string), *att.(*result.Attestation[client.Reference]))
	}
	return rb.Finalize()
}

// exportPlatformID is the platform a build was asked for as dockerui's
// result keys it (the builder's own when none was).
func exportPlatformID(p *ocispecs.Platform) string {
	if p == nil {
		return decide.PlatformID(platforms.DefaultSpec())
	}
	return decide.PlatformID(*p)
}

// checkTarget refuses --target, except for the final stage (by its name,
// or "default", the one target --call=targets lists): a build stage is
// never exported on its own, and building the final stage instead would
// export an image the user did not ask for.
func checkTarget(pf *patchfile.File, target string) error {
	if target == "" || target == "default" || target == pf.Name {
		return nil
	}
	if stage := pf.BuildStage(target); stage != nil {
		return parser.WithLocationOnce(errors.Errorf("--target=%s: a build stage is never exported on its own, a Patchfile builds its final stage (the last FROM); leave --target out", target), stage.From.Location())
	}
	return errors.Errorf("--target=%s: a Patchfile has one target, its final stage; leave --target out", target)
}

// namedContexts returns the build's named contexts by name, from the
// "context:<name>" frontend options buildx and buildctl send.
func namedContexts(opts map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range opts {
		if name, ok := strings.CutPrefix(k, "context:"); ok {
			out[name] = v
		}
	}
	return out
}

// sourceDateEpoch reads the SOURCE_DATE_EPOCH build arg, if given.
func sourceDateEpoch(args map[string]string) (*time.Time, error) {
	v, ok := args[keySourceDateEpoch]
	if !ok || v == "" {
		return nil, nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, errors.Errorf("SOURCE_DATE_EPOCH=%s is not a number of seconds since 1970", v)
	}
	t := time.Unix(sec, 0).UTC()
	return &t, nil
}

// withSource attaches the Patchfile and the failing lines to err, so that
// buildx and buildctl print the snippet. Each located error of a joined
// error contributes its lines.
func withSource(err error, sm *llb.SourceMap) error {
	if err == nil || sm == nil || len(errdefs.Sources(err)) > 0 {
		return err
	}
	for _, loc := range locations(err) {
		err = errdefs.WithSource(err, &errdefs.Source{
			Info: &pb.SourceInfo{
				Data:       sm.Data,
				Filename:   sm.Filename,
				Language:   sm.Language,
				Definition: sm.Definition.ToPB(),
			},
			Ranges: convert.ToPBRanges(loc),
		})
	}
	return err
}

// locations collects the line ranges of every LocationError in err's tree.
// It walks the tree itself: errors.As would stop at the first LocationError
// of a joined error and lose the others.
func locations(err error) [][]parser.Range {
	switch e := err.(type) {
	case *parser.LocationError:
		return e.Locations
	case interface{ Unwrap() []error }:
		var out [][]parser.Range
		for _, e := range e.Unwrap() {
			out = append(out, locations(e)...)
		}
		return out
	}
	if next := stderrors.Unwrap(err); next != nil {
		return locations(next)
	}
	return nil
}
