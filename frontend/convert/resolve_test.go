package convert

import (
	"slices"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
)

// TestResolutionAgreesWithTheBuild: the secrets, ssh sockets and caches a
// Resolution says each RUN asks for (what --call=outline lists and the
// checks read) are the ones the build's LLB asks the builder for, id and
// destination, for every way a mount names them, a platform ARG included
// when the reader knows the platform.
func TestResolutionAgreesWithTheBuild(t *testing.T) {
	text := "ARG TOKEN=npm-token\n" + fake.PinnedFrom + `ARG TOKEN
ARG TARGETARCH
WORKDIR /app
RUN --mount=type=secret,source=$TOKEN,target=/root/.npmrc \
    --mount=type=secret,id=pip,target=/etc/pip.conf \
    --mount=type=secret,target=/run/secrets/yarnrc \
    --mount=type=secret,id=gh \
    --mount=type=secret,id=api,env=API_KEY \
    --mount=type=ssh \
    --mount=type=ssh,id=github,target=/run/gh.sock \
    --mount=type=cache,target=/root/.npm \
    --mount=type=cache,id=pip-cache,target=/root/.cache/pip \
    --mount=type=cache,id=go-$TARGETARCH,target=/root/.cache/go-build \
    npm ci
DEPS package.json
APP . /app
`
	res, _, err := convert(t, text, fake.Shop(), nil)
	require.NoError(t, err)
	var built []string
	for _, exec := range execOps(t, res.Deps) {
		for _, m := range exec.GetMounts() {
			switch {
			case m.SecretOpt != nil:
				built = append(built, "secret "+m.SecretOpt.ID+" at "+m.Dest)
			case m.SSHOpt != nil:
				built = append(built, "ssh "+m.SSHOpt.ID+" at "+m.Dest)
			case m.CacheOpt != nil:
				built = append(built, "cache "+m.CacheOpt.ID+" at "+m.Dest)
			}
		}
		for _, s := range exec.GetSecretenv() {
			built = append(built, "secret "+s.ID+" as $"+s.Name)
		}
	}

	pf, err := patchfile.Parse([]byte(text))
	require.NoError(t, err)
	opt := Opt{TargetPlatform: &amd64} // the platform convert builds
	var resolved []string
	for _, s := range Resolve(pf, nil, opt.PlatformArgs()).Stages {
		for _, run := range s.Runs {
			require.NoError(t, run.Err)
			for _, m := range run.Mounts {
				switch {
				case m.Type == instructions.MountTypeSecret && m.Env != nil:
					resolved = append(resolved, "secret "+m.ID+" as $"+*m.Env)
				default:
					resolved = append(resolved, string(m.Type)+" "+m.ID+" at "+m.Target)
				}
			}
		}
	}
	slices.Sort(built)
	slices.Sort(resolved)
	require.Equal(t, []string{
		"cache /root/.npm at /root/.npm",
		"cache go-amd64 at /root/.cache/go-build",
		"cache pip-cache at /root/.cache/pip",
		"secret api as $API_KEY",
		"secret gh at /run/secrets/gh",
		"secret npm-token at /root/.npmrc",
		"secret pip at /etc/pip.conf",
		"secret yarnrc at /run/secrets/yarnrc",
		"ssh default at /run/buildkit/ssh_agent.5",
		"ssh github at /run/gh.sock",
	}, built)
	require.Equal(t, built, resolved)

	// A reader that resolves for every platform at once (a build's early
	// read) cannot know the platform's ARGs: it does not guess the RUN's
	// mounts.
	run := Resolve(pf, nil, nil).Stages[0].Runs[0]
	require.ErrorIs(t, run.Err, errUnknownWord)
	require.Empty(t, run.Mounts)
}

// TestResolutionOfStagesAndSources: which stages are built, where DEPS
// files land, which sources only the build can expand, and what APP
// ships as the build matches sources and --exclude.
func TestResolutionOfStagesAndSources(t *testing.T) {
	pf, err := patchfile.Parse([]byte("ARG DIR=web\n" + `FROM ` + "alpine@" + fake.TestDigest + ` AS tools
FROM tools AS build
ARG DIR
WORKDIR /src
WORKDIR ${DIR}
DEPS ${DIR}/package.json $HOME/.npmrc
APP ${DIR} .
RUN npm run build
FROM ` + "alpine@" + fake.TestDigest + ` AS unused
` + fake.PinnedFrom + `APP --from=build /src/web/dist /app/
`))
	require.NoError(t, err)
	res := Resolve(pf, map[string]string{}, nil)
	var built []string
	for _, s := range res.Stages {
		if s.Built {
			built = append(built, s.Name)
		}
	}
	require.Equal(t, []string{"tools", "build", ""}, built)
	build := res.Stages[1]
	require.Equal(t, "tools", build.Base)
	require.Same(t, res.Stages[0].Stage, build.BaseStage)
	require.Len(t, build.Deps, 1)
	require.Equal(t, "/src/web", build.Deps[0].Workdir)
	require.Equal(t, []string{"web/package.json"}, build.Deps[0].Sources)
	require.Equal(t, []string{"$HOME/.npmrc"}, build.Deps[0].Unknown, "$HOME is the base image's: only the build knows it")
	require.True(t, build.Runs[0].AfterApp)
	require.Equal(t, []string{"web"}, build.App.Sources)
	require.Equal(t, []string{"src/web/dist"}, res.Stages[3].App.Sources)

	app := &ResolvedApp{Inst: &patchfile.AppInstruction{}, Sources: []string{"web", "README.md"}, Excludes: []string{"node_modules", "*.md"}, Known: true}
	files := []buildcontext.File{
		{Path: "README.md"}, {Path: "web", Mode: 1 << 31}, {Path: "web/a.md"}, {Path: "web/node_modules", Mode: 1 << 31},
		{Path: "web/node_modules/x.js"}, {Path: "web/server.js"},
	}
	var shipped []string
	for _, f := range app.Shipped(files) {
		shipped = append(shipped, f.Path)
	}
	require.Equal(t, []string{"web/server.js", "README.md"}, shipped, "excludes match relative to a directory source; a file source is never excluded")
}
