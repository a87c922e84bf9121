package convert

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
)

func TestConvertErrors(t *testing.T) {
	cases := []struct {
		name      string
		patchfile string
		want      []string
		line      int
	}{
		{name: "unpinned FROM", patchfile: "# syntax=patchfile\nFROM node:20-bookworm-slim\nAPP . /app\n",
			want: []string{"FROM node:20-bookworm-slim is not pinned", "write FROM node:20-bookworm-slim@sha256:<digest>", "imagetools inspect node:20-bookworm-slim"}, line: 2},
		{name: "unpinned FROM through ARG", patchfile: "ARG BASE=alpine:3.20\nFROM ${BASE}\nAPP . /app\n",
			want: []string{"FROM alpine:3.20 is not pinned", "FROM alpine:3.20@sha256:<digest>"}, line: 2},
		{name: "unpinned FROM without tag", patchfile: "FROM registry.example.com/base\nAPP . /app\n",
			want: []string{"is not pinned", "FROM registry.example.com/base@sha256:<digest>"}, line: 1},
		{name: "invalid FROM", patchfile: "FROM Alpine@" + fake.TestDigest + "\nAPP . /app\n",
			want: []string{"FROM Alpine@" + fake.TestDigest + " is not a valid image reference"}, line: 1},
		{name: "bad FROM platform", patchfile: "FROM --platform=linux/nope/x/y alpine@" + fake.TestDigest + "\nAPP . /app\n",
			want: []string{"FROM --platform=linux/nope/x/y"}, line: 1},
		{name: "DEPS matching no file", patchfile: fake.PinnedFrom + "WORKDIR /app\nDEPS package.json yarn.lock\nAPP . /app\n",
			want: []string{"DEPS yarn.lock matches no file in the build context", ".dockerignore"}, line: 3},
		{name: "DEPS outside the context", patchfile: fake.PinnedFrom + "DEPS ../secrets.json\nAPP . /app\n",
			want: []string{"DEPS", "../secrets.json is outside the build context"}, line: 2},
		{name: "DEPS bad chmod", patchfile: fake.PinnedFrom + "DEPS --chmod=xyz package.json\nAPP . /app\n",
			want: []string{"--chmod=xyz is not an octal mode", "--chmod=0644"}, line: 2},
		{name: "APP to /", patchfile: fake.PinnedFrom + "APP . /\n",
			want: []string{"APP to / would mix application files with the whole system", "/app"}, line: 2},
		{name: "APP to / through WORKDIR", patchfile: fake.PinnedFrom + "WORKDIR /\nAPP src static .\n",
			want: []string{"APP to / would mix"}, line: 3},
		{name: "APP outside the context", patchfile: fake.PinnedFrom + "APP ../other /app\n",
			want: []string{"APP", "../other is outside the build context"}, line: 2},
		{name: "APP matching no file", patchfile: fake.PinnedFrom + "APP /etc /app/\n",
			want: []string{"APP etc matches no file in the build context", "also when it starts with /"}, line: 2},
		{name: "APP bad chmod", patchfile: fake.PinnedFrom + "RUN true\nAPP --chmod=xyz . /app\n",
			want: []string{"--chmod=xyz is not an octal mode"}, line: 3},
		{name: "APP chmod too large", patchfile: fake.PinnedFrom + "APP --chmod=17777 . /app\n",
			want: []string{"--chmod=17777 is not an octal mode"}, line: 2},
		{name: "APP chown by name", patchfile: fake.PinnedFrom + "APP --chown=node . /app\n",
			want: []string{"--chown=node: APP files land on a layer of their own", "write numbers, e.g. --chown=1000:1000"}, line: 2},
		{name: "APP chown by group name", patchfile: fake.PinnedFrom + "APP \\\n  --chown=1000:node \\\n  . /app\n",
			want: []string{"--chown=1000:node"}, line: 2},
		{name: "RUN bind mount", patchfile: fake.PinnedFrom + "DEPS package.json\nRUN --mount=type=bind,target=/src npm ci\nAPP . /app\n",
			want: []string{"RUN --mount=type=bind is not supported in a Patchfile", "list the files it needs with DEPS"}, line: 3},
		{name: "RUN cache mount from a stage", patchfile: fake.PinnedFrom + "RUN --mount=type=cache,target=/root/.npm,from=cache,source=/npm npm ci\nAPP . /app\n",
			want: []string{"RUN --mount=type=cache,from=cache,source=/npm: a Patchfile's cache mounts start empty", "leave out from= and source="}, line: 2},
		{name: "RUN bind mount by default", patchfile: fake.PinnedFrom + "RUN --mount=target=/src npm ci\nAPP . /app\n",
			want: []string{"--mount=type=bind is not supported"}, line: 2},
		{name: "RUN secret without id", patchfile: fake.PinnedFrom + "RUN --mount=type=secret cat x\nAPP . /app\n",
			want: []string{"one of source, target required"}, line: 2},
		{name: "LABEL dev.patchfile", patchfile: fake.PinnedFrom + "APP . /app\nLABEL a=b dev.patchfile.deps=x\n",
			want: []string{"LABEL dev.patchfile.deps", `labels starting with "dev.patchfile." are written by Patchfile itself`}, line: 3},
		{name: "LABEL dev.patchfile before APP", patchfile: fake.PinnedFrom + "LABEL dev.patchfile.x=1\nAPP . /app\n",
			want: []string{"LABEL dev.patchfile.x"}, line: 2},
		{name: "bad expansion", patchfile: fake.PinnedFrom + "ENV A=${B:?required}\nAPP . /app\n",
			want: []string{"B: required"}, line: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := convert(t, tc.patchfile, fake.Shop(), nil)
			require.Error(t, err)
			require.Nil(t, res)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.Equal(t, tc.line, fake.FirstLine(t, err), "error: %v", err)
		})
	}
}

// failingResolver stands for a registry that does not answer.
type failingResolver struct{}

func (failingResolver) ResolveImageConfig(context.Context, string, sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return "", "", nil, errors.New("registry unreachable")
}

func TestConvertResolveError(t *testing.T) {
	pf, err := patchfile.Parse([]byte("ARG X=1\n" + fake.PinnedFrom + "APP . /app\n"))
	require.NoError(t, err)
	_, err = Convert(context.Background(), pf, Opt{TargetPlatform: &amd64, MetaResolver: failingResolver{}, Context: fake.Shop()})
	require.ErrorContains(t, err, "resolving base image docker.io/library/alpine@"+fake.TestDigest+": registry unreachable")
	require.Equal(t, 2, fake.FirstLine(t, err))
}

// TestConvertWithoutSourceMap checks ops keep their names when no source
// map is given (tests and tools converting without a build).
func TestConvertWithoutSourceMap(t *testing.T) {
	pf, err := patchfile.Parse([]byte(fake.PinnedFrom + "WORKDIR /app\nRUN npm ci\nAPP . /app\n"))
	require.NoError(t, err)
	res, err := Convert(context.Background(), pf, Opt{TargetPlatform: &amd64, MetaResolver: &fake.Resolver{}, Context: fake.Shop()})
	require.NoError(t, err)
	def, err := res.Full("").Marshal(context.Background())
	require.NoError(t, err)
	var names []string
	for _, m := range def.Metadata {
		if n := m.Description["llb.customname"]; n != "" {
			names = append(names, n)
		}
	}
	require.ElementsMatch(t, []string{
		"[base] docker.io/library/alpine@" + fake.TestDigest,
		"[deps 1/2] WORKDIR /app",
		"[deps 2/2] RUN npm ci",
		"[app] copy 6 files to /app/",
		"[app] add /app/ as its own layer",
	}, names)
}

// TestContextPath: sources are cleaned into the context; only paths that
// climb out of it are refused, not names that start with two dots.
func TestContextPath(t *testing.T) {
	for in, want := range map[string]string{".": ".", "./": ".", "/": ".", "/etc": "etc", "/../etc": "etc",
		"src/": "src", "..data": "..data", "...": "...", "a/../..b": "..b", "a/..": "."} {
		got, err := ContextPath(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"..", "../", "../x", "a/../../x", "./.."} {
		_, err := ContextPath(in)
		require.ErrorContains(t, err, "is outside the build context", in)
	}
}

func TestRefuseSpecialFiles(t *testing.T) {
	files := []buildcontext.File{
		{Path: "src", Mode: os.ModeDir | 0o755},
		{Path: "src/a.js", Mode: 0o644},
		{Path: "src/pipe", Mode: os.ModeNamedPipe | 0o644},
		{Path: "tmp", Mode: os.ModeDir | 0o755},
		{Path: "tmp/sock", Mode: os.ModeSocket | 0o755},
	}
	for _, tc := range []struct {
		name string
		spec AppSpec
		err  string
	}{
		{name: "a fifo under the context", spec: AppSpec{Sources: []string{"."}, Dest: "/app/"},
			err: `APP would ship "src/pipe", a named pipe, which a patch cannot carry: remove it from the build context, or leave it out with .dockerignore or APP --exclude=src/pipe`},
		{name: "excluded fifo, a socket left", spec: AppSpec{Sources: []string{"."}, Dest: "/app/", Excludes: []string{"src/pipe"}},
			err: `APP would ship "tmp/sock", a socket`},
		{name: "both excluded", spec: AppSpec{Sources: []string{"."}, Dest: "/app/", Excludes: []string{"src/pipe", "tmp"}}},
		{name: "a directory source: patterns relative to it", spec: AppSpec{Sources: []string{"src"}, Dest: "/app/", Excludes: []string{"pipe"}}},
		{name: "a directory source, the fifo named relative to it", spec: AppSpec{Sources: []string{"src/"}, Dest: "/app/"},
			err: `APP would ship "src/pipe", a named pipe, which a patch cannot carry: remove it from the build context, or leave it out with .dockerignore or APP --exclude=pipe`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The context as APP loads it: its sources only.
			var loaded []buildcontext.File
			for _, f := range files {
				if tc.spec.Sources[0] == "." || strings.HasPrefix(f.Path, "src") {
					loaded = append(loaded, f)
				}
			}
			err := refuseSpecialFiles(loaded, tc.spec)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestEscapePattern(t *testing.T) {
	for name, want := range map[string]string{
		"src":       "src",
		"star*88":   `star\*88`,
		"q?[1]":     `q\?\[1\]`,
		`back\sl`:   `back\\sl`,
		"!bang":     `\!bang`,
		"a!b":       "a!b",
		"80trail ":  "80trail?",
		" lead":     "?lead",
		"  two  ":   "??two??",
		"in side":   "in side",
		"tab\there": "tab\there",
	} {
		got := escapePattern(name)
		require.Equal(t, want, got, name)
		pm, err := patternmatcher.New([]string{got})
		require.NoError(t, err)
		ok, err := pm.MatchesOrParentMatches(name)
		require.NoError(t, err)
		require.True(t, ok, "%q matches %q", got, name)
	}
}
