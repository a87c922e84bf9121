package integration

import (
	"bytes"
	"encoding/json"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchfile/patchfile/frontend"
	"github.com/patchfile/patchfile/frontend/decide"

	"github.com/patchfile/patchfile/version"
	"github.com/stretchr/testify/require"
)

// TestBuildxCallCheck: `docker buildx build --call=check` prints located
// findings for a Patchfile with problems, without building.
func TestBuildxCallCheck(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile": {content: `ARG BASE=busybox:1.36
FROM ${BASE}
WORKDIR /app
DEPS package.json package-lock.json
APP . /app
`},
		"package.json":               {content: "{}\n"},
		"node_modules/left-pad/x.js": {content: "x\n"},
		"src/server.js":              {content: "s\n"},
	})
	out, err := runBuildx(t, build{dir: dir}, "--call=check")
	require.Error(t, err, "findings make --call=check exit non-zero")
	for _, want := range []string{
		"WARNING: UnpinnedFrom", "FROM busybox:1.36 is not pinned",
		"WARNING: DepsMatchNoFile", "DEPS package-lock.json matches no file",
		" >>> DEPS package.json package-lock.json",
		"WARNING: AppShipsDependencies", "APP ships node_modules/",
		"WARNING: PatchWithoutCandidate",
	} {
		require.Contains(t, string(out), want)
	}

	out, err = runBuildx(t, build{dir: dir}, "--call=outline")
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "BASE")
	require.Contains(t, string(out), "busybox:1.36")
	require.Contains(t, string(out), "PATCH")
	require.Contains(t, string(out), "built by "+version.String(), "the outline names the frontend's version")
}

// TestCallPlan: `docker buildx build --call=plan` says, before a deploy
// runs, what the build then does: the same path and progress line, the
// release, and exactly the entries the patch layer then holds (adds, edits
// and a deletion), as text and as JSON; a dependency change is a full
// build with the same reason. It builds and pushes nothing.
func TestCallPlan(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	release := env.stack.Ref("plan/app", "release")
	args := withArgs(exampleArgs(), map[string]string{"RELEASE": release})
	res, err := buildWithBuildx(t, build{dir: dir, args: args, output: release})
	require.NoError(t, err)
	relDigest := res.digest

	writeTree(t, dir, map[string]file{
		"src/routes.js":      {content: "module.exports = ['/', '/plan'];\n"},
		"src/new/feature.js": {content: "module.exports = 'new';\n"},
	})
	require.NoError(t, os.Remove(filepath.Join(dir, "public/index.html")))
	callPlan := func(format string) string {
		t.Helper()
		ctxDir := withSyntaxLine(t, dir, "Patchfile", env.frontendTag)
		cli := newBuildxCLI(t, env.warm, nil)
		call := "--call=plan"
		if format != "" {
			call += ",format=" + format
		}
		cmdArgs := []string{"buildx", "build", "--builder", cli.builder, "--progress=quiet", call, "-f", filepath.Join(ctxDir, "Patchfile")}
		for k, v := range args {
			cmdArgs = append(cmdArgs, "--build-arg", k+"="+v)
		}
		var stdout, stderr bytes.Buffer
		cmd := cli.command(append(cmdArgs, ctxDir)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "%s%s", stdout.String(), stderr.String())
		return stdout.String()
	}
	blobsBefore, err := env.stack.Blobs()
	require.NoError(t, err)
	var plan frontend.Plan
	require.NoError(t, json.Unmarshal([]byte(callPlan("json")), &plan))
	text := callPlan("")
	t.Logf("--call=plan:\n%s", text)
	blobsAfter, err := env.stack.Blobs()
	require.NoError(t, err)
	require.Empty(t, newBlobs(blobsBefore, blobsAfter), "a plan pushes nothing")

	require.Len(t, plan.Platforms, 1)
	p := plan.Platforms[0]
	require.Equal(t, "patch", p.Path)
	require.True(t, strings.HasPrefix(p.Summary, decide.PatchPrefix+relDigest+": 3 changed, 1 deleted"), p.Summary)
	require.Contains(t, p.Release, "@"+relDigest)
	require.Contains(t, text, p.Summary)
	require.Contains(t, text, "+ /app/src/new/feature.js")
	require.Contains(t, text, "- /app/public/index.html")

	out, err := buildWithBuildx(t, build{dir: dir, args: args, output: env.stack.Ref("plan/app", "deploy")})
	require.NoError(t, err)
	require.Contains(t, out.output, p.Summary, "the build takes the decision the plan showed")
	patched := pullImage(t, env.stack.Ref("plan/app", "deploy")+"@"+out.digest)
	ls := layers(t, patched)
	requireLayerIsPlan(t, layerEntries(t, ls[len(ls)-1]), p, "the example")

	described, err := runBuildx(t, build{dir: dir, args: args}, "--call=subrequests.describe")
	require.NoError(t, err, "%s", described)
	require.Regexp(t, `(?m)^plan +1\.0\.0 +What a build would ship`, string(described), "buildx lists --call=plan")

	// A dependency change: a full build, with the build's own reason.
	writeTree(t, dir, map[string]file{"package.json": {content: `{"name":"shop","version":"2.0.0"}` + "\n"}})
	require.NoError(t, json.Unmarshal([]byte(callPlan("json")), &plan))
	p = plan.Platforms[0]
	require.Equal(t, "full", p.Path)
	require.True(t, strings.HasPrefix(p.Summary, decide.FullBuildPrefix+"dependencies changed since release "+relDigest), p.Summary)
	out, err = buildWithBuildx(t, build{dir: dir, args: args, output: env.stack.Ref("plan/app", "deploy2")})
	require.NoError(t, err)
	require.Contains(t, out.output, p.Summary)
}

// requireLayerIsPlan checks a patch layer against the plan that came
// before it: every entry the plan listed is in the layer (a deletion as
// its whiteout), and every entry of the layer is in the plan or a parent
// of one that is.
func requireLayerIsPlan(t *testing.T, top map[string]entry, p frontend.PlatformPlan, msg string) {
	t.Helper()
	var want []string
	for _, e := range p.Changed {
		want = append(want, strings.TrimPrefix(e.Path, "/"))
	}
	for _, d := range p.Deleted {
		if slices.ContainsFunc(p.Changed, func(e frontend.PlanEntry) bool { return e.Path == d }) {
			continue // a type change: the layer holds the new entry, which replaces the old
		}
		d = strings.TrimPrefix(d, "/")
		want = append(want, path.Join(path.Dir(d), ".wh."+path.Base(d)))
	}
	got := names(top)
	for _, w := range want {
		require.Contains(t, got, w, "%s: the patch layer holds what the plan listed", msg)
	}
	for _, g := range got {
		g = strings.TrimSuffix(g, "/")
		if slices.Contains(want, g) {
			continue
		}
		require.True(t, slices.ContainsFunc(want, func(w string) bool { return strings.HasPrefix(w, g+"/") }),
			"%s: the layer's %s is in the plan, or a parent of what is (plan: %v)", msg, g, want)
	}
}

// planOf is what --call=plan says of b, run in process.
func planOf(t *testing.T, b build) frontend.Plan {
	t.Helper()
	var p frontend.Plan
	subrequest(t, b, "frontend.plan", &p)
	require.Len(t, p.Platforms, 1)
	return p
}

// lintOf is what --call=check says of b, run in process.
func lintOf(t *testing.T, b build) lint.LintResults {
	t.Helper()
	var l lint.LintResults
	subrequest(t, b, "frontend.lint", &l)
	return l
}

// subrequest runs b as the subrequest id in process and decodes its JSON
// result into out.
func subrequest(t *testing.T, b build, id string, out any) {
	t.Helper()
	b.requestID = id
	res, err := buildInProcess(t, b)
	require.NoError(t, err, "%s", res.output)
	require.NoError(t, json.Unmarshal(res.meta["result.json"], out))
}
