package convert

import (
	"context"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/apicaps"
	apicapspb "github.com/moby/buildkit/util/apicaps/pb"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/stretchr/testify/require"
)

// builderCaps is the LLB capability set of a builder that has every
// capability this BuildKit knows, changed by edit (nil: unchanged).
func builderCaps(edit func(c *apicapspb.APICap)) *apicaps.CapSet {
	all := pb.Caps.All()
	if edit != nil {
		for _, c := range all {
			edit(c)
		}
	}
	set := pb.Caps.CapSet(all)
	return &set
}

// graphdriverCaps are Docker Engine's on its default storage: MergeOp and
// DiffOp known but disabled, with moby's own reason.
func graphdriverCaps() *apicaps.CapSet {
	return builderCaps(func(c *apicapspb.APICap) {
		if c.ID == string(pb.CapMergeOp) || c.ID == string(pb.CapDiffOp) {
			c.Enabled = false
			c.DisabledReasonMsg = "only enabled with containerd image store backend"
		}
	})
}

func TestChoosePlan(t *testing.T) {
	full := builderCaps(nil)
	old := builderCaps(func(c *apicapspb.APICap) {
		if c.ID == string(pb.CapMergeOp) || c.ID == string(pb.CapDiffOp) {
			c.ID = "" // a BuildKit from before MergeOp: it does not report them
		}
	})
	for _, tc := range []struct {
		name     string
		caps     *apicaps.CapSet
		arg      string
		plan     string
		cost     string
		errParts []string
	}{
		{name: "full builder", caps: full, plan: planMergeDiff},
		{name: "full builder, auto", caps: full, arg: planAuto, plan: planMergeDiff},
		{name: "graphdriver", caps: graphdriverCaps(), plan: planFileOps, cost: "this builder has no MergeOp: the release's layers are read"},
		{name: "old BuildKit", caps: old, plan: planFileOps, cost: "this builder has no MergeOp: the release's layers are read"},
		{name: "client that reports no caps", caps: &apicaps.CapSet{}, plan: planMergeDiff},
		{name: "fileops asked for", caps: full, arg: planFileOps, plan: planFileOps, cost: "PATCH_PLAN=fileops: the release's layers are read"},
		{name: "mergediff on graphdriver", caps: graphdriverCaps(), arg: planMergeDiff, errParts: []string{
			"it lacks MergeOp (disabled: only enabled with containerd image store backend), DiffOp (disabled: only enabled with containerd image store backend)",
			"remove --build-arg PATCH_PLAN=mergediff to build with file operations only",
			"docker buildx create --driver docker-container --use",
			`"containerd-snapshotter": true`,
		}},
		{name: "mergediff on old BuildKit", caps: old, arg: planMergeDiff, errParts: []string{"MergeOp (not supported by this builder's BuildKit)"}},
		{name: "unknown plan", caps: full, arg: "overlay", errParts: []string{"PATCH_PLAN=overlay is not a layer plan: write auto (the default), mergediff or fileops"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := map[string]string{}
			if tc.arg != "" {
				args[keyPlanArg] = tc.arg
			}
			p, err := ChoosePlan(tc.caps, args)
			if tc.errParts != nil {
				require.Error(t, err)
				for _, part := range tc.errParts {
					require.Contains(t, err.Error(), part)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.plan, p.Name())
			require.Equal(t, tc.cost, p.PatchCost())
		})
	}
}

func TestCheckBuilder(t *testing.T) {
	require.NoError(t, CheckBuilder(builderCaps(nil)))
	require.NoError(t, CheckBuilder(graphdriverCaps()), "a graphdriver engine lacks nothing every build needs")
	noPatterns := builderCaps(func(c *apicapspb.APICap) {
		if c.ID == string(pb.CapFileCopyIncludeExcludePatterns) {
			c.ID = ""
		}
	})
	err := CheckBuilder(noPatterns)
	require.Error(t, err)
	require.Contains(t, err.Error(), "this builder cannot build Patchfiles: it lacks file.copy.includeexcludepatterns (not supported by this builder's BuildKit)")
	require.Contains(t, err.Error(), "docker buildx create --driver docker-container --use")
}

// TestPlansNeedWhatTheyClaim: the file-operations plan's definitions need
// no capability a graphdriver engine lacks, and CheckDefinition catches a
// Merge plan sent there anyway.
func TestPlansNeedWhatTheyClaim(t *testing.T) {
	ctx := context.Background()
	deps := llb.Image("docker.io/library/base@sha256:0000000000000000000000000000000000000000000000000000000000000000")
	tree := llb.Scratch().File(llb.Mkfile("/app/a.js", 0o644, []byte("a")))
	spec := AppSpec{Sources: []string{"."}, Dest: "/app/"}
	cs := &filelist.ChangeSet{Changed: []filelist.Entry{{Path: "a.js", Type: filelist.TypeFile, Mode: 0o644}}, Deleted: []filelist.Entry{{Path: "b.js", Type: filelist.TypeFile}}}
	appCtx := llb.Local("context")
	caps := graphdriverCaps()
	for _, tc := range []struct {
		plan  LayerPlan
		fails bool
	}{
		{plan: fileOpsPlan{why: "test"}},
		{plan: mergeDiffPlan{}, fails: true},
	} {
		for name, st := range map[string]llb.State{
			"full":  tc.plan.Full(deps, tree),
			"patch": tc.plan.Patch(deps, spec, appCtx, cs, "patch"),
		} {
			def, err := st.Marshal(ctx)
			require.NoError(t, err)
			err = CheckDefinition(def, caps)
			if tc.fails {
				require.Error(t, err, "%s %s", tc.plan.Name(), name)
				require.Contains(t, err.Error(), "MergeOp (disabled: only enabled with containerd image store backend)")
			} else {
				require.NoError(t, err, "%s %s", tc.plan.Name(), name)
			}
		}
	}
}
