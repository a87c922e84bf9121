package integration

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	pllb "github.com/patchfile/patchfile/llb"
	"github.com/stretchr/testify/require"
)

// propPatchfile is the Patchfile of TestPatchProperty; the first %s is
// its build stage (or nothing), the second its APP line. The dependency
// stage writes under the APP destination, which patches must leave alone.
const propPatchfile = `ARG BASE
ARG RELEASE
%sFROM ${BASE}
WORKDIR /app
DEPS deps.txt
RUN mkdir -p node_modules/dep && cp deps.txt node_modules/dep/deps.txt
%s
PATCH ${RELEASE}
CMD ["sh"]
`

// propBuildStage is the build stage of the variant that ships a build's
// outputs. Its "compiler" writes, for the tree it is given, one output per
// entry (gen/: each file, directory and symlink as it is, cp -a), an
// aggregate that changes whenever a file does (ALL: a digest of every
// file's digest), and a build timestamp that changes on every run (stamp):
// the last must make patches bigger, never wrong.
const propBuildStage = `FROM ${BASE} AS build
WORKDIR /src
APP . /src
RUN mkdir -p /out && cp -a /src/. /out/gen \
 && cd /src && find . -type f -exec md5sum {} + | LC_ALL=C sort | md5sum >/out/ALL \
 && date +%s%N >/out/stamp
`

// propVariants are the APP lines, seed N running variant N mod 7: root is
// where the random tree lives in the context, exclude the suffix --exclude
// drops.
var propVariants = []struct {
	app, root, exclude string
	// chmod is APP --chmod's mode, 0 for none.
	chmod int64
	// stage is the build stage APP --from ships from, "" for none; the
	// tree is then at imageDir in the image ("app" otherwise).
	stage, imageDir string
}{
	{app: "APP . /app"},
	{app: "APP --chown=1000:1000 . /app"},
	{app: "APP --exclude=**/*.tmp . /app", exclude: ".tmp"},
	{app: "APP src /app/", root: "src"},
	{app: "APP --chmod=0750 . /app", chmod: 0o750},
	// Several sources: the tree twice, the second copy over the first.
	{app: "APP src/ src/ /app/", root: "src"},
	// A build's outputs: the tree as the build stage copied it, and what
	// it computed from it.
	{app: "APP --from=build /out /app/", stage: propBuildStage, imageDir: "app/gen"},
}

// propBuildOutputs are the outputs of propBuildStage beside the tree.
var propBuildOutputs = []string{"app/gen", "app/ALL", "app/stamp"}

// propPlans are the layer plans (PATCH_PLAN) the property test builds
// with: the one with MergeOp and DiffOp, and the one made of file
// operations only that Docker Engine's default builder runs.
var propPlans = []string{"mergediff", "fileops"}

// withPlan returns args that build with a layer plan.
func withPlan(args map[string]string, plan string) map[string]string {
	args["PATCH_PLAN"] = plan
	return args
}

// The CI run: seven seeds (one per APP variant) of ten steps each, about
// two minutes on a 2-core machine.
const (
	defaultPropertySeed  = 1
	defaultPropertySeeds = 7
	defaultPropertySteps = 10
)

// TestPatchProperty is a seeded, reproducible property test of "never a
// wrong image" (issue 5). A seed picks an APP variant and generates an app
// tree (nested directories; names with spaces, unicode, leading dashes,
// brackets, glob characters, leading "!", leading and trailing blanks, tabs;
// empty and multi-MB files; executables and setuid files; symlinks within
// and across directories and out of the tree; empty directories;
// .dockerignore'd files), makes a release with a full build, then applies
// steps of one to three random changes (edits, same-size edits, deletes,
// renames, deep adds, chmod and chown, symlink retargets, empty directories
// added and removed, files, directories and symlinks turned into one another,
// ignored and excluded files changing). One step in ten changes the mode
// (or owner) of one of the release's directories instead.
//
// After each step it builds a patch (PATCH_MAX_SHARE=100, so the share rule
// never interferes) and a full build of the same inputs, each with a layer
// plan drawn at random (Merge/Diff or file operations only, PATCH_PLAN),
// and requires:
//   - the flattened filesystems are identical (contents, modes, owners,
//     symlink targets, mtimes);
//   - the full build's /app is the tree on disk (owners aside: BuildKit
//     clients send the context as 0:0) and nothing else;
//   - the patch says "patch of release <digest>" and is the release's
//     layers plus one (none when the image cannot see the change), also
//     when PATCH names the previous patch (half the steps) rather than
//     the release, and when a directory of the release changed mode or
//     owner (the layer then holds the directory with its new metadata).
//
// CI runs seeds 1 to 4 (one per APP variant) of 10 steps, about a minute
// on a 2-core machine. A failure logs the seed and every change; replay it,
// or hunt with more seeds and steps, with:
//
//	PATCHFILE_PROPERTY_SEED=7 PATCHFILE_PROPERTY_STEPS=40 go test ./integration -run 'TestPatchProperty$' -v
//	PATCHFILE_PROPERTY_SEED=100 PATCHFILE_PROPERTY_SEEDS=24 PATCHFILE_PROPERTY_STEPS=30 \
//	  go test ./integration -run 'TestPatchProperty$' -timeout 60m
//
// PATCHFILE_PROPERTY_SEED alone replays that one seed.
func TestPatchProperty(t *testing.T) {
	seed := envInt(t, "PATCHFILE_PROPERTY_SEED", defaultPropertySeed)
	steps := envInt(t, "PATCHFILE_PROPERTY_STEPS", defaultPropertySteps)
	seeds := envInt(t, "PATCHFILE_PROPERTY_SEEDS", defaultPropertySeeds)
	if os.Getenv("PATCHFILE_PROPERTY_SEED") != "" && os.Getenv("PATCHFILE_PROPERTY_SEEDS") == "" {
		seeds = 1 // replaying one seed
	}
	for s := seed; s < seed+seeds; s++ {
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { runProperty(t, uint64(s), steps) })
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s=%s", name, v)
	return n
}

// propRelease is the release the steps patch.
type propRelease struct {
	ref, digest string
	layers      []string // layer digests
	fs          map[string]entry
}

func runProperty(t *testing.T, seed uint64, steps int) {
	t.Logf("replay with PATCHFILE_PROPERTY_SEED=%d PATCHFILE_PROPERTY_STEPS=%d", seed, steps)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	variant := propVariants[seed%uint64(len(propVariants))]
	t.Logf("seed %d: %s", seed, variant.app)
	ctxDir := t.TempDir()
	writeTree(t, ctxDir, map[string]file{
		"Patchfile":     {content: fmt.Sprintf(propPatchfile, variant.stage, variant.app)},
		".dockerignore": {content: "**/*.log\n"},
		"deps.txt":      {content: "dep==1.0\n"},
	})
	tree := &propTree{t: t, r: r, root: filepath.Join(ctxDir, variant.root), rootInCtx: filepath.Join(".", variant.root), keep: map[string]bool{}, imageDir: "app"}
	if variant.imageDir != "" {
		tree.imageDir = variant.imageDir
	}
	hashStep := hashStepName
	if variant.stage != "" {
		hashStep = "[internal] hash " + convert.OutputsName("build")
	}
	require.NoError(t, os.MkdirAll(tree.root, 0o755))
	if variant.root == "" {
		tree.keep = map[string]bool{"Patchfile": true, ".dockerignore": true, "deps.txt": true}
	}
	tree.generate()
	chown := strings.Contains(variant.app, "--chown")

	// Which layer plan builds what is drawn from a generator of its own, so
	// that the trees a seed makes do not depend on it: the release is built
	// by one plan, and each step's patch and full build by either, so the
	// plans are compared with each other and patch each other's releases.
	plans := rand.New(rand.NewPCG(seed, 0x91a4))
	plan := func() string { return propPlans[plans.IntN(len(propPlans))] }
	relPlan := propPlans[seed%uint64(len(propPlans))]
	t.Logf("seed %d: release built with PATCH_PLAN=%s", seed, relPlan)

	repo := fmt.Sprintf("prop/s%d", seed)
	res, err := buildInProcess(t, build{dir: ctxDir, args: withPlan(fullArgs(), relPlan), output: env.stack.Ref(repo, "release")})
	require.NoError(t, err)
	rel := loadPropRelease(t, env.stack.Ref(repo, "release"), res.digest)
	// --call=check agrees with the build that just succeeded and shipped
	// the tree: no finding that says it fails or ships the wrong files.
	for _, w := range lintOf(t, build{dir: ctxDir, args: withPlan(fullArgs(), relPlan)}).Warnings {
		require.Equal(t, "DockerignoreExcludesNothing", w.RuleName, "seed %d: --call=check finds %s: %s", seed, w.RuleName, w.Detail)
	}
	requireMatchesDisk(t, tree, variant.exclude, chown, variant.chmod, rel.fs)

	// One step in ten changes a directory's mode; which one does not depend
	// on the number of steps, so a shorter run replays a longer one's start.
	dirStep := r.IntN(10)
	lastPatch := "" // the last patch of rel: half the steps name it in PATCH
	for step := 1; step <= steps; step++ {
		var changes []string
		if dirs := releaseDirsOnDisk(tree, rel.fs); step%10 == dirStep && len(dirs) > 0 {
			changes = append(changes, tree.changeDirMetadata(dirs))
		} else {
			for range 1 + r.IntN(3) {
				changes = append(changes, tree.change(variant.exclude))
			}
		}
		candidate, kind := rel.ref, "release"
		if lastPatch != "" && r.IntN(2) == 0 {
			candidate, kind = lastPatch, "its patch"
		}
		patchPlan, fullPlan := plan(), plan()
		patchHashStep, fullHashStep := plans.IntN(2) == 0, plans.IntN(2) == 0
		t.Logf("seed %d step %d (PATCH %s %s; patch %s %s, full %s %s): %s", seed, step, kind, candidate[strings.LastIndex(candidate, ":")+1:],
			patchPlan, hashing(patchHashStep), fullPlan, hashing(fullHashStep), strings.Join(changes, "; "))

		patchRef := env.stack.Ref(repo, fmt.Sprintf("patch%d", step))
		args := withPlan(patchArgs(candidate), patchPlan)
		args["PATCH_MAX_SHARE"] = "100"
		if r.IntN(6) == 0 && variant.stage == "" {
			// (A build stage's outputs are refused by a message of their
			// own, TestBuildStageRefusesSpecialFiles.)
			requireSameRefusal(t, tree, ctxDir, build{args: args, hashInBuilder: patchHashStep},
				build{args: withPlan(fullArgs(), fullPlan), hashInBuilder: fullHashStep}, fmt.Sprintf("seed %d step %d", seed, step))
		}
		planned := planOf(t, build{dir: ctxDir, args: args, hashInBuilder: patchHashStep}).Platforms[0]
		pres, err := buildInProcess(t, build{dir: ctxDir, args: args, output: patchRef, hashInBuilder: patchHashStep})
		require.NoError(t, err, "seed %d step %d: patch build", seed, step)
		require.Contains(t, pres.output, planned.Summary, "seed %d step %d: the build takes the decision --call=plan showed", seed, step)
		fres, err := buildInProcess(t, build{dir: ctxDir, args: withPlan(fullArgs(), fullPlan), output: env.stack.Ref(repo, "full"), hashInBuilder: fullHashStep})
		require.NoError(t, err, "seed %d step %d: full build", seed, step)
		for _, b := range []struct {
			output string
			step   bool
		}{{pres.output, patchHashStep}, {fres.output, fullHashStep}} {
			require.Equal(t, b.step, strings.Contains(b.output, hashStep), "seed %d step %d: %s", seed, step, hashing(b.step))
		}
		patched := pullImage(t, patchRef+"@"+pres.digest)
		patchFS := resolvedFilesystem(t, patched)
		fullFS := resolvedFilesystem(t, pullImage(t, env.stack.Ref(repo, "full")+"@"+fres.digest))

		newStamp := false
		if variant.stage != "" {
			// The build timestamp is the patch's own build's, which may
			// not be the full build's run (another layer plan is another
			// cache key; an unseen change, a cached run): the one entry
			// that may differ, and the patch carries it whenever it is
			// not the release's.
			newStamp = patchFS["app/stamp"].Content != rel.fs["app/stamp"].Content
			patchFS = maps.Clone(patchFS)
			patchFS["app/stamp"] = fullFS["app/stamp"]
		}
		requireSameFilesystem(t, fullFS, patchFS)
		requireMatchesDisk(t, tree, variant.exclude, chown, variant.chmod, fullFS)
		got := layerList(t, patched)
		require.Contains(t, pres.output, decide.PatchPrefix+rel.digest, "seed %d step %d", seed, step)
		require.Equal(t, rel.digest, configOf(t, patched).Config.Labels[decide.LabelRelease], "a patch of a patch is a patch of its release")
		lastPatch = patchRef
		require.Equal(t, rel.layers, got[:min(len(got), len(rel.layers))], "the release's layers come first")
		unchanged := sameApp(rel.fs, fullFS)
		if variant.stage != "" {
			unchanged = sameAppBut(rel.fs, fullFS, "app/stamp") && !newStamp
		}
		if unchanged {
			require.Contains(t, pres.output, "no change, the release itself")
			require.Len(t, got, len(rel.layers))
			continue
		}
		require.Len(t, got, len(rel.layers)+1, "seed %d step %d: the release plus one layer", seed, step)
		top := layerEntries(t, layers(t, patched)[len(got)-1])
		requireLayerIsPlan(t, top, planned, fmt.Sprintf("seed %d step %d", seed, step))
		for n := range top {
			require.True(t, n == "app" || strings.HasPrefix(n, "app/"), "the patch layer holds %s, outside /app", n)
		}
		if newStamp {
			require.Contains(t, top, "app/stamp", "seed %d step %d: a new timestamp ships", seed, step)
		}
		if variant.stage != "" {
			if rel.fs["app/ALL"].Content != fullFS["app/ALL"].Content {
				require.Contains(t, top, "app/ALL", "seed %d step %d: a changed aggregate ships", seed, step)
			}
		}
		for _, d := range changedDirs(rel.fs, fullFS) {
			require.Contains(t, top, "app/"+d, "seed %d step %d: directory %s changed mode or owner: the layer holds it", seed, step, d)
			require.Equal(t, fullFS["app/"+d], top["app/"+d], "seed %d step %d: with its new metadata", seed, step)
		}
	}
}

// hashStepName is the step that hashes the app files in the builder.
const hashStepName = "[internal] hash application files"

// hashing names how a build reads the context.
func hashing(inBuilder bool) string {
	if inBuilder {
		return "hashed in a step"
	}
	return "hashed through the gateway"
}

// requireSameRefusal adds a file no build may ship to the tree, checks that
// the patch and the full build refuse it with the same error, located at
// the APP line, and removes it.
func requireSameRefusal(t *testing.T, tree *propTree, ctxDir string, patch, full build, step string) {
	t.Helper()
	rel, refusal := tree.unshippable()
	t.Logf("%s: %s added, which both builds must refuse", step, strconv.Quote(rel))
	var located []string
	for _, b := range []build{patch, full} {
		b.dir, b.output = ctxDir, env.stack.Ref("prop/refused", "x")
		_, err := buildInProcess(t, b)
		require.Error(t, err, "%s: %q is refused", step, rel)
		require.Contains(t, err.Error(), refusal, step)
		srcs := errdefs.Sources(err)
		require.NotEmpty(t, srcs, "%s: the error carries the Patchfile as its source", step)
		line := srcs[0].Ranges[0].Start.Line
		located = append(located, fmt.Sprintf("line %d: %s", line, strings.TrimSpace(strings.Split(string(srcs[0].Info.Data), "\n")[line-1])))
	}
	require.Equal(t, located[0], located[1], "%s: the same line", step)
	require.Contains(t, located[0], ": APP ", step)
	require.NoError(t, os.Remove(tree.abs(rel)))
}

func loadPropRelease(t *testing.T, ref, digest string) propRelease {
	img := pullImage(t, ref+"@"+digest)
	return propRelease{ref: ref, digest: digest, layers: layerList(t, img), fs: resolvedFilesystem(t, img)}
}

// layerList is an image's layer digests, in order.
func layerList(t *testing.T, img v1.Image) []string {
	t.Helper()
	var out []string
	for _, l := range layers(t, img) {
		d, err := l.Digest()
		require.NoError(t, err)
		out = append(out, d.String())
	}
	return out
}

// releaseDirsOnDisk are the release's app directories still on disk as
// directories (relative to the tree root).
func releaseDirsOnDisk(p *propTree, fs map[string]entry) []string {
	var out []string
	for _, n := range names(fs) {
		rel, ok := strings.CutPrefix(n, p.imageDir+"/")
		if !ok || fs[n].Type != tar.TypeDir || strings.HasPrefix(rel, "node_modules") {
			continue
		}
		if st, err := os.Lstat(p.abs(rel)); err == nil && st.IsDir() {
			out = append(out, rel)
		}
	}
	return out
}

// changedDirs are the app directories of both images whose mode or owner
// differ (relative to /app).
func changedDirs(old, cur map[string]entry) []string {
	var out []string
	for _, n := range names(cur) {
		c, o := cur[n], old[n]
		rel, ok := strings.CutPrefix(n, "app/")
		if ok && c.Type == tar.TypeDir && o.Type == tar.TypeDir && (c.Mode != o.Mode || c.UID != o.UID || c.GID != o.GID) {
			out = append(out, rel)
		}
	}
	return out
}

// sameAppBut tells whether two images have the same /app but for one entry.
func sameAppBut(a, b map[string]entry, but string) bool {
	a, b = maps.Clone(a), maps.Clone(b)
	delete(a, but)
	delete(b, but)
	return sameApp(a, b)
}

// sameApp tells whether two images have the same /app.
func sameApp(a, b map[string]entry) bool {
	a, b = under(a, "app"), under(b, "app")
	if len(a) != len(b) {
		return false
	}
	for n, e := range a {
		if b[n] != e {
			return false
		}
	}
	return true
}

// requireMatchesDisk checks an image's /app against the tree on disk: every
// entry .dockerignore and --exclude keep (by suffix) is there with its type,
// mode, owner (0:0 or --chown's), content or target and the pinned mtime, and
// nothing else is, besides what the dependency stage wrote (DEPS deps.txt
// and node_modules).
func requireMatchesDisk(t *testing.T, p *propTree, exclude string, chown bool, chmod int64, image map[string]entry) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(p.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.root, path)
		if rel == "." {
			return nil
		}
		if strings.HasSuffix(rel, ".log") || (exclude != "" && strings.HasSuffix(rel, exclude)) {
			if d.IsDir() {
				return filepath.SkipDir // an ignored directory takes its entries along
			}
			return nil
		}
		n := p.imageDir + "/" + filepath.ToSlash(rel)
		seen[n] = true
		info, err := os.Lstat(path)
		require.NoError(t, err)
		got, ok := image[n]
		if !ok && info.Mode()&os.ModeSymlink != 0 {
			if target, _ := os.Readlink(path); climbsOut(rel, target) {
				return nil
			}
		}
		require.True(t, ok, "%s is missing from the image", n)
		// BuildKit clients send the context owned by 0:0 (resetUIDAndGID in
		// client/solve.go), as docker build does: owners on disk never count.
		owner := [2]int{0, 0}
		if chown {
			owner = [2]int{1000, 1000}
		}
		require.Equal(t, owner, [2]int{got.UID, got.GID}, "owner of %s", n)
		require.Equal(t, pllb.PinnedTime.Unix(), got.ModTime, "mtime of %s", n)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			require.NoError(t, err)
			require.Equal(t, byte(tar.TypeSymlink), got.Type, "type of %s", n)
			require.Equal(t, target, got.Linkname, "target of %s", n)
			return nil
		case info.IsDir():
			require.Equal(t, byte(tar.TypeDir), got.Type, "type of %s", n)
		default:
			require.Equal(t, byte(tar.TypeReg), got.Type, "type of %s", n)
			dt, err := os.ReadFile(path)
			require.NoError(t, err)
			require.True(t, string(dt) == got.Content, "content of %s", n)
		}
		want := tarMode(info.Mode())
		if chmod != 0 {
			want = chmod
		}
		require.Equal(t, fmt.Sprintf("%o", want), fmt.Sprintf("%o", got.Mode&0o7777), "mode of %s", n)
		return nil
	})
	require.NoError(t, err)
	for n := range image {
		fromDeps := n == "app/deps.txt" || n == "app/node_modules" || strings.HasPrefix(n, "app/node_modules/")
		if strings.HasPrefix(n, "app/") && !seen[n] && !fromDeps && !(p.imageDir != "app" && slices.Contains(propBuildOutputs, n)) {
			require.Fail(t, "the image holds "+n+", which the context does not")
		}
	}
}

// tarMode is an os.FileMode's permission and special bits as tar has them.
func tarMode(m os.FileMode) int64 {
	out := int64(m.Perm())
	for bit, tb := range map[os.FileMode]int64{os.ModeSetuid: 0o4000, os.ModeSetgid: 0o2000, os.ModeSticky: 0o1000} {
		if m&bit != 0 {
			out |= tb
		}
	}
	return out
}

// climbsOut tells whether a symlink at link (relative to APP's source
// directory) has a relative target that climbs two or more levels above
// that directory. BuildKit v0.33.1 leaves such a symlink out, silently and
// for every frontend (a Dockerfile's COPY . too), while one level up is
// kept; full builds and patches agree, since both read the same context.
// With APP src /app the levels count from src, not from the context root
// (measured: src/k -> ../../a is left out). The test's renames move
// symlinks up and make some.
func climbsOut(link, target string) bool {
	if filepath.IsAbs(target) {
		return false
	}
	depth := strings.Count(filepath.ToSlash(filepath.Dir(link)), "/")
	if filepath.Dir(link) != "." {
		depth++
	}
	for _, c := range strings.Split(filepath.ToSlash(target), "/") {
		switch c {
		case "..":
			if depth--; depth <= -2 {
				return true
			}
		case ".", "":
		default:
			depth++
		}
	}
	return false
}
