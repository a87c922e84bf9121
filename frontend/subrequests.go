package frontend

import (
	"context"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/subrequests/convertllb"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/buildkit/frontend/subrequests/outline"
	"github.com/moby/buildkit/frontend/subrequests/targets"
	"github.com/moby/buildkit/solver/pb"
	"github.com/opencontainers/go-digest"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/patchfile/patchfile/version"
	"github.com/pkg/errors"
	"google.golang.org/protobuf/proto"
)

// subrequestHandler answers `docker buildx build --call=...` without
// building: outline, targets, check (lint) and the LLB of the full build.
func subrequestHandler(src *dockerui.Source, pf *patchfile.File, opt func() convert.Opt, gctx CheckContext) dockerui.RequestHandler {
	return dockerui.RequestHandler{
		Outline: func(ctx context.Context) (*outline.Outline, error) {
			return patchfileOutline(src, pf, opt()), nil
		},
		ListTargets: func(ctx context.Context) (*targets.List, error) {
			return &targets.List{
				Targets: []targets.Target{{
					Name:        "default",
					Default:     true,
					Description: "the image: a patch of a PATCH release when one matches, a full build otherwise",
					Base:        pf.From.Image,
					Platform:    pf.From.Platform,
					Location:    toPBLocation(0, pf.From.Location()),
				}},
				Sources: [][]byte{src.Data},
			}, nil
		},
		Lint: func(ctx context.Context) (*lint.LintResults, error) {
			return Check(ctx, src, pf, opt(), gctx)
		},
		ConvertLLB: func(ctx context.Context) (*convertllb.Result, error) {
			res, err := convert.Convert(ctx, pf, opt())
			if err != nil {
				return nil, err
			}
			return toConvertLLB(ctx, res)
		},
	}
}

// patchfileOutline lists the build args, secrets, ssh sockets and cache
// mounts a Patchfile uses, resolved for the build's target platform, as
// the Dockerfile frontend's outline is.
func patchfileOutline(src *dockerui.Source, pf *patchfile.File, opt convert.Opt) *outline.Outline {
	o := &outline.Outline{Name: "default", Description: "built by " + version.String(), Sources: [][]byte{src.Data}}
	addArgs := func(cmd *instructions.ArgCommand) {
		for _, kv := range cmd.Args {
			a := outline.Arg{Name: kv.Key, Location: toPBLocation(0, cmd.Location())}
			if kv.Value != nil {
				a.Value = *kv.Value
			}
			o.Args = append(o.Args, a)
		}
	}
	for _, a := range pf.MetaArgs {
		addArgs(a)
	}
	o.Args = append(o.Args,
		outline.Arg{Name: convert.KeyPatchArg, Description: "release images to patch instead of the PATCH lines; empty for a full build"},
		outline.Arg{Name: decide.KeyPatchMaxShare, Description: "largest patch, in percent of the app tree's bytes, before a full build (0: never patch, build a new release)", Value: "50"})
	for _, stage := range convert.Resolve(pf, opt.BuildArgs, opt.PlatformArgs()).Stages {
		for _, inst := range stage.Steps {
			if arg, ok := inst.(*instructions.ArgCommand); ok {
				addArgs(arg)
			}
		}
		for _, run := range stage.Runs {
			outlineMounts(o, run)
		}
	}
	return o
}

// outlineMounts adds the secrets, ssh sockets and caches a RUN asks for
// to the outline, with the ids the build asks the client for.
func outlineMounts(o *outline.Outline, run convert.ResolvedRun) {
	loc := toPBLocation(0, run.Inst.Location())
	for _, m := range run.Mounts {
		switch m.Type {
		case instructions.MountTypeSecret:
			o.Secrets = append(o.Secrets, outline.Secret{Name: m.ID, Required: m.Required, Location: loc})
		case instructions.MountTypeSSH:
			o.SSH = append(o.SSH, outline.SSH{Name: m.ID, Required: m.Required, Location: loc})
		case instructions.MountTypeCache:
			o.Cache = append(o.Cache, outline.CacheMount{ID: m.ID, Location: loc})
		}
	}
}

func toPBLocation(sourceIndex int, r []parser.Range) *pb.Location {
	return &pb.Location{SourceIndex: int32(sourceIndex), Ranges: convert.ToPBRanges(r)}
}

// toConvertLLB renders the full build's LLB as the ConvertLLB subrequest
// does for Dockerfiles.
func toConvertLLB(ctx context.Context, res *convert.Result) (*convertllb.Result, error) {
	def, err := res.Full("").Marshal(ctx)
	if err != nil {
		return nil, err
	}
	out := &convertllb.Result{Def: map[digest.Digest]*pb.Op{}, Metadata: def.Metadata, Source: def.Source}
	for _, dt := range def.Def {
		var op pb.Op
		if err := proto.Unmarshal(dt, &op); err != nil {
			return nil, errors.Wrap(err, "decoding LLB")
		}
		out.Def[digest.FromBytes(dt)] = &op
	}
	return out, nil
}
