package convert

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/apicaps"
	"github.com/patchfile/patchfile/frontend/filelist"
	pllb "github.com/patchfile/patchfile/llb"
	"github.com/pkg/errors"
)

// keyPlanArg is the build arg that picks the layer plan: auto (the
// default: Merge/Diff when the builder has them), mergediff or fileops.
const keyPlanArg = "PATCH_PLAN"

// Layer plan names, as PATCH_PLAN takes them.
const (
	planAuto      = "auto"
	planMergeDiff = "mergediff"
	planFileOps   = "fileops"
)

// LayerPlan is how a build puts the app files on top of their base: the
// last layer of a full build, and the one layer of a patch. Builders
// differ in what they run: Docker Engine's embedded BuildKit on its
// default storage (the overlay2 graphdriver) has no MergeOp or DiffOp, so
// a plan made of file operations alone stands in for the lazy one there.
// Both plans give the same filesystem for the same inputs.
type LayerPlan interface {
	// Name is the plan's PATCH_PLAN value.
	Name() string
	// Full returns deps with tree (the app files on an empty filesystem,
	// AppSpec.Tree) on top as one layer.
	Full(deps, tree llb.State, opts ...llb.ConstraintsOpt) llb.State
	// Patch returns release with one layer on top that turns its app tree
	// into the new one: cs's changed entries, whiteouts for its deleted
	// ones, and the directories that hold them with the release's metadata.
	// name is the progress line of the step that writes the layer.
	Patch(release llb.State, spec AppSpec, appCtx llb.State, cs *filelist.ChangeSet, name string, opts ...llb.ConstraintsOpt) llb.State
	// PatchCost is what a patch costs beyond its layer, for the progress
	// line; "" when it reads no release layer.
	PatchCost() string
}

// mergeDiffPlan lays app trees with MergeOp and DiffOp: a full build
// merges the dependency stage with the app tree, which stays a layer of
// its own (like COPY --link), and a patch is the diff between placeholder
// trees, merged onto a release whose layers are never pulled (zero-pull).
type mergeDiffPlan struct{}

func (mergeDiffPlan) Name() string { return planMergeDiff }

func (mergeDiffPlan) Full(deps, tree llb.State, opts ...llb.ConstraintsOpt) llb.State {
	return llb.Merge([]llb.State{deps, tree}, opts...)
}

func (mergeDiffPlan) Patch(release llb.State, spec AppSpec, appCtx llb.State, cs *filelist.ChangeSet, name string, opts ...llb.ConstraintsOpt) llb.State {
	return patchLayer(release, spec, appCtx, cs, name, opts...)
}

func (mergeDiffPlan) PatchCost() string { return "" }

// fileOpsPlan lays app trees with file operations only, for builders
// without MergeOp and DiffOp. A full build copies the app tree (built on
// an empty filesystem as in the Merge plan) onto the dependency stage: a
// contents-only copy of "/" overwrites the metadata of every directory it
// lands, the destination and its ancestors included, exactly as the app
// layer's entries do when merged. A patch is one file operation on the
// release (patchActions), so the builder reads the release's layers.
type fileOpsPlan struct {
	// why says why this plan was picked, for the progress line.
	why string
}

func (fileOpsPlan) Name() string { return planFileOps }

func (fileOpsPlan) Full(deps, tree llb.State, opts ...llb.ConstraintsOpt) llb.State {
	info := pllb.PinnedCopy()
	info.CopyDirContentsOnly = true
	return deps.File(llb.Copy(tree, "/", "/", info), opts...)
}

func (fileOpsPlan) Patch(release llb.State, spec AppSpec, appCtx llb.State, cs *filelist.ChangeSet, name string, opts ...llb.ConstraintsOpt) llb.State {
	return release.File(patchActions(spec, appCtx, cs), append([]llb.ConstraintsOpt{llb.WithCustomName(name)}, opts...)...)
}

func (p fileOpsPlan) PatchCost() string {
	return p.why + ": the release's layers are read"
}

// ChoosePlan picks the layer plan from the builder's LLB capabilities and
// the PATCH_PLAN build arg.
func ChoosePlan(caps *apicaps.CapSet, args map[string]string) (LayerPlan, error) {
	lacks := missingCaps(caps, pb.CapMergeOp, pb.CapDiffOp)
	switch v := args[keyPlanArg]; v {
	case "", planAuto:
		if len(lacks) > 0 {
			return fileOpsPlan{why: "this builder has no " + lacks[0].name()}, nil
		}
		return mergeDiffPlan{}, nil
	case planMergeDiff:
		if len(lacks) > 0 {
			return nil, builderLacks(lacks, fmt.Sprintf("remove --build-arg %s=%s to build with file operations only, or ", keyPlanArg, v))
		}
		return mergeDiffPlan{}, nil
	case planFileOps:
		return fileOpsPlan{why: keyPlanArg + "=" + planFileOps}, nil
	default:
		return nil, errors.Errorf("%s=%s is not a layer plan: write %s (the default), %s or %s", keyPlanArg, v, planAuto, planMergeDiff, planFileOps)
	}
}

// requiredCaps are what every Patchfile build needs of a builder, checked
// before anything is solved: BuildKit's own error for a missing one names
// no Patchfile line and no way out.
var requiredCaps = []apicaps.CapID{
	pb.CapSourceImage,
	pb.CapSourceLocal,
	pb.CapSourceLocalIncludePatterns,
	pb.CapExecMetaBase,
	pb.CapFileBase,
	// Copies carry exclude patterns: --exclude, and the key that makes a
	// directory's changed mode re-run them (dirsKey).
	pb.CapFileCopyIncludeExcludePatterns,
}

// CheckBuilder fails when the builder lacks a capability every Patchfile
// build needs.
func CheckBuilder(caps *apicaps.CapSet) error {
	if lacks := missingCaps(caps, requiredCaps...); len(lacks) > 0 {
		return builderLacks(lacks, "")
	}
	return nil
}

// CheckDefinition fails when the builder lacks a capability that def
// needs: the plans are picked to need none it lacks, so this is a last
// guard that turns BuildKit's terse refusal into one that says the fix.
func CheckDefinition(def *llb.Definition, caps *apicaps.CapSet) error {
	need := map[apicaps.CapID]bool{}
	for _, md := range def.Metadata {
		for id := range md.Caps {
			need[id] = true
		}
	}
	ids := make([]apicaps.CapID, 0, len(need))
	for id := range need {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if lacks := missingCaps(caps, ids...); len(lacks) > 0 {
		return builderLacks(lacks, "")
	}
	return nil
}

// missingCap is a capability the builder does not have, and its reason.
type missingCap struct {
	id     apicaps.CapID
	reason string
}

// name is how the user knows the capability: BuildKit's own names for
// LLB operations ("MergeOp"), its cap ID otherwise.
func (m missingCap) name() string {
	switch m.id {
	case pb.CapMergeOp:
		return "MergeOp"
	case pb.CapDiffOp:
		return "DiffOp"
	}
	return string(m.id)
}

// missingCaps returns the capabilities of ids the builder lacks. A set
// that holds no capability at all (a client that reports none, as unit
// tests' fakes) lacks nothing.
func missingCaps(caps *apicaps.CapSet, ids ...apicaps.CapID) []missingCap {
	if caps == nil || !caps.Contains(pb.CapSourceImage) {
		return nil
	}
	var out []missingCap
	for _, id := range ids {
		if err := caps.Supports(id); err != nil {
			reason := "not supported"
			var ce *apicaps.CapError
			if errors.As(err, &ce) {
				reason = capReason(ce)
			}
			out = append(out, missingCap{id: id, reason: reason})
		}
	}
	return out
}

// capReason is why a builder lacks a capability, as BuildKit words it.
func capReason(ce *apicaps.CapError) string {
	switch {
	case ce.State == nil:
		return "not supported by this builder's BuildKit"
	case ce.State.Enabled:
		return "not supported"
	case ce.State.DisabledReasonMsg != "":
		return "disabled: " + ce.State.DisabledReasonMsg
	}
	return "disabled"
}

// builderLacks is the error for a builder that cannot run a Patchfile
// build: what it lacks, and the two ways to a builder that can.
func builderLacks(lacks []missingCap, first string) error {
	parts := make([]string, 0, len(lacks))
	for _, m := range lacks {
		parts = append(parts, fmt.Sprintf("%s (%s)", m.name(), m.reason))
	}
	return errors.Errorf("this builder cannot build Patchfiles: it lacks %s. %sUse a BuildKit builder: `docker buildx create --driver docker-container --use` (then build again), or on Docker Engine 23 or later turn on the containerd image store (\"features\": {\"containerd-snapshotter\": true} in /etc/docker/daemon.json, then restart dockerd)",
		strings.Join(parts, ", "), first)
}
