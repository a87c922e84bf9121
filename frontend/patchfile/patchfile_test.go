package patchfile

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	pf, err := Parse([]byte(`# syntax=registry.example.com/patchfile:1
ARG BASE=alpine
FROM --platform=linux/arm64 ${BASE}@` + fake.TestDigest + `
WORKDIR /app
DEPS --chown=1000:1000 package.json package-lock.json
RUN --mount=type=cache,target=/cache/npm npm ci
APP --chown=1000 --chmod=0644 --exclude=*.md --exclude=test/ src static /app/
PATCH registry.example.com/shop/web:release registry.example.com/shop/web:previous
ENV NODE_ENV=production
PATCH registry.example.com/shop/web:old
CMD ["node", "src/server.js"]
`))
	require.NoError(t, err)
	require.Len(t, pf.MetaArgs, 1)
	require.Equal(t, "BASE", pf.MetaArgs[0].Args[0].Key)
	require.Equal(t, "${BASE}@"+fake.TestDigest, pf.From.Image)
	require.Equal(t, "linux/arm64", pf.From.Platform)
	require.Equal(t, 3, pf.From.Location()[0].Start.Line)

	require.Equal(t, 3, pf.AppIndex)
	require.Len(t, pf.DepsSteps(), 3)
	require.IsType(t, &instructions.WorkdirCommand{}, pf.DepsSteps()[0])
	deps, ok := pf.DepsSteps()[1].(*DepsInstruction)
	require.True(t, ok)
	require.Equal(t, []string{"package.json", "package-lock.json"}, deps.Sources)
	require.Equal(t, "1000:1000", deps.Chown)

	require.Equal(t, []string{"src", "static"}, pf.App.Sources)
	require.Equal(t, "/app/", pf.App.Dest)
	require.Equal(t, "1000", pf.App.Chown)
	require.Equal(t, "0644", pf.App.Chmod)
	require.Equal(t, []string{"*.md", "test/"}, pf.App.Excludes)
	require.Equal(t, 7, pf.App.Location()[0].Start.Line)

	require.IsType(t, &instructions.RunCommand{}, pf.DepsSteps()[2])
	require.Same(t, pf.App, pf.Steps[pf.AppIndex])
	// PATCH is not a step.
	require.Len(t, pf.Steps, 6)
	require.Len(t, pf.ConfigSteps(), 2)
	require.IsType(t, &instructions.EnvCommand{}, pf.ConfigSteps()[0])
	require.IsType(t, &instructions.CmdCommand{}, pf.ConfigSteps()[1])
	require.Len(t, pf.Patch, 2)
	require.Equal(t, []string{"registry.example.com/shop/web:release", "registry.example.com/shop/web:previous"}, pf.Patch[0].Refs)
	require.Equal(t, []string{"registry.example.com/shop/web:old"}, pf.Patch[1].Refs)
	require.Equal(t, '\\', pf.Escape)
}

func TestParseJSONApp(t *testing.T) {
	pf, err := Parse([]byte(fake.PinnedFrom + `APP ["my dir", "$HOME", "/srv/app"]` + "\n"))
	require.NoError(t, err)
	// JSON words are literal: quoted so that expansion keeps them whole.
	require.Equal(t, []string{"'my dir'", "'$HOME'"}, pf.App.Sources)
	require.Equal(t, "/srv/app", pf.App.Dest)
}

// TestParsePatchfileUnpinned checks an unpinned FROM parses: Convert
// reports it, after expanding ARGs (see TestConvertErrors).
func TestParseUnpinned(t *testing.T) {
	pf, err := Parse([]byte("FROM alpine:3.20\nAPP . /app\n"))
	require.NoError(t, err)
	require.Equal(t, "alpine:3.20", pf.From.Image)
}

func TestParseWarnings(t *testing.T) {
	pf, err := Parse([]byte(fake.PinnedFrom + "RUN a \\\n\n  b\nAPP . /app\n"))
	require.NoError(t, err)
	require.Len(t, pf.Warnings, 1)
	require.Contains(t, pf.Warnings[0], "Empty continuation line")
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name      string
		patchfile string
		want      []string // fragments of the error text
		line      int
	}{
		{name: "unknown APPP", patchfile: fake.PinnedFrom + "RUN true\nAPPP . /app\n", want: []string{"unknown instruction APPP", "did you mean APP?"}, line: 3},
		{name: "unknown RUNN", patchfile: fake.PinnedFrom + "RUNN npm ci\nAPP . /app\n", want: []string{"unknown instruction RUNN", "did you mean RUN?"}, line: 2},
		{name: "unknown lower case", patchfile: fake.PinnedFrom + "app . /app\ndepz x\n", want: []string{"unknown instruction depz", "did you mean DEPS?"}, line: 3},
		{name: "COPY", patchfile: fake.PinnedFrom + "COPY . /app\n", want: []string{"COPY is not a Patchfile instruction", "DEPS <file>...", "APP <src>... <dest>"}, line: 2},
		{name: "ADD", patchfile: fake.PinnedFrom + "APP . /app\nADD x.tgz /x\n", want: []string{"ADD is not a Patchfile instruction"}, line: 3},
		{name: "SHELL", patchfile: fake.PinnedFrom + "SHELL [\"/bin/bash\", \"-c\"]\nAPP . /app\n", want: []string{"SHELL is not supported", "JSON form"}, line: 2},
		{name: "RUN after APP", patchfile: fake.PinnedFrom + "WORKDIR /app\nAPP . /app\nENV A=b\nRUN npm run build\n", want: []string{"RUN after APP would run again on every change", "move it before APP (line 3)", "DEPS", "build stage", "APP --from=build"}, line: 5},
		{name: "DEPS after APP", patchfile: fake.PinnedFrom + "APP . /app\nDEPS package.json\n", want: []string{"DEPS after APP", "move this line before APP (line 2)"}, line: 3},
		{name: "second APP", patchfile: fake.PinnedFrom + "\nAPP src /app/\nAPP static /app/\n", want: []string{"a second APP", "the first is on line 3"}, line: 4},
		{name: "second FROM", patchfile: fake.PinnedFrom + "APP . /app\n" + fake.PinnedFrom + "APP --from=build /src /app\n", want: []string{"a second FROM", "needs a name", "AS build on line 1", "APP --from=build"}, line: 3},
		{name: "CARRY in the final stage", patchfile: fake.PinnedFrom + "APP . /app\nCARRY /root/.cache/go-build\n", want: []string{"CARRY in the final stage", "move it to the build stage", "target=/root/.cache/go-build"}, line: 3},
		{name: "CARRY without APP", patchfile: "FROM g@" + fake.TestDigest + " AS build\nRUN --mount=type=cache,target=/c true\nCARRY /c\n" + fake.PinnedFrom + "APP --from=build /out /app/\n", want: []string{"CARRY in build stage build, which has no APP", "RUN --mount=type=cache,target=/c <build>"}, line: 3},
		{name: "CARRY relative", patchfile: "FROM g@" + fake.TestDigest + " AS build\nAPP . /src\nCARRY .cache\n" + fake.PinnedFrom + "APP --from=build /out /app/\n", want: []string{"CARRY .cache: name the cache mount by its target, an absolute path"}, line: 3},
		{name: "CARRY nothing", patchfile: "FROM g@" + fake.TestDigest + " AS build\nAPP . /src\nCARRY\n" + fake.PinnedFrom + "APP --from=build /out /app/\n", want: []string{"CARRY needs the target of a cache mount"}, line: 3},
		{name: "stage name taken", patchfile: "FROM a@" + fake.TestDigest + " AS build\nFROM b@" + fake.TestDigest + " AS build\n" + fake.PinnedFrom + "APP --from=build / /app\n", want: []string{"a stage named build is already on line 1"}, line: 2},
		{name: "stage name", patchfile: "FROM a@" + fake.TestDigest + " AS Build\n" + fake.PinnedFrom + "APP . /app\n", want: []string{"FROM ... AS Build", "lower-case letter"}, line: 1},
		{name: "APP --from unknown", patchfile: "FROM a@" + fake.TestDigest + " AS build\n" + fake.PinnedFrom + "APP --from=buidl /src/dist /app/\n", want: []string{"APP --from=buidl names no build stage", "the build stages are build", "did you mean build?"}, line: 3},
		{name: "APP --from none", patchfile: fake.PinnedFrom + "APP --from=build /src/dist /app/\n", want: []string{"APP --from=build names no build stage", "FROM <image>@sha256:<digest> AS build"}, line: 2},
		{name: "APP --from itself", patchfile: "FROM a@" + fake.TestDigest + " AS build\nFROM b@" + fake.TestDigest + " AS run\nAPP --from=run /src /app/\n", want: []string{"APP --from=run names this stage itself"}, line: 3},
		{name: "APP --from in a build stage", patchfile: "FROM a@" + fake.TestDigest + " AS web\nFROM a@" + fake.TestDigest + " AS build\nAPP --from=web / /src\n" + fake.PinnedFrom + "APP --from=build /src /app/\n", want: []string{"APP --from=web in build stage build", "only the final stage ships from a build stage"}, line: 3},
		{name: "CMD in a build stage", patchfile: "FROM a@" + fake.TestDigest + " AS build\nAPP . /src\nRUN make\nCMD [\"x\"]\n" + fake.PinnedFrom + "APP --from=build /src/out /app/\n", want: []string{"CMD in build stage build sets nothing", "final stage"}, line: 4},
		{name: "PATCH in a build stage", patchfile: "FROM a@" + fake.TestDigest + " AS build\nPATCH r/a:release\n" + fake.PinnedFrom + "APP --from=build /src/out /app/\n", want: []string{"PATCH in build stage build", "after the last FROM (line 3)"}, line: 2},
		{name: "DEPS after APP in a build stage", patchfile: "FROM a@" + fake.TestDigest + " AS build\nAPP . /src\nDEPS go.sum\n" + fake.PinnedFrom + "APP --from=build /src/out /app/\n", want: []string{"DEPS after APP", "before APP (line 2)"}, line: 3},
		{name: "second APP in a build stage", patchfile: "FROM a@" + fake.TestDigest + " AS build\nAPP src /src/\nAPP lib /src/\n" + fake.PinnedFrom + "APP --from=build /src/out /app/\n", want: []string{"a second APP", "the first is on line 2"}, line: 3},
		{name: "missing FROM", patchfile: "# comment\nARG A=1\nARG B=2\n", want: []string{"has no FROM", "FROM <image>@sha256:<digest>"}, line: 1},
		{name: "missing APP", patchfile: fake.PinnedFrom + "RUN a \\\n  b\n\n# the end\n", want: []string{"has no APP", "APP . /app"}, line: 3},
		{name: "instruction before FROM", patchfile: "ARG A=1\nRUN true\n" + fake.PinnedFrom + "APP . /app\n", want: []string{"RUN before FROM", "only ARG may come before it"}, line: 2},
		{name: "APP unknown flag", patchfile: fake.PinnedFrom + "APP --foo=1 . /app\n", want: []string{"unknown flag: --foo"}, line: 2},
		{name: "APP --chown without value", patchfile: fake.PinnedFrom + "APP --chown . /app\n", want: []string{"missing a value on flag: --chown"}, line: 2},
		{name: "DEPS unknown flag", patchfile: fake.PinnedFrom + "DEPS --exclude=x package.json\nAPP . /app\n", want: []string{"unknown flag: --exclude"}, line: 2},
		{name: "PATCH flag", patchfile: fake.PinnedFrom + "APP . /app\nPATCH --all r/a:1\n", want: []string{"unknown flag: --all"}, line: 3},
		{name: "FROM unknown flag", patchfile: "FROM --foo=x alpine@" + fake.TestDigest + "\nAPP . /app\n", want: []string{"unknown flag: --foo"}, line: 1},
		{name: "FROM two words", patchfile: "FROM alpine node\nAPP . /app\n", want: []string{"FROM takes one image, got 2 words"}, line: 1},
		{name: "FROM no image", patchfile: "FROM\nAPP . /app\n", want: []string{"FROM needs an image pinned by digest"}, line: 1},
		{name: "APP one word", patchfile: fake.PinnedFrom + "APP /app\n", want: []string{"APP needs sources and a destination", "APP . /app"}, line: 2},
		{name: "APP only flags", patchfile: fake.PinnedFrom + "APP --chown=1 \\\n  --chmod=0644\n", want: []string{"APP needs sources and a destination"}, line: 2},
		{name: "DEPS no args", patchfile: fake.PinnedFrom + "DEPS\nAPP . /app\n", want: []string{"DEPS needs at least one file"}, line: 2},
		{name: "PATCH no args", patchfile: fake.PinnedFrom + "APP . /app\nPATCH\n", want: []string{"PATCH needs at least one release image"}, line: 3},
		{name: "RUN heredoc", patchfile: fake.PinnedFrom + "RUN <<EOF\nnpm ci\nEOF\nAPP . /app\n", want: []string{"RUN with a heredoc is not supported", "inline"}, line: 2},
		{name: "RUN unknown flag", patchfile: fake.PinnedFrom + "RUN --mnt=type=cache,target=/x true\nAPP . /app\n", want: []string{"unknown flag: --mnt"}, line: 2},
		{name: "ENV no value", patchfile: fake.PinnedFrom + "ENV\nAPP . /app\n", want: []string{"ENV requires at least one argument"}, line: 2},
		{name: "lexer error", patchfile: "# escape=x\n" + fake.PinnedFrom + "APP . /app\n", want: []string{"invalid escape token"}, line: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pf, err := Parse([]byte(tc.patchfile))
			require.Error(t, err)
			require.Nil(t, pf)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.Equal(t, tc.line, fake.FirstLine(t, err), "error: %v", err)
		})
	}
}

// TestParsePatchfileJoinsErrors checks every problem is reported at its line.
func TestParseJoinsErrors(t *testing.T) {
	_, err := Parse([]byte(fake.PinnedFrom + "RUNN a\nDEPS\nAPP . /app\nRUN b\nCOPY x y\n"))
	require.Error(t, err)
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "not a joined error: %T", err)
	var lines []int
	for _, e := range joined.Unwrap() {
		lines = append(lines, fake.FirstLine(t, e))
	}
	require.Equal(t, []int{2, 3, 5, 6}, lines)
	msg := err.Error()
	require.Equal(t, 4, strings.Count(msg, "\n")+1, msg)
}

// TestDesignExampleParses: the Patchfile the design notes first showed
// users, trailing comments included, is valid.
func TestDesignExampleParses(t *testing.T) {
	pf, err := Parse([]byte(`# syntax=registry.example.com/patchfile:1
FROM node:20-bookworm-slim@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef   # pinned base: a digest is required
WORKDIR /app
DEPS package.json package-lock.json           # dependency manifests: their content keys the dependency stage
RUN --mount=type=cache,target=/cache/npm npm ci --cache /cache/npm --omit=dev
APP . /app                                     # application files: shipped as a diff-copy layer
PATCH registry.example.com/shop/web:release    # the release image to patch (tag or digest; several = first that matches)
ENV NODE_ENV=production
EXPOSE 8080
USER node
CMD ["node", "src/server.js"]
`))
	require.NoError(t, err)
	require.Equal(t, "node:20-bookworm-slim@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", pf.From.Image)
	require.Equal(t, []string{"."}, pf.App.Sources)
	require.Equal(t, "/app", pf.App.Dest)
	require.Equal(t, []string{"registry.example.com/shop/web:release"}, pf.Patch[0].Refs)
	deps := pf.DepsSteps()[1].(*DepsInstruction)
	require.Equal(t, []string{"package.json", "package-lock.json"}, deps.Sources)
}

// TestParsePatchfileEscapeInFrom: FROM splits its words with the escape
// character `# escape=` sets, as every other instruction does (the
// escapes themselves go when the word is expanded).
func TestParseEscapeInFrom(t *testing.T) {
	pf, err := Parse([]byte("FROM alpine\\ 3.20\nAPP . /app\n"))
	require.NoError(t, err, `an escaped blank does not split the word`)
	require.Equal(t, "alpine\\ 3.20", pf.From.Image)

	_, err = Parse([]byte("# escape=`\nFROM alpine\\ 3.20\nAPP . /app\n"))
	require.ErrorContains(t, err, "FROM takes one image, got 2 words", "with # escape=` a backslash is a plain character")
	pf, err = Parse([]byte("# escape=`\nFROM alpine` 3.20\nAPP . /app\n"))
	require.NoError(t, err)
	require.Equal(t, "alpine` 3.20", pf.From.Image)
}

// TestParseBuildStages: named stages before the last are build stages,
// with their own dependency steps, sources and build commands; the last
// is the image, and its APP ships from one of them.
func TestParseBuildStages(t *testing.T) {
	pf, err := Parse([]byte(`ARG GO=golang@` + fake.TestDigest + `
FROM ${GO} AS build
WORKDIR /src
DEPS go.mod go.sum
RUN go mod download
APP . /src
ENV CGO_ENABLED=0
RUN go build -o /out/server .
FROM busybox@` + fake.TestDigest + ` AS runtime
APP --from=build --chmod=0755 /out/server /app/
PATCH registry.example.com/shop/api:release
CMD ["/app/server"]
`))
	require.NoError(t, err)
	require.Len(t, pf.MetaArgs, 1)
	require.Len(t, pf.BuildStages, 1)
	build := pf.BuildStages[0]
	require.Same(t, build, pf.BuildStage("build"))
	require.Nil(t, pf.BuildStage("runtime"), "the final stage is not a build stage")
	require.Equal(t, "build", build.Name)
	require.Equal(t, "${GO}", build.From.Image)
	require.Len(t, build.DepsSteps(), 3)
	require.Equal(t, []string{"."}, build.App.Sources)
	require.Equal(t, "/src", build.App.Dest)
	require.Len(t, build.AfterApp(), 2, "ENV and the build command")
	require.IsType(t, &instructions.RunCommand{}, build.AfterApp()[1])

	require.Equal(t, "runtime", pf.Name)
	require.Equal(t, "busybox@"+fake.TestDigest, pf.From.Image)
	require.Equal(t, "build", pf.App.From)
	require.Equal(t, []string{"/out/server"}, pf.App.Sources)
	require.Equal(t, "/app/", pf.App.Dest)
	require.Equal(t, "0755", pf.App.Chmod)
	require.Empty(t, pf.DepsSteps())
	require.Len(t, pf.ConfigSteps(), 1)
	require.Len(t, pf.Patch, 1)

	// A build stage needs no APP: its steps are all dependency steps.
	pf, err = Parse([]byte("FROM a@" + fake.TestDigest + " AS tools\nRUN fetch-tools\n" + fake.PinnedFrom + "APP --from=tools /usr/local/bin/tool /app/\n"))
	require.NoError(t, err)
	require.Nil(t, pf.BuildStages[0].App)
	require.Len(t, pf.BuildStages[0].DepsSteps(), 1)
	require.Empty(t, pf.BuildStages[0].AfterApp())
}
