package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"text/tabwriter"

	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/subrequests"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/buildkit/frontend/subrequests/outline"
	"github.com/moby/buildkit/frontend/subrequests/targets"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
)

// planRequest is `docker buildx build --call=plan`: the deploy a build
// would make, explained before it runs. It reads what a build reads (the
// Patchfile, the DEPS and app files, the candidates' configs) and takes
// the same decision, and builds and pushes nothing.
var planRequest = subrequests.Request{
	Name:        "frontend.plan",
	Version:     "1.0.0",
	Type:        subrequests.TypeRPC,
	Description: "What a build would ship: patch or full build and why, the release, the files that change",
	Metadata:    []subrequests.Named{{Name: "result.json"}, {Name: "result.txt"}},
}

// Plan is planRequest's result, one entry per platform.
type Plan struct {
	Platforms []PlatformPlan `json:"platforms"`
}

// PlatformPlan is one platform's decision, as its build would take it.
type PlatformPlan struct {
	Platform string `json:"platform"`
	// Path is "patch", "full", or "stop" for a build that would stop
	// (a candidate that cannot be read: PATCH_ON_UNREACHABLE).
	Path string `json:"path"`
	// Summary is the line the build's progress would show.
	Summary string `json:"summary"`
	// Release is the release a patch is made on, pinned by digest.
	Release string `json:"release,omitempty"`
	// Changed are the entries a patch adds or changes, Deleted those it
	// removes, as image paths.
	Changed []PlanEntry `json:"changed,omitempty"`
	Deleted []string    `json:"deleted,omitempty"`
	// ChangedBytes is the size of the changed files: about what the patch
	// layer weighs before compression.
	ChangedBytes int64 `json:"changedBytes"`
	// DepsHash is the dependency hash; DepsFrom, for a full build, the
	// release whose build cache has this dependency stage ("" if none).
	DepsHash string `json:"depsHash"`
	DepsFrom string `json:"depsFrom,omitempty"`
	// Warning is what the build would warn about its candidates.
	Warning string `json:"warning,omitempty"`
}

// PlanEntry is a changed entry: its image path, type and size.
type PlanEntry struct {
	Path string `json:"path"`
	Type string `json:"type"` // "file", "dir" or "symlink"
	Size int64  `json:"size,omitempty"`
}

// handlePlanRequests answers --call=plan and the subrequest list that
// names it (dockerui knows neither). ok is false for any other request.
func handlePlanRequests(ctx context.Context, c client.Client, bc *dockerui.Client, pf *patchfile.File, convertOpt func() convert.Opt, gctx *gatewayContext) (*client.Result, bool, error) {
	switch c.BuildOpts().Opts["requestid"] {
	case subrequests.RequestSubrequestsDescribe:
		res, err := describeRequests()
		return res, true, err
	case planRequest.Name:
		p, err := plan(ctx, c, bc, pf, convertOpt, gctx)
		if err != nil {
			return nil, true, err
		}
		res, err := p.toResult()
		return res, true, err
	}
	return nil, false, nil
}

// plan converts and decides for every platform, as Build does, with no
// early solve of the dependency stage and no final solve.
func plan(ctx context.Context, c client.Client, bc *dockerui.Client, pf *patchfile.File, convertOpt func() convert.Opt, gctx *gatewayContext) (*Plan, error) {
	// The platforms dockerui.Client.Build would build: the builder's own
	// (nil) when none is asked for.
	targets := []*ocispecs.Platform{nil}
	if len(bc.TargetPlatforms) > 0 {
		targets = targets[:0]
		for i := range bc.TargetPlatforms {
			targets = append(targets, &bc.TargetPlatforms[i])
		}
	}
	out := &Plan{Platforms: make([]PlatformPlan, len(targets))}
	resolution := convert.Resolve(pf, bc.BuildArgs, nil) // the same for every platform
	eg, ctx := errgroup.WithContext(ctx)
	for i, p := range targets {
		eg.Go(func() error {
			opt, cands := platformOpt(convertOpt, gctx, p)
			cands.prefetch(ctx, resolution, opt.Platform())
			pp, err := planPlatform(ctx, pf, opt, cands)
			if err != nil {
				return err
			}
			out.Platforms[i] = *pp
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func planPlatform(ctx context.Context, pf *patchfile.File, opt convert.Opt, cands *candidateReader) (*PlatformPlan, error) {
	res, err := convert.Convert(ctx, pf, opt)
	if err != nil {
		return nil, err
	}
	d, err := decision(ctx, res, opt, cands)
	var stop *stopError
	if errors.As(err, &stop) {
		return &PlatformPlan{Platform: decide.PlatformID(res.Platform), Path: "stop", Summary: stop.Error(), DepsHash: res.Identity.Deps.String()}, nil
	}
	if err != nil {
		return nil, err
	}
	pp := &PlatformPlan{Platform: decide.PlatformID(res.Platform), Path: "full", Summary: d.Summary(), DepsHash: res.Identity.Deps.String()}
	if d.Warns() {
		pp.Warning = "PATCH: " + d.Reason() + "; building in full"
	}
	if rel := d.Release; rel != nil {
		pp.Path, pp.Release = "patch", rel.Ref
		for _, e := range d.Changes.Changed {
			pp.Changed = append(pp.Changed, PlanEntry{Path: path.Join(res.App.Dest, e.Path), Type: entryType(e.Type), Size: e.Size})
		}
		for _, e := range d.Changes.Deleted {
			pp.Deleted = append(pp.Deleted, path.Join(res.App.Dest, e.Path))
		}
		pp.ChangedBytes = d.Changes.ChangedBytes
		return pp, nil
	}
	pp.DepsFrom = d.DepsFrom.CacheRef()
	return pp, nil
}

func entryType(t filelist.EntryType) string {
	switch t {
	case filelist.TypeDir:
		return "dir"
	case filelist.TypeSymlink:
		return "symlink"
	}
	return "file"
}

func (p *Plan) toResult() (*client.Result, error) {
	dt, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	res := client.NewResult()
	res.AddMeta("result.json", dt)
	res.AddMeta("result.txt", []byte(p.String()))
	res.AddMeta("version", []byte(planRequest.Version))
	return res, nil
}

// String is the plan as buildx prints it by default.
func (p *Plan) String() string {
	var b strings.Builder
	for _, pp := range p.Platforms {
		fmt.Fprintf(&b, "%s: %s\n", pp.Platform, pp.Summary)
		if pp.Warning != "" {
			fmt.Fprintf(&b, "  warning: %s\n", pp.Warning)
		}
		if pp.Path == "patch" {
			fmt.Fprintf(&b, "  release: %s\n", pp.Release)
			fmt.Fprintf(&b, "  %d changed (%s), %d deleted\n", len(pp.Changed), humanBytes(pp.ChangedBytes), len(pp.Deleted))
			w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			for _, e := range pp.Changed {
				if e.Type == "file" {
					fmt.Fprintf(w, "  + %s\t%s\n", e.Path, humanBytes(e.Size))
				} else {
					fmt.Fprintf(w, "  + %s\t%s\n", e.Path, e.Type)
				}
			}
			w.Flush()
			for _, d := range pp.Deleted {
				fmt.Fprintf(&b, "  - %s\n", d)
			}
		}
		fmt.Fprintf(&b, "  dependency hash: %s\n", pp.DepsHash)
		if pp.DepsFrom != "" {
			fmt.Fprintf(&b, "  dependency stage: from the build cache of %s\n", pp.DepsFrom)
		}
	}
	return b.String()
}

func humanBytes(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// describeRequests lists the subrequests this frontend answers, as
// `docker buildx build --call=subrequests.describe` prints them.
func describeRequests() (*client.Result, error) {
	all := []subrequests.Request{outline.SubrequestsOutlineDefinition, targets.SubrequestsTargetsDefinition,
		lint.SubrequestLintDefinition, planRequest, subrequests.SubrequestsDescribeDefinition}
	dt, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := subrequests.PrintDescribe(dt, &b); err != nil {
		return nil, err
	}
	res := client.NewResult()
	res.AddMeta("result.json", dt)
	res.AddMeta("result.txt", b.Bytes())
	res.AddMeta("version", []byte(subrequests.SubrequestsDescribeDefinition.Version))
	return res, nil
}
