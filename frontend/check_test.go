package frontend

import (
	"context"
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
)

// checkInputs is what the checks are handed for a Patchfile and a context:
// its source, its parse and the build args.
func checkInputs(t *testing.T, text string, files fake.Context, args map[string]string) (*dockerui.Source, *patchfile.File, convert.Opt) {
	t.Helper()
	pf, err := patchfile.Parse([]byte(text))
	require.NoError(t, err)
	sm := llb.NewSourceMap(nil, "Patchfile", "Patchfile", []byte(text))
	sm.Definition = &llb.Definition{}
	opt := convert.Opt{Context: files}
	opt.BuildArgs = args
	return &dockerui.Source{SourceMap: sm}, pf, opt
}

func checkPatchfile(t *testing.T, text string, files fake.Context, args map[string]string) map[string]string {
	t.Helper()
	src, pf, opt := checkInputs(t, text, files, args)
	res, err := Check(context.Background(), src, pf, opt, files)
	require.NoError(t, err)
	found := map[string]string{}
	for _, w := range res.Warnings {
		line := ""
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = " @" + string(rune('0'+w.Location.Ranges[0].Start.Line))
		}
		found[w.RuleName] = w.Detail + line
	}
	return found
}

func TestCheckFindsProblems(t *testing.T) {
	files := fake.Context{
		"package.json":               "{}",
		"node_modules/left-pad/x.js": "x",
		"src/server.js":              "s",
		".dockerignore":              "*.log\nbuild/",
	}
	found := checkPatchfile(t, `ARG BASE=busybox:1.36
FROM ${BASE}
WORKDIR /app
DEPS package.json package-lock.json
APP . /app
`, files, nil)
	require.Contains(t, found[ruleUnpinnedFrom.Name], "FROM busybox:1.36 is not pinned")
	require.Contains(t, found[ruleUnpinnedFrom.Name], "@2")
	require.Contains(t, found[rulePatchWithoutCandidate.Name], "no PATCH line")
	require.Contains(t, found[rulePatchWithoutCandidate.Name], "@5")
	require.Contains(t, found[ruleDepsMatchNoFile.Name], "DEPS package-lock.json matches no file")
	require.Contains(t, found[ruleDepsMatchNoFile.Name], "@4")
	require.Contains(t, found[ruleAppShipsDependencies.Name], "APP ships node_modules/ from the build context", "a manifest the app may read at run time is not a finding")
	require.Contains(t, found[ruleIgnoreExcludesNothing.Name], ".dockerignore has 2 patterns and none matches")
}

func TestCheckCleanPatchfile(t *testing.T) {
	files := fake.Context{
		"package.json":               "{}",
		"package-lock.json":          "{}",
		"node_modules/left-pad/x.js": "x",
		"src/server.js":              "s",
		".dockerignore":              "node_modules\n",
	}
	found := checkPatchfile(t, `FROM busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
WORKDIR /app
DEPS package.json package-lock.json
APP --exclude=package*.json . /app
PATCH registry.example.com/web:release
`, files, nil)
	require.Empty(t, found)
}

// TestCheckSkips: `# check=skip=...` and BUILDKIT_DOCKERFILE_CHECK drop
// rules as they do for Dockerfiles; the build arg wins over the line, and
// a malformed one is an error.
func TestCheckSkips(t *testing.T) {
	files := fake.Context{"node_modules/x/y.js": "y", "src/server.js": "s"}
	const body = `FROM busybox:1.36
APP . /app
`
	all := checkPatchfile(t, body, files, nil)
	require.Contains(t, all, ruleUnpinnedFrom.Name)
	require.Contains(t, all, rulePatchWithoutCandidate.Name)
	require.Contains(t, all, ruleAppShipsDependencies.Name)

	found := checkPatchfile(t, "# check=skip=UnpinnedFrom,PatchWithoutCandidate\n"+body, files, nil)
	require.Equal(t, []string{ruleAppShipsDependencies.Name}, slices.Sorted(maps.Keys(found)))
	found = checkPatchfile(t, "# check=skip=UnpinnedFrom\n"+body, files, map[string]string{keyCheckArg: "skip=all"})
	require.Empty(t, found, "the build arg wins")

	src, pf, opt := checkInputs(t, body, files, map[string]string{keyCheckArg: "skip"})
	_, err := Check(context.Background(), src, pf, opt, files)
	require.ErrorContains(t, err, "BUILDKIT_DOCKERFILE_CHECK=skip")
}

// TestChecksAsErrors: with check=error=true a finding fails the build at
// its line; without it, or with the rule skipped, the build goes on.
func TestChecksAsErrors(t *testing.T) {
	files := fake.Context{"node_modules/x/y.js": "y", "src/server.js": "s"}
	const body = `FROM busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
WORKDIR /app
APP . /app
PATCH registry.example.com/web:release
`
	run := func(text string, args map[string]string) error {
		src, pf, opt := checkInputs(t, text, files, args)
		return checksAsErrors(context.Background(), src, pf, opt, files)
	}
	require.NoError(t, run(body, nil), "findings warn only by default")
	err := run("# check=error=true\n"+body, nil)
	require.ErrorContains(t, err, "check=error=true: AppShipsDependencies: APP ships node_modules/ from the build context")
	require.ErrorContains(t, err, "# check=skip=AppShipsDependencies")
	require.Equal(t, 4, fake.FirstLine(t, err), "the APP line")
	require.NoError(t, run("# check=error=true;skip=AppShipsDependencies\n"+body, nil))
	require.Error(t, run(body, map[string]string{keyCheckArg: "error=true"}), "the build arg too")
}

// TestCheckBuildStages: the checks read build stages too: their FROM and
// DEPS, a stage nothing ships from, and an APP --from that would ship the
// build's dependencies.
func TestCheckBuildStages(t *testing.T) {
	files := fake.Context{"package.json": "{}", "package-lock.json": "{}", "src/index.ts": "x", "node_modules/typescript/x.js": "x"}
	found := checkPatchfile(t, `FROM node:20 AS build
WORKDIR /src
DEPS package.json package-lock.json tsconfig.json
APP . /src
FROM node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef AS unused
FROM node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
APP --from=build /src /app/
PATCH r/a:release
`, files, nil)
	require.Contains(t, found[ruleUnpinnedFrom.Name], "FROM node:20 is not pinned")
	require.Contains(t, found[ruleUnpinnedFrom.Name], "@1")
	require.Contains(t, found[ruleDepsMatchNoFile.Name], "DEPS tsconfig.json matches no file")
	require.Contains(t, found[ruleDepsMatchNoFile.Name], "@3")
	require.Contains(t, found[ruleAppShipsDependencies.Name], "APP ships node_modules/ from the build context")
	require.Contains(t, found[ruleAppShipsDependencies.Name], "@4", "the build stage's APP")
	require.Contains(t, found[ruleUnusedBuildStage.Name], "build stage unused is not built")
	require.Contains(t, found[ruleUnusedBuildStage.Name], "@5")
	require.Contains(t, found[ruleAppShipsBuildDeps.Name], "APP --from=build ships /src, where the build stage's DEPS put its manifests (/src)")
	require.Contains(t, found[ruleAppShipsBuildDeps.Name], "@7")

	// Shipping the outputs, or leaving the dependencies out, is clean.
	for _, app := range []string{"APP --from=build /src/dist /app/", "APP --from=build --exclude=node_modules /src /app/"} {
		found = checkPatchfile(t, `FROM node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef AS build
WORKDIR /src
DEPS package.json package-lock.json
APP --exclude=node_modules . /src
FROM node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`+app+`
PATCH r/a:release
`, files, nil)
		require.Empty(t, found, app)
	}
}

// TestCheckStageFromStage: a stage that starts from another is not an
// unpinned FROM, and the stage it starts from is built.
func TestCheckStageFromStage(t *testing.T) {
	files := fake.Context{"package.json": "{}", "src/index.ts": "x"}
	found := checkPatchfile(t, `FROM node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef AS base
RUN apk add git
FROM base AS build
APP . /src
RUN make
FROM node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
APP --from=build /src/dist /app/
PATCH r/a:release
`, files, nil)
	require.Empty(t, found)
}

// TestCheckCarry: --call=check finds a CARRY that names no cache mount of
// a build command (a typo fails the build), and none where it does, the
// target written with an ARG declared before FROM and brought into the
// stage by a bare ARG.
func TestCheckCarry(t *testing.T) {
	files := fake.Context{"go.mod": "module x", "main.go": "package main"}
	text := func(carry string) string {
		return `ARG CACHE=/root/.cache/go-build
FROM golang@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef AS build
ARG CACHE
APP . /src
RUN --mount=type=cache,target=${CACHE} go build -o /out/server .
` + carry + `
FROM busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
APP --from=build /out /app/
PATCH r/a:release
`
	}
	found := checkPatchfile(t, text("CARRY /root/.cache/go-buld"), files, nil)
	require.Contains(t, found[ruleCarryWithoutCache.Name], "CARRY /root/.cache/go-buld: no build command of stage build mounts a cache there")
	require.Contains(t, found[ruleCarryWithoutCache.Name], "@6")
	require.Empty(t, checkPatchfile(t, text("CARRY /root/.cache/go-build"), files, nil))
}

// TestCheckDepsVariables: a DEPS path written with a variable of the stage
// (an ARG after FROM) is not a finding, which check=error=true would turn
// into a failed build that builds fine; one with an ARG before FROM
// (brought into the stage by a bare ARG) is checked.
func TestCheckDepsVariables(t *testing.T) {
	files := fake.Context{"web/package.json": "{}", "main.go": "package main"}
	found := checkPatchfile(t, fake.PinnedFrom+"ARG DIR=web\nDEPS ${DIR}/package.json\nAPP . /app\nPATCH r/a:release\n", files, nil)
	require.Empty(t, found)
	found = checkPatchfile(t, "ARG DIR=api\n"+fake.PinnedFrom+"ARG DIR\nDEPS ${DIR}/package.json\nAPP . /app\nPATCH r/a:release\n", files, nil)
	require.Contains(t, found[ruleDepsMatchNoFile.Name], "DEPS api/package.json matches no file")
	// An ARG before FROM is not in the stage's scope unless the stage
	// declares it, as in a Dockerfile: the build does not expand it to
	// api, so neither does the check (the base image's ENV may set DIR).
	found = checkPatchfile(t, "ARG DIR=api\n"+fake.PinnedFrom+"DEPS ${DIR}/package.json\nAPP . /app\nPATCH r/a:release\n", files, nil)
	require.Empty(t, found)
	// ENV wins over an ARG of its name, whatever their order.
	found = checkPatchfile(t, fake.PinnedFrom+"ENV DIR=web\nARG DIR=api\nDEPS ${DIR}/package.json\nAPP . /app\nPATCH r/a:release\n", files, nil)
	require.Empty(t, found)
	found = checkPatchfile(t, fake.PinnedFrom+"ENV DIR=api\nDEPS ${DIR}/package.json\nAPP . /app\nPATCH r/a:release\n", files, nil)
	require.Contains(t, found[ruleDepsMatchNoFile.Name], "DEPS api/package.json matches no file")
	// A build arg sets a stage's ARG.
	found = checkPatchfile(t, fake.PinnedFrom+"ARG DIR=api\nDEPS ${DIR}/package.json\nAPP . /app\nPATCH r/a:release\n", files, map[string]string{"DIR": "web"})
	require.Empty(t, found)
}

// TestCheckRulesDocumented: every rule has a name of its own and a line in
// the operations guide's table, which its URL points to.
func TestCheckRulesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, r := range checkRules {
		require.False(t, seen[r.Name], r.Name)
		seen[r.Name] = true
		require.Contains(t, string(doc), "| `"+r.Name+"` |", "docs/operations.md lists %s", r.Name)
		require.Contains(t, r.URL, "docs/operations.md#checking-a-patchfile-without-building")
		require.NotEmpty(t, r.Description)
	}
}
