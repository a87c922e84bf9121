package frontend

import (
	"context"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/util/apicaps"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/pkg/errors"
)

// platformBuild is what every platform of a build shares; build is one
// platform's: convert, decide, solve, and the SBOM. dockerui.Client.Build
// runs the platforms concurrently.
type platformBuild struct {
	c   client.Client
	bc  *dockerui.Client
	src *dockerui.Source
	pf  *patchfile.File
	// resolution is pf's, with the build's args: the same for every
	// platform.
	resolution *convert.Resolution
	gctx       *gatewayContext
	caps       *apicaps.CapSet
	epoch      *time.Time
	sbomGen    *sbomGenerator // nil: no SBOM asked for
	convertOpt func() convert.Opt

	// extraConfigs are the fields to add to each platform's image config,
	// and sboms each platform's SBOM attestation, by export platform ID.
	extraConfigs, sboms sync.Map
}

func (b *platformBuild) build(ctx context.Context, platform *ocispecs.Platform) (*dockerui.BuildResult, error) {
	// Ends what the early start started if this platform fails before its
	// own solve, and waits for those solves to return (earlyStart.stop).
	ctx, cancel := context.WithCancel(ctx)
	opt, cands := platformOpt(b.convertOpt, b.gctx, platform)
	early := &earlyStart{c: b.c, cands: cands, imports: b.bc.CacheImports, args: opt.BuildArgs}
	defer func() {
		cancel()
		early.stop()
	}()
	opt.DepsReady = early.depsReady
	cands.prefetch(ctx, b.resolution, opt.Platform())
	res, err := convert.Convert(ctx, b.pf, opt)
	if err != nil {
		return nil, err
	}
	if err := early.keepTree(ctx, res); err != nil {
		return nil, err
	}
	out, err := outputOf(ctx, res, opt, cands)
	if err != nil {
		var stop *stopError
		if errors.As(err, &stop) {
			return nil, parser.WithLocationOnce(err, patchLocation(b.pf))
		}
		return nil, err
	}
	// The exporter keys each platform's config by the platform asked
	// for, which FROM --platform does not change.
	exportID := exportPlatformID(platform)
	if out.warn != "" {
		// Each platform decides on its own (a release may lack one).
		msg := out.warn
		if b.bc.MultiPlatformRequested {
			msg = exportID + ": " + msg
		}
		var detail [][]byte
		for _, d := range out.warnDetail {
			detail = append(detail, []byte(d))
		}
		b.src.Warn(ctx, msg, client.WarnOpts{Range: convert.ToPBRanges(patchLocation(b.pf)), Detail: detail})
	}
	if out.extraConfig != nil {
		b.extraConfigs.Store(exportID, out.extraConfig)
	}
	if b.sbomGen != nil {
		b.sbomGen.labelImage(out)
	}
	def, err := out.state.Marshal(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "marshaling LLB")
	}
	if err := convert.CheckDefinition(def, b.caps); err != nil {
		return nil, parser.WithLocationOnce(err, b.pf.App.Location())
	}
	r, err := b.c.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), CacheImports: out.cacheImports(b.bc.CacheImports)})
	if err != nil {
		return nil, err
	}
	ref, err := r.SingleRef()
	if err != nil {
		return nil, err
	}
	if b.sbomGen != nil {
		att, err := b.sbomGen.attestation(ctx, opt, res.Platform, out)
		if err != nil {
			return nil, errors.Wrap(err, "making the SBOM")
		}
		b.sboms.Store(exportID, att)
	}
	if err := early.wait(ctx); err != nil {
		return nil, err
	}
	return &dockerui.BuildResult{Reference: ref, Image: out.image, BaseImage: out.baseImage, Epoch: b.epoch}, nil
}

// platformOpt is one platform's conversion options and the reader of its
// candidates, which the build and the plan (--call=plan) share: the plan
// takes the build's decision. A nil platform is the builder's own.
func platformOpt(convertOpt func() convert.Opt, gctx *gatewayContext, platform *ocispecs.Platform) (convert.Opt, *candidateReader) {
	opt := convertOpt()
	opt.TargetPlatform = platform
	cands := newCandidateReader(opt)
	opt.Releases = releaseSource{g: gctx, cands: cands}
	return opt, cands
}
