package integration

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/stretchr/testify/require"
)

// pending is a build running in the background.
type pending struct {
	done chan struct{}
	res  result
	err  error
}

func startBuild(t *testing.T, b build) *pending {
	p := &pending{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.res, p.err = buildInProcess(t, b)
	}()
	return p
}

func (p *pending) wait(t *testing.T) (result, error) {
	t.Helper()
	select {
	case <-p.done:
		return p.res, p.err
	case <-time.After(3 * time.Minute):
		t.Fatal("the build hung")
		return result{}, nil
	}
}

// tagDigest returns the digest a tag points to, or "" if it points nowhere.
func tagDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	require.NoError(t, err)
	desc, err := remote.Head(r)
	if err != nil {
		require.Contains(t, err.Error(), "404", "the registry answers for %s", ref)
		return ""
	}
	return desc.Digest.String()
}

// TestRegistryKilledMidPush: the registry crashes while a release is being
// pushed and comes back on the same address and storage. The build fails
// with the registry's error, or succeeds; the tag points to nothing or to a
// whole, valid image; and building again pushes the right image, with the
// digest any build that succeeded reported.
func TestRegistryKilledMidPush(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	rng := rand.New(rand.NewChaCha8([32]byte{5}))
	repo := "faults/push"
	out := env.stack.Ref(repo, "release")
	for i, trigger := range []string{"first upload", "500ms", "1500ms"} {
		t.Run(trigger, func(t *testing.T) {
			big := make([]byte, 12<<20) // incompressible: the push takes a while
			for j := range big {
				big[j] = byte(rng.Uint32())
			}
			writeTree(t, dir, map[string]file{"assets/big.bin": {content: string(big)}})
			before := tagDigest(t, out)

			p := startBuild(t, build{dir: dir, args: fullArgs(), output: out})
			if d, err := time.ParseDuration(trigger); err == nil {
				time.Sleep(d)
			} else {
				for !env.stack.UploadsInProgress(repo) && !isDone(p) {
					time.Sleep(2 * time.Millisecond)
				}
			}
			require.NoError(t, env.stack.KillRegistry())
			res, buildErr := p.wait(t)
			require.NoError(t, env.stack.RestartRegistry(context.Background()))
			if buildErr != nil {
				t.Logf("build %d failed: %s", i, lastLine(buildErr.Error()))
				require.Regexp(t, `connection refused|connection reset|EOF|broken pipe|server closed`, buildErr.Error(), "the error names the registry's failure")
			} else {
				t.Logf("build %d pushed %s before the registry died", i, res.digest)
			}

			// The tag: where it was, or a whole image.
			if d := tagDigest(t, out); d != "" && d != before {
				pullImage(t, out+"@"+d)
				if buildErr == nil {
					require.Equal(t, res.digest, d)
				}
			}
			again, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: out})
			require.NoError(t, err, "the build works once the registry is back")
			if buildErr == nil {
				require.Equal(t, res.digest, again.digest, "same inputs, same image")
			}
			img := pullImage(t, out+"@"+again.digest)
			require.Equal(t, tagDigest(t, out), again.digest)
			require.True(t, string(big) == filesystem(t, img)["app/assets/big.bin"].Content, "the image holds the file")
		})
	}
}

func isDone(p *pending) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestPatchTagMoved: the PATCH tag moves to another release while a patch
// build runs. The build patches the release it resolved, pinned by digest
// from then on, and equals a full build; the next build sees the new tag.
func TestPatchTagMoved(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	repo := "faults/moved"
	ref := func(tag string) string { return env.stack.Ref(repo, tag) }
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("release")})
	require.NoError(t, err)
	r1 := res.digest
	applyChangeSet(t, dir)
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("r2")})
	require.NoError(t, err)
	r2 := res.digest
	writeTree(t, dir, map[string]file{"src/later.js": {content: "later\n"}})
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("full")})
	require.NoError(t, err)
	fullFS := filesystem(t, pullImage(t, ref("full")+"@"+res.digest))

	args := patchArgs(ref("release"))
	args["PATCH_MAX_SHARE"] = "100"
	offset := env.stack.LogSize()
	p := startBuild(t, build{dir: dir, args: args, output: ref("patch1")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, env.stack.WaitForRequest(ctx, offset, "", "/manifests/release"))
	running := !isDone(p)
	copyImage(t, ref("r2")+"@"+r2, ref("release")) // move the tag mid-build
	t.Logf("the tag moved while the build was running: %v", running)
	res, err = p.wait(t)
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+r1, "the release resolved when the build started")
	img := pullImage(t, ref("patch1")+"@"+res.digest)
	require.Equal(t, r1, configOf(t, img).Config.Labels[decide.LabelRelease])
	requireSameFilesystem(t, fullFS, filesystem(t, img))
	require.Equal(t, r2, tagDigest(t, ref("release")))

	res, err = buildInProcess(t, build{dir: dir, args: args, output: ref("patch2")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+r2+": 1 changed, 0 deleted", "the next build patches where the tag points now")
	requireSameFilesystem(t, fullFS, filesystem(t, pullImage(t, ref("patch2")+"@"+res.digest)))
}

// TestConcurrentBuilds: builds of the same Patchfile at once on one
// daemon: the same release twice, the same patch twice, and a patch
// racing the release build that moves its PATCH tag. Each ends with a
// valid image equal to a full build of its inputs; equal inputs give equal
// digests.
func TestConcurrentBuilds(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	repo := "faults/concurrent"
	ref := func(tag string) string { return env.stack.Ref(repo, tag) }

	both := func(a, b build) [2]result {
		t.Helper()
		pa, pb := startBuild(t, a), startBuild(t, b)
		ra, errA := pa.wait(t)
		rb, errB := pb.wait(t)
		require.NoError(t, errA)
		require.NoError(t, errB)
		return [2]result{ra, rb}
	}
	rs := both(build{dir: dir, args: fullArgs(), output: ref("release")}, build{dir: dir, args: fullArgs(), output: ref("release")})
	require.Equal(t, rs[0].digest, rs[1].digest, "same inputs, same release")
	require.Equal(t, rs[0].digest, tagDigest(t, ref("release")))
	releaseFS := filesystem(t, pullImage(t, ref("release")+"@"+rs[0].digest))

	changed := t.TempDir()
	writeTree(t, changed, releaseTree())
	applyChangeSet(t, changed)
	res, err := buildInProcess(t, build{dir: changed, args: fullArgs(), output: ref("full")})
	require.NoError(t, err)
	fullFS := filesystem(t, pullImage(t, ref("full")+"@"+res.digest))

	args := patchArgs(ref("release"))
	rs = both(build{dir: changed, args: args, output: ref("patch")}, build{dir: changed, args: args, output: ref("patch")})
	require.Equal(t, rs[0].digest, rs[1].digest, "same inputs, same patch")
	for _, r := range rs {
		require.Contains(t, r.output, decide.PatchPrefix)
		requireSameFilesystem(t, fullFS, filesystem(t, pullImage(t, ref("patch")+"@"+r.digest)))
	}

	// A patch of the changed tree while the changed tree is released to
	// the tag it patches: it patches the old release or the new one (then
	// without a change); either way, the same filesystem.
	rs = both(build{dir: changed, args: args, output: ref("racing-patch")}, build{dir: changed, args: fullArgs(), output: ref("release")})
	require.Contains(t, rs[0].output, decide.PatchPrefix)
	requireSameFilesystem(t, fullFS, filesystem(t, pullImage(t, ref("racing-patch")+"@"+rs[0].digest)))
	requireSameFilesystem(t, fullFS, filesystem(t, pullImage(t, ref("release")+"@"+rs[1].digest)))
	// And the old release's contents never leak into the new one.
	require.NotEqual(t, releaseFS["app/src/a.js"].Content, fullFS["app/src/a.js"].Content)
}

// TestUnreachableRelease: the registry of the release fails the deploy's
// reads of its config (through a fault-injecting proxy on loopback). A
// registry that keeps failing stops the deploy after three attempts, shown
// in the progress, before any dependency step runs and with nothing
// pushed, unless PATCH_ON_UNREACHABLE=full asks for a full build, which
// warns. A registry that fails once, or stalls past the read timeout and
// then answers, gives the patch.
func TestUnreachableRelease(t *testing.T) {
	proxy, err := env.stack.StartFaultProxy()
	require.NoError(t, err)
	defer proxy.Stop() //nolint:errcheck
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref("faults/unreachable", "release")})
	require.NoError(t, err)
	relDigest := res.digest
	viaProxy := proxy.Addr + "/faults/unreachable:release"
	writeTree(t, dir, map[string]file{"src/a.js": {content: "console.log('A');\n"}})
	args := patchArgs(viaProxy)
	deploy := func(name string, extra map[string]string) (result, error) {
		return buildInProcess(t, build{dir: dir, args: withArgs(args, extra), output: env.stack.Ref("faults/unreachable", name)})
	}

	proxy.Inject(stack.Status503, -1, 0)
	res, err = deploy("down", nil)
	require.Error(t, err, "a registry that keeps failing stops the deploy")
	require.Contains(t, err.Error(), "PATCH: candidate "+viaProxy+" unreachable (3 attempts: ")
	require.Contains(t, err.Error(), "503 Service Unavailable")
	require.Contains(t, err.Error(), "--build-arg PATCH_ON_UNREACHABLE=full")
	require.Contains(t, res.output, "load metadata for "+viaProxy+" (attempt 3 of 3)")
	require.NotContains(t, res.output, "[deps 3/3] RUN", "no dependency step starts")
	require.GreaterOrEqual(t, proxy.Served(), 3)
	require.Empty(t, tagDigest(t, env.stack.Ref("faults/unreachable", "down")), "nothing is pushed")

	res, err = deploy("new-release", map[string]string{"PATCH_MAX_SHARE": "0"})
	require.NoError(t, err, "a release asked for builds in full anyway: it does not stop")
	require.Contains(t, res.output, decide.FullBuildPrefix+"candidate "+viaProxy+" unreachable")

	// Connections reset, with PATCH_ON_UNREACHABLE=full: a full build
	// that warns.
	proxy.Inject(stack.Reset, -1, 0)
	res, err = deploy("full", map[string]string{"PATCH_ON_UNREACHABLE": "full"})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.FullBuildPrefix+"candidate "+viaProxy+" unreachable (3 attempts: ")
	require.Contains(t, res.output, "warning PATCH: candidate "+viaProxy)

	// One failed read (the resolver's own retry or a second attempt
	// absorbs it): the patch.
	proxy.Inject(stack.Status503, 1, 0)
	res, err = deploy("once", nil)
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+relDigest+": 1 changed, 0 deleted")
	require.Equal(t, 1, proxy.Served())

	// Every read held until 30 s after the first: the first attempt
	// gives up at 15 s, the second (from 17 s on, given 15 s) is answered
	// when the stall ends.
	proxy.Inject(stack.Stall, -1, 30*time.Second)
	res, err = deploy("stalled", nil)
	require.NoError(t, err)
	require.Contains(t, res.output, "load metadata for "+viaProxy+" (attempt 2 of 3)")
	require.Contains(t, res.output, decide.PatchPrefix+relDigest+": 1 changed, 0 deleted")
}

// TestReleaseCleanedAway: a registry's clean-up of untagged images
// deletes a release that a running deploy patched (a new release moved the
// tag). The patch keeps every layer it references, and the next deploy
// from it (its tag as the candidate) builds a new release, saying why.
func TestReleaseCleanedAway(t *testing.T) {
	ctx := context.Background()
	reg, err := env.stack.StartRegistry(ctx, "cleanup")
	require.NoError(t, err)
	defer reg.Stop() //nolint:errcheck
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	release, running := reg.Addr+"/shop/app:release", reg.Addr+"/shop/app:running"
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: release})
	require.NoError(t, err)
	r1 := res.digest

	writeTree(t, dir, map[string]file{"src/a.js": {content: "console.log('A');\n"}})
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(release), output: running})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+r1)
	patchDigest := res.digest
	want := filesystem(t, pullImage(t, running+"@"+patchDigest))

	// A new release takes the tag: the first is untagged, and cleaned away.
	writeTree(t, dir, map[string]file{"deps.txt": {content: "dep==2.0\n"}})
	_, err = buildInProcess(t, build{dir: dir, args: withArgs(patchArgs(release), map[string]string{"PATCH_MAX_SHARE": "0"}), output: release})
	require.NoError(t, err)
	out, err := reg.CleanUpUntagged(ctx)
	require.NoError(t, err, out)
	require.Empty(t, tagDigest(t, reg.Addr+"/shop/app@"+r1), "the first release is gone")
	requireSameFilesystem(t, want, filesystem(t, pullImage(t, running+"@"+patchDigest)))

	// The next deploy from the running patch, with the first release's
	// dependencies, on a fresh builder (a builder that read the release
	// keeps its manifest): its release is gone.
	writeTree(t, dir, map[string]file{"deps.txt": {content: "dep==1.0\n"}, "src/a.js": {content: "console.log('AA');\n"}})
	cold, err := env.stack.NewDaemon(ctx, "cleanup")
	require.NoError(t, err)
	defer cold.Stop() //nolint:errcheck
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(running), output: reg.Addr + "/shop/app:next", daemon: cold})
	require.NoError(t, err, "a deleted release is not a registry failure: the deploy builds a new release")
	require.Contains(t, res.output, decide.FullBuildPrefix+"release "+r1+" of candidate "+running+" is gone from the registry")
	require.Contains(t, res.output, "warning PATCH: release "+r1)
	require.Equal(t, "console.log('AA');\n", filesystem(t, pullImage(t, reg.Addr+"/shop/app@"+res.digest))["app/src/a.js"].Content)
}

// TestPushRefused: the registry refuses a deploy's push (over its quota:
// 413; down: 503; the credentials expired: 401). The deploy fails with the registry's answer and the
// tag stays on the image it had; once the registry takes pushes again the
// same deploy goes through.
func TestPushRefused(t *testing.T) {
	proxy, err := env.stack.StartFaultProxy()
	require.NoError(t, err)
	defer proxy.Stop() //nolint:errcheck
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	release := proxy.Addr + "/faults/refused:release"
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: release})
	require.NoError(t, err)
	before := res.digest

	writeTree(t, dir, map[string]file{"src/a.js": {content: "console.log('A');\n"}})
	for _, tc := range []struct {
		fault stack.Fault
		says  string
	}{{stack.Status413, "413 Request Entity Too Large"}, {stack.Status503, "503 Service Unavailable"}, {stack.Status401, "401 Unauthorized"}} {
		proxy.RefusePushes(tc.fault)
		_, err := buildInProcess(t, build{dir: dir, args: patchArgs(release), output: release})
		require.Error(t, err)
		require.Contains(t, err.Error(), tc.says, "the error is the registry's")
		proxy.RefusePushes(stack.Pass)
		require.Equal(t, before, tagDigest(t, env.stack.Ref("faults/refused", "release")), "the tag is untouched")
	}
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(release), output: release})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+before)
	require.Equal(t, res.digest, tagDigest(t, env.stack.Ref("faults/refused", "release")))
}

// TestBuilderKilledMidDeploy: the builder dies (SIGKILL) while a deploy
// pushes (the registry holds the push). The deploy fails with the
// builder's error, the deploy's tag points nowhere, and the next deploy on
// the builder started again on its state is a correct patch.
func TestBuilderKilledMidDeploy(t *testing.T) {
	ctx := context.Background()
	proxy, err := env.stack.StartFaultProxy()
	require.NoError(t, err)
	defer proxy.Stop() //nolint:errcheck
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	release := env.stack.Ref("faults/killed", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: release})
	require.NoError(t, err)
	relDigest := res.digest
	applyChangeSet(t, dir)
	deployRef := proxy.Addr + "/faults/killed:deploy"

	d, err := env.stack.NewDaemon(ctx, "killed")
	require.NoError(t, err)
	proxy.RefusePushes(stack.Stall)
	p := startBuild(t, build{dir: dir, args: patchArgs(release), output: deployRef, daemon: d})
	deadline := time.Now().Add(2 * time.Minute)
	for proxy.HeldPushes() == 0 && !isDone(p) {
		require.True(t, time.Now().Before(deadline), "the deploy reached its push")
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, d.Kill())
	_, buildErr := p.wait(t)
	require.Error(t, buildErr, "the deploy fails with the builder")
	t.Logf("the deploy's error: %s", lastLine(buildErr.Error()))
	proxy.RefusePushes(stack.Pass)
	require.Empty(t, tagDigest(t, env.stack.Ref("faults/killed", "deploy")), "nothing half-written is tagged")

	again, err := env.stack.NewDaemon(ctx, "killed")
	require.NoError(t, err, "the builder starts again on its state")
	defer again.Stop() //nolint:errcheck
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(release), output: deployRef, daemon: again})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+relDigest+": 9 changed, 3 deleted")
	patched := pullImage(t, env.stack.Ref("faults/killed", "deploy")+"@"+res.digest)
	full, err := buildInProcess(t, stackBuild(dir, fullArgs(), env.stack.Ref("faults/killed", "full")))
	require.NoError(t, err)
	requireSameFilesystem(t, withoutDepsTimes(filesystem(t, pullImage(t, env.stack.Ref("faults/killed", "full")+"@"+full.digest))), withoutDepsTimes(filesystem(t, patched)))
}
