package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/pkg/errors"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// buildOutput is what one platform's build exports.
type buildOutput struct {
	state     llb.State
	image     *dockerspec.DockerOCIImage
	baseImage *dockerspec.DockerOCIImage
	// extraConfig are top-level fields added to the image config (the
	// release's file list).
	extraConfig map[string]any
	// warn is a message for the user when a PATCH candidate was unusable.
	warn string
	// warnDetail are the warning's detail lines: every candidate's reason
	// when warn names only the first few.
	warnDetail []string
	// cacheFrom is a release whose inline build cache holds this full
	// build's dependency stage, to import (by digest); "" for none.
	cacheFrom string
	// patch is set for a patch (or the release itself, when nothing
	// changed): what its SBOM is made of.
	patch *patchOutput
}

// patchOutput is what a patch is made of, for its SBOM (sbomGenerator).
type patchOutput struct {
	release *decide.Release
	changes *filelist.ChangeSet
	// dest is the APP destination, which the changes' paths are relative to.
	dest string
	// files are the patch's own files (convert.PatchFiles); unset when
	// nothing changed.
	files llb.State
}

// cacheImports are the build's own cache imports (--cache-from) plus the
// release whose dependency stage this build shares, so that a builder
// with an empty cache takes the stage from the registry instead of
// running it: reuse with no cache set-up beyond the release's inline cache.
func (o *buildOutput) cacheImports(fromClient []client.CacheOptionsEntry) []client.CacheOptionsEntry {
	return withReleaseCache(fromClient, o.cacheFrom)
}

// withReleaseCache adds the inline cache of a release (by digest; "" for
// none) to the client's cache imports.
func withReleaseCache(fromClient []client.CacheOptionsEntry, release string) []client.CacheOptionsEntry {
	out := slices.Clone(fromClient)
	if release != "" {
		out = append(out, client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": release}})
	}
	return out
}

// decision is the decide package's answer for a conversion, its
// candidates read through cands.
func decision(ctx context.Context, res *convert.Result, opt convert.Opt, cands *candidateReader) (*decide.Decision, error) {
	b, err := decideBuild(&res.BeforeApp, opt.BuildArgs)
	if err != nil {
		return nil, err
	}
	b.App, b.AppUnpatchable = res.AppList, res.AppUnpatchable
	d := decide.Decide(b, cands.resolve(ctx, res.Platform))
	if why := d.Stop(b); why != nil {
		return nil, &stopError{why: why}
	}
	return d, nil
}

// decideBuild is what the decision knows of a build before its app files
// are read.
func decideBuild(e *convert.BeforeApp, args map[string]string) (decide.Build, error) {
	maxShare, err := decide.MaxShare(args)
	if err != nil {
		return decide.Build{}, err
	}
	onUnreachable, err := decide.OnUnreachable(args)
	return decide.Build{Identity: e.Identity, Platform: e.Platform, PatchRefs: e.PatchRefs, PatchDisabled: e.PatchDisabled,
		MaxShare: maxShare, OnUnreachable: onUnreachable}, err
}

// stopError is a build that stops because no candidate was patched and
// one could not be read (decide.Decision.Stop).
type stopError struct {
	why *decide.Reason
}

func (e *stopError) Error() string {
	return fmt.Sprintf("PATCH: %s: the deploy stops rather than build in full (a full dependency install and a new app layer); "+
		"retry when the registry answers, give the builder access to it (docker login), or pass --build-arg %s=%s to build in full",
		e.why, decide.KeyOnUnreachable, decide.OnUnreachableFull)
}

// outputOf is what a platform exports: the decision taken on a conversion,
// its patch or its full build, with the config, warnings and cache imports.
func outputOf(ctx context.Context, res *convert.Result, opt convert.Opt, cands *candidateReader) (*buildOutput, error) {
	d, err := decision(ctx, res, opt, cands)
	if err != nil {
		return nil, err
	}
	if rel := d.Release; rel != nil {
		var st llb.State
		patch := &patchOutput{release: rel, changes: d.Changes, dest: res.App.Dest}
		if d.Changes.Empty() {
			// The release itself: no layer, no history entry.
			summary := opt.VertexName(res.Platform, "patch", d.Summary())
			st = llb.Image(rel.Ref, llb.Platform(res.Platform), llb.WithCustomName(summary), res.AppLocation)
		} else {
			layers := opt.Plan()
			summary := d.Summary()
			if cost := layers.PatchCost(); cost != "" {
				summary += " (" + cost + ")"
			}
			st = layers.Patch(llb.Image(rel.Ref, llb.Platform(res.Platform), llb.WithCustomName(opt.VertexName(res.Platform, "patch", "release "+rel.Ref))),
				res.App, res.AppContext, d.Changes, opt.VertexName(res.Platform, "patch", summary), res.AppLocation)
			patch.files = convert.PatchFiles(res.App, res.AppContext, d.Changes, opt.VertexName(res.Platform, "patch", summary), res.AppLocation)
		}
		return &buildOutput{state: st, image: convert.PatchImage(res.Image, rel, d.Changes, opt.Epoch), baseImage: rel.Image, patch: patch}, nil
	}
	if d.IsRelease() {
		res.Carry()
	}
	out := &buildOutput{
		state:     res.Full(opt.VertexName(res.Platform, "app", d.Summary())),
		image:     res.Image,
		baseImage: res.BaseImage,
	}
	if d.Warns() {
		out.warn = "PATCH: " + d.Reason() + "; building in full"
		out.warnDetail = d.Detail()
	}
	if out.cacheFrom = d.DepsFrom.CacheRef(); out.cacheFrom != "" {
		out.baseImage = depsOf(d.DepsFrom.Image)
	}
	if files := res.AppList; files != nil {
		enc, err := files.Encode()
		if err != nil {
			// Over the list's bounds: the image is right; only later
			// patches of it are lost.
			out.warn = joinWarnings(out.warn, fmt.Sprintf("APP: the image gets no file list, so it cannot be patched: %v", err))
			return out, nil
		}
		out.extraConfig = map[string]any{filelist.ConfigField: enc}
	}
	return out, nil
}

// sameDirMeta says whether a directory of a solved tree has the mode and
// owner the file list gives it.
func sameDirMeta(want filelist.Entry, got *fstypes.Stat) bool {
	mode := os.FileMode(got.Mode)
	return mode.IsDir() && mode&filelist.ModeBits == want.Mode && got.Uid == want.UID && got.Gid == want.GID
}

// depsOf is a release's config cut to its base and dependency layers (a
// full build's app layer is its last), handed to the exporter as the
// build's base: under rewrite-timestamp=true the exporter then leaves the
// dependency layers taken from the release as they are, rather than
// pulling them to rewrite their times.
func depsOf(img *dockerspec.DockerOCIImage) *dockerspec.DockerOCIImage {
	out := *img
	ids := img.RootFS.DiffIDs
	out.RootFS.DiffIDs = slices.Clone(ids[:max(len(ids)-1, 0)])
	return &out
}

// patchLocation is the lines of the PATCH instructions.
func patchLocation(pf *patchfile.File) []parser.Range {
	var out []parser.Range
	for _, p := range pf.Patch {
		out = append(out, p.Location()...)
	}
	return out
}

// addConfigFields adds top-level fields to the image configs dockerui
// wrote. dockerui.BuildResult carries a typed image config, which has no
// room for them; BuildKit's exporter keeps unknown fields.
func addConfigFields(rb *dockerui.ResultBuilder, multiPlatform bool, fields *sync.Map) error {
	var err error
	fields.Range(func(k, v any) bool {
		key := exptypes.ExporterImageConfigKey
		if multiPlatform {
			key += "/" + k.(string)
		}
		dt, ok := rb.Metadata[key]
		if !ok {
			err = errors.Errorf("no image config for platform %s", k)
			return false
		}
		var cfg map[string]json.RawMessage
		if err = json.Unmarshal(dt, &cfg); err != nil {
			return false
		}
		for name, value := range v.(map[string]any) {
			if cfg[name], err = json.Marshal(value); err != nil {
				return false
			}
		}
		if dt, err = json.Marshal(cfg); err != nil {
			return false
		}
		rb.AddMeta(key, dt)
		return true
	})
	return err
}

// joinWarnings joins two warnings for one line; either may be "".
func joinWarnings(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}
