package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	bksbom "github.com/moby/buildkit/frontend/attestations/sbom"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/solver/result"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/patchfile/patchfile/frontend/sbom"
	"github.com/pkg/errors"
)

// sbomGenerator makes the SBOM a build was asked for (attest:sbom, which
// `--sbom=true` and `--attest type=sbom` set), as BuildKit's Dockerfile
// frontend does: the generator image runs on the image's tree and its
// SPDX statement is attached to the platform's result. A frontend that
// attaches one keeps BuildKit from scanning the final image itself, which
// on a patch would pull every layer of the release.
//
// A patch's SBOM is its release's plus a scan of the patch's own files
// (frontend/sbom) when that is sound: the release carries an SBOM from
// the same generator, the builder can read it, and the patch replaces or
// deletes nothing that SBOM names. Otherwise the patched image is scanned
// whole, and the scan's step says why.
type sbomGenerator struct {
	c client.Client
	// pinned is the generator image by digest; label is what images made
	// with it record (decide.LabelSBOM): pinned plus the parameters.
	pinned, label string
	scan          bksbom.Scanner
}

// newSBOMGenerator returns the build's generator, or nil when no SBOM was
// asked for.
func newSBOMGenerator(ctx context.Context, c client.Client, bc *dockerui.Client) (*sbomGenerator, error) {
	if bc.SBOM == nil {
		return nil, nil
	}
	platform := bc.BuildPlatforms[0]
	opt := sourceresolver.Opt{ImageOpt: &sourceresolver.ResolveImageOpt{
		Platform: &platform, ResolveMode: c.BuildOpts().Opts["image-resolve-mode"]}}
	_, dgst, _, err := sourceresolver.NewImageMetaResolver(c).ResolveImageConfig(ctx, bc.SBOM.Generator, opt)
	if err != nil {
		return nil, errors.Wrapf(err, "resolving the SBOM generator %s", bc.SBOM.Generator)
	}
	named, err := reference.ParseNormalizedNamed(bc.SBOM.Generator)
	if err != nil {
		return nil, err
	}
	pinnedRef, err := reference.WithDigest(reference.TrimNamed(named), dgst)
	if err != nil {
		return nil, err
	}
	g := &sbomGenerator{c: c, pinned: pinnedRef.String()}
	g.label = g.pinned
	for _, k := range slices.Sorted(maps.Keys(bc.SBOM.Parameters)) {
		g.label += " " + k + "=" + bc.SBOM.Parameters[k]
	}
	if g.scan, err = bksbom.CreateSBOMScanner(ctx, c, g.pinned, platform, opt, bc.SBOM.Parameters); err != nil {
		return nil, err
	}
	return g, nil
}

// labelImage records the generator on the image's config.
func (g *sbomGenerator) labelImage(out *buildOutput) {
	img := *out.image
	img.Config.Labels = maps.Clone(img.Config.Labels)
	if img.Config.Labels == nil {
		img.Config.Labels = map[string]string{}
	}
	img.Config.Labels[decide.LabelSBOM] = g.label
	out.image = &img
}

// attestation is the SBOM of one platform's output, solved.
func (g *sbomGenerator) attestation(ctx context.Context, opt convert.Opt, platform ocispecs.Platform, out *buildOutput) (*result.Attestation[client.Reference], error) {
	name := func(text string) llb.ConstraintsOpt {
		return llb.WithCustomName(opt.VertexName(platform, "sbom", text))
	}
	step := "scanning the image with " + g.pinned
	if p := out.patch; p != nil {
		doc, why, err := g.patchSBOM(ctx, opt, platform, p, name)
		if err != nil {
			return nil, err
		}
		if doc != nil {
			return g.attach(ctx, doc)
		}
		step = "scanning the whole image, as " + sbomWhy(why)
	}
	att, err := g.scan(ctx, "sbom", out.state, nil, name(step))
	if err != nil {
		return nil, err
	}
	return g.solve(ctx, &att)
}

// patchSBOM is the patch's SBOM made from its release's, or why it cannot
// be (doc nil).
func (g *sbomGenerator) patchSBOM(ctx context.Context, opt convert.Opt, platform ocispecs.Platform, p *patchOutput, name func(string) llb.ConstraintsOpt) (_ *sbom.Document, why string, _ error) {
	if got := p.release.SBOMGenerator(); got != g.label {
		if got == "" {
			return nil, "the release has no SBOM (released without --sbom)", nil
		}
		return nil, fmt.Sprintf("the release's SBOM came from another generator (%s)", got), nil
	}
	caps := g.c.BuildOpts().Caps
	if caps.Supports(gwpb.CapSourceMetaResolverImageAttestations) != nil {
		return nil, "this builder cannot read a release's attestations (BuildKit v0.33 and later can)", nil
	}
	rel, why := g.releaseSBOM(ctx, opt, platform, p.release)
	if rel == nil {
		return nil, why, nil
	}
	if path, ok := rel.Names(touched(p)); ok {
		return nil, fmt.Sprintf("the release's SBOM names %s, which the patch replaces or deletes", path), nil
	}
	if n := rel.Unplaced(); n > 0 {
		return nil, fmt.Sprintf("the release's SBOM has %d files not placed in a layer", n), nil
	}
	if p.changes.Empty() {
		return rel, "", nil
	}
	if why := symlinkChange(p.changes); why != "" {
		return nil, why, nil
	}
	files := 0
	for _, e := range p.changes.Changed {
		if e.Type != filelist.TypeDir {
			files++
		}
	}
	att, err := g.scan(ctx, "sbom", p.files, nil,
		name(fmt.Sprintf("scanning the patch's %d changed files; the release's SBOM lists the rest", files)))
	if err != nil {
		return nil, "", err
	}
	solved, err := g.solve(ctx, &att)
	if err != nil {
		return nil, "", err
	}
	scan, err := readScan(ctx, solved.Ref)
	if err != nil {
		return nil, "", err
	}
	doc, err := sbom.Patched(rel, scan)
	if err != nil {
		return nil, err.Error(), nil
	}
	return doc, "", nil
}

// releaseSBOM reads the SBOM attestation of the release's platform from
// the registry (the attestation manifest and the one SPDX layer, a few
// kilobytes; no image layer), or says why there is none to read.
func (g *sbomGenerator) releaseSBOM(ctx context.Context, opt convert.Opt, platform ocispecs.Platform, rel *decide.Release) (*sbom.Document, string) {
	// Asked for the attestations of an image that is not an index,
	// BuildKit (v0.33.1 to v0.35.0) dereferences a nil chain and the
	// whole builder crashes (source/containerimage/source.go, the chain's
	// root). No resolve tells an index from a manifest by succeeding: a
	// manifest resolves for any platform. So the frontend asks for the
	// config of a platform no image has: a manifest answers with its
	// config, an index fails with "no match for platform", which is the
	// step's expected error.
	probe := ocispecs.Platform{OS: "patchfile", Architecture: "index-probe"}
	_, _, _, err := g.c.ResolveImageConfig(ctx, rel.Ref, sourceresolver.Opt{
		LogName:  opt.VertexName(platform, "sbom", "is the release "+rel.Ref+" an image index? (\"no match for platform\" says it is)"),
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &probe},
	})
	switch {
	case err == nil:
		return nil, "the release is a single image manifest, with no attestations"
	case !strings.Contains(err.Error(), "no match for platform"):
		return nil, fmt.Sprintf("the release could not be read (%v)", err)
	}
	res, err := g.c.ResolveSourceMetadata(ctx, &pb.SourceOp{Identifier: "docker-image://" + rel.Ref}, sourceresolver.Opt{
		LogName: opt.VertexName(platform, "sbom", "load the release's SBOM "+rel.Ref),
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &platform, NoConfig: true,
			ResolveAttestations: []string{sbom.PredicateSPDX}},
	})
	if err != nil {
		return nil, fmt.Sprintf("the release's attestations could not be read (%v)", err)
	}
	if res.Image == nil || res.Image.AttestationChain == nil || res.Image.AttestationChain.AttestationManifest == "" {
		return nil, "the release has no attestation manifest for " + decide.PlatformID(platform)
	}
	chain := res.Image.AttestationChain
	var m ocispecs.Manifest
	if err := json.Unmarshal(chain.Blobs[chain.AttestationManifest].Data, &m); err != nil {
		return nil, fmt.Sprintf("the release's attestation manifest could not be read (%v)", err)
	}
	var spdx []ocispecs.Descriptor
	for _, l := range m.Layers {
		if l.Annotations["in-toto.io/predicate-type"] == sbom.PredicateSPDX {
			spdx = append(spdx, l)
		}
	}
	if len(spdx) != 1 {
		return nil, fmt.Sprintf("the release has %d SBOMs, not one", len(spdx))
	}
	blob, ok := chain.Blobs[spdx[0].Digest]
	if !ok {
		return nil, "the builder did not return the release's SBOM"
	}
	doc, err := sbom.ReadStatement(blob.Data)
	if err != nil {
		return nil, fmt.Sprintf("the release's SBOM could not be read (%v)", err)
	}
	return doc, ""
}

// touched are the image paths a patch replaces or deletes: its changed
// files and links, and its deleted entries (a directory stands for what
// it held). Changed directories are left out: a directory's own mode or
// owner is no package's evidence, and what lands in one is listed itself.
func touched(p *patchOutput) []string {
	var out []string
	for _, e := range p.changes.Changed {
		if e.Type != filelist.TypeDir {
			out = append(out, path.Join(p.dest, e.Path))
		}
	}
	for _, e := range p.changes.Deleted {
		out = append(out, path.Join(p.dest, e.Path))
	}
	return out
}

// symlinkChange says why a patch with a changed or added symlink is
// scanned whole: a scanner of the whole image may read through the link
// into files of the release, which a scan of the patch's files cannot.
func symlinkChange(cs *filelist.ChangeSet) string {
	for _, e := range cs.Changed {
		if e.Type == filelist.TypeSymlink {
			return "the patch adds or changes the symlink " + e.Path
		}
	}
	return ""
}

// readScan reads the core SBOM a scanner wrote into its bundle.
func readScan(ctx context.Context, ref client.Reference) (*sbom.Document, error) {
	name := bksbom.CoreSBOMName + ".spdx.json"
	dt, err := ref.ReadFile(ctx, client.ReadRequest{Filename: name, Range: &client.FileRange{Length: sbom.MaxSize + 1}})
	if err != nil {
		return nil, errors.Wrapf(err, "reading the patch scan's %s", name)
	}
	doc, err := sbom.ReadStatement(dt)
	return doc, errors.Wrap(err, "the patch scan's SBOM")
}

// attach is doc as the platform's SBOM: a bundle of one statement, as a
// scanner writes it, so the exporter treats it as it would the scan's.
func (g *sbomGenerator) attach(ctx context.Context, doc *sbom.Document) (*result.Attestation[client.Reference], error) {
	dt, err := doc.Statement()
	if err != nil {
		return nil, err
	}
	st := llb.Scratch().File(llb.Mkfile("/"+bksbom.CoreSBOMName+".spdx.json", 0o644, dt),
		dockerui.WithInternalName("the patch's SBOM: the release's and the patch scan's"))
	return g.solve(ctx, &result.Attestation[*llb.State]{
		Kind: gwpb.AttestationKind_Bundle,
		Ref:  &st,
		Metadata: map[string][]byte{
			result.AttestationReasonKey: []byte(result.AttestationReasonSBOM),
			result.AttestationSBOMCore:  []byte(bksbom.CoreSBOMName),
		},
		InToto: result.InTotoAttestation{PredicateType: sbom.PredicateSPDX},
	})
}

func (g *sbomGenerator) solve(ctx context.Context, att *result.Attestation[*llb.State]) (*result.Attestation[client.Reference], error) {
	return result.ConvertAttestation(att, func(st *llb.State) (client.Reference, error) {
		return solveRef(ctx, g.c, st, "the SBOM")
	})
}

// sbomWhy is the reason text in a step's name, trimmed to a line.
func sbomWhy(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// sbomExtrasWarning says that the Dockerfile frontend's extra SBOMs (of the
// build context, of the build stages) are not made, when a build asks for
// them: a Patchfile's SBOM describes its image, and a patch's is built from
// its release's one document.
func sbomExtrasWarning(bc *dockerui.Client) string {
	if bc.SBOM == nil {
		return ""
	}
	var asked []string
	for _, k := range []string{"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"} {
		if v, ok := bc.BuildArgs[k]; ok && v != "" && v != "false" && v != "0" {
			asked = append(asked, k)
		}
	}
	if len(asked) == 0 {
		return ""
	}
	return strings.Join(asked, " and ") + ": a Patchfile's SBOM describes the image only; no SBOM of the build context or stages is made"
}
