package convert

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
)

// update rewrites the LLB goldens: go test ./frontend/convert -run TestConvertGolden -update
var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// amd64 is the platform of every conversion test.
var amd64 = fake.Amd64

// convert parses and converts a Patchfile for linux/amd64 with the fakes.
func convert(t *testing.T, text string, files fake.Context, args map[string]string) (*Result, *llb.SourceMap, error) {
	t.Helper()
	pf, err := patchfile.Parse([]byte(text))
	require.NoError(t, err)
	sm := llb.NewSourceMap(nil, "Patchfile", patchfile.Language, []byte(text))
	opt := Opt{TargetPlatform: &amd64, MetaResolver: &fake.Resolver{}, SourceMap: sm, Context: files}
	opt.BuildArgs = args
	res, err := Convert(context.Background(), pf, opt)
	return res, sm, err
}

// execOps are the RUN steps of st's LLB, in definition order.
func execOps(t *testing.T, st llb.State) []*pb.ExecOp {
	t.Helper()
	def, err := st.Marshal(context.Background())
	require.NoError(t, err)
	var out []*pb.ExecOp
	for _, dt := range def.Def {
		var op pb.Op
		require.NoError(t, op.UnmarshalVT(dt))
		if e := op.GetExec(); e != nil {
			out = append(out, e)
		}
	}
	return out
}

// goldenLLB is the readable form of a conversion kept in testdata/golden.
type goldenLLB struct {
	Identity decide.Identity                 `json:"identity"`
	Config   dockerspec.DockerOCIImageConfig `json:"config"`
	History  []string                        `json:"history"`
	Ops      []goldenOp                      `json:"ops"`
}

// goldenOp is one LLB op, in definition order, inputs named by their index.
type goldenOp struct {
	Index int    `json:"index"`
	Type  string `json:"type"`
	Name  string `json:"name,omitempty"`
	// Lines are the Patchfile lines the source map ties the op to.
	Lines []string `json:"lines,omitempty"`
	// Op is the pb.Op as protojson, normalized through encoding/json.
	Op map[string]any `json:"op"`
}

// renderLLB marshals the final state and renders it for a golden.
func renderLLB(t *testing.T, res *Result, text string) []byte {
	t.Helper()
	def, err := res.Full("").Marshal(context.Background())
	require.NoError(t, err)
	index := map[string]int{}
	for i, dt := range def.Def {
		index[digest.FromBytes(dt).String()] = i
	}
	lines := strings.Split(text, "\n")
	out := goldenLLB{Identity: res.Identity, Config: res.Image.Config}
	for _, h := range res.Image.History {
		out.History = append(out.History, h.CreatedBy)
	}
	for i, dt := range def.Def {
		var op pb.Op
		require.NoError(t, op.UnmarshalVT(dt))
		js, err := protojson.Marshal(&op)
		require.NoError(t, err)
		g := goldenOp{Index: i, Type: opType(&op)}
		require.NoError(t, json.Unmarshal(js, &g.Op))
		// Digests change with any detail; indexes keep the golden readable.
		if inputs, ok := g.Op["inputs"].([]any); ok {
			for j, in := range inputs {
				in := in.(map[string]any)
				n, ok := index[in["digest"].(string)]
				require.True(t, ok, "input %v of op %d is not in the definition", in, i)
				inputs[j] = fmt.Sprintf("op %d", n)
				if out, ok := in["index"]; ok {
					inputs[j] = fmt.Sprintf("op %d output %v", n, out)
				}
			}
		}
		dgst := digest.FromBytes(dt)
		g.Name = def.Metadata[dgst].Description["llb.customname"]
		if locs, ok := def.Source.GetLocations()[dgst.String()]; ok {
			for _, loc := range locs.Locations {
				require.Zero(t, loc.SourceIndex, "one source: the Patchfile")
				for _, r := range loc.Ranges {
					for l := r.Start.Line; l <= r.End.Line; l++ {
						require.True(t, l >= 1 && int(l) <= len(lines), "line %d out of the Patchfile", l)
						g.Lines = append(g.Lines, fmt.Sprintf("%d: %s", l, lines[l-1]))
					}
				}
			}
		}
		out.Ops = append(out.Ops, g)
	}
	require.Len(t, def.Source.GetInfos(), 1)
	require.Equal(t, "Patchfile", def.Source.Infos[0].Filename)
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(out))
	return []byte(b.String())
}

func opType(op *pb.Op) string {
	switch op.Op.(type) {
	case *pb.Op_Exec:
		return "exec"
	case *pb.Op_File:
		return "file"
	case *pb.Op_Source:
		return "source " + op.GetSource().Identifier
	case *pb.Op_Merge:
		return "merge"
	case *pb.Op_Diff:
		return "diff"
	case *pb.Op_Build:
		return "build"
	case nil:
		return "result"
	}
	return fmt.Sprintf("%T", op.Op)
}

func TestConvertGolden(t *testing.T) {
	cases := []struct {
		name      string
		patchfile string
		args      map[string]string
		files     fake.Context // fake.Shop() when nil
	}{
		{name: "basic", patchfile: `# syntax=registry.example.com/patchfile:1
FROM node:20-bookworm-slim@` + fake.TestDigest + `
WORKDIR /app
DEPS package.json package-lock.json
RUN --mount=type=cache,target=/cache/npm npm ci --cache /cache/npm --omit=dev
APP . /app
PATCH registry.example.com/shop/web:release
ENV NODE_ENV=production
EXPOSE 8080
USER node
CMD ["node", "src/server.js"]
`},
		{name: "stage", args: map[string]string{"NPM_TAG": "next"}, patchfile: `ARG IMAGE=node
FROM --platform=linux/arm64 ${IMAGE}@` + fake.TestDigest + `
ARG NPM_TAG=latest
ENV NODE_ENV=production \
    HOME=/home/node
USER node
WORKDIR app
DEPS --chown=node:node --chmod=0640 package.json web/package.json
RUN --network=none \
    --mount=type=cache,target=/cache,uid=1000,mode=0700 \
    --mount=type=secret,id=npmrc,target=/home/node/.npmrc \
    --mount=type=ssh \
    --mount=type=tmpfs,target=/tmp \
    npm install --tag $NPM_TAG
RUN ["node", "-e", "require('./package.json')"]
APP src /app/
`},
		{name: "build-stage", files: withOutputs(fake.Shop(), "server", "static/index.html"), args: map[string]string{"BUILDPLATFORM": "linux/amd64"}, patchfile: `ARG GO=golang@` + fake.TestDigest + `
FROM --platform=$BUILDPLATFORM ${GO} AS build
WORKDIR /src
DEPS package.json
RUN --mount=type=cache,target=/root/.cache/go-build go mod download
APP --exclude=*.md . /src
ARG TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build GOARCH=$TARGETARCH go build -o /out/server .
FROM busybox@` + fake.TestDigest + `
WORKDIR /app
APP --from=build --chmod=0755 /out/server /src/static /app/
PATCH registry.example.com/shop/api:release
CMD ["/app/server"]
`},
		{name: "app-options", patchfile: fake.PinnedFrom + `WORKDIR /srv
APP --chown=1000:1000 --chmod=0644 --exclude=*.md --exclude=static/tmp src static www
LABEL org.opencontainers.image.title="shop web"
ENTRYPOINT ["/sbin/tini", "--"]
CMD node www/src/server.js
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD ["wget", "-q", "http://localhost:8080/"]
WORKDIR /srv/www
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := tc.files
			if files == nil {
				files = fake.Shop()
			}
			res, _, err := convert(t, tc.patchfile, files, tc.args)
			require.NoError(t, err)
			got := renderLLB(t, res, tc.patchfile)
			file := filepath.Join("testdata", "golden", tc.name+".json")
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
				require.NoError(t, os.WriteFile(file, got, 0o644))
				return
			}
			want, err := os.ReadFile(file)
			require.NoError(t, err, "missing golden (run with -update)")
			require.Equal(t, string(want), string(got))
		})
	}
}

// withOutputs adds what a fake build stage makes (fake.OutputsPrefix) to
// a context.
func withOutputs(files fake.Context, paths ...string) fake.Context {
	for _, p := range paths {
		files[fake.OutputsPrefix+p] = "output " + p
	}
	return files
}

// TestConvertResolvesForTarget checks the base is resolved for the platform built.
func TestConvertResolvesForTarget(t *testing.T) {
	pf, err := patchfile.Parse([]byte(fake.PinnedFrom + "APP . /app\n"))
	require.NoError(t, err)
	r := &fake.Resolver{}
	res, err := Convert(context.Background(), pf, Opt{TargetPlatform: &amd64, MetaResolver: r, Context: fake.Shop()})
	require.NoError(t, err)
	require.Equal(t, []string{"docker.io/library/alpine@" + fake.TestDigest + " amd64"}, r.Resolved)
	require.Equal(t, "amd64", res.Image.Architecture)
	require.Equal(t, digest.Digest(fake.TestDigest), res.Identity.Base)
	require.Equal(t, res.Identity.Labels(), map[string]string{
		decide.LabelBase: res.Image.Config.Labels[decide.LabelBase],
		decide.LabelDeps: res.Image.Config.Labels[decide.LabelDeps],
		decide.LabelApp:  res.Image.Config.Labels[decide.LabelApp],
	})
}

// TestCmdBeforeEntrypoint: ENTRYPOINT drops the base image's CMD but keeps
// one the Patchfile set before it, as a Dockerfile does.
func TestCmdBeforeEntrypoint(t *testing.T) {
	const from = "FROM alpine@sha256:4f1d3b2a8c9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a\n"
	res, _, err := convert(t, from+"APP . /app\nCMD [\"serve\"]\nENTRYPOINT [\"/app/run\"]\n", fake.Shop(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"/app/run"}, res.Image.Config.Entrypoint)
	require.Equal(t, []string{"serve"}, res.Image.Config.Cmd)

	res, _, err = convert(t, from+"APP . /app\nENTRYPOINT [\"/app/run\"]\n", fake.Shop(), nil)
	require.NoError(t, err)
	require.Nil(t, res.Image.Config.Cmd, "the base image's CMD is dropped")
}

// TestBuildLabels: the build's labels (--label, bake's and Compose's) land
// on the image over the Patchfile's LABEL, as with the Dockerfile frontend;
// the frontend's own cannot be set that way.
func TestBuildLabels(t *testing.T) {
	pf, err := patchfile.Parse([]byte(fake.PinnedFrom + "APP . /app\nLABEL team=web tier=front\n"))
	require.NoError(t, err)
	opt := Opt{TargetPlatform: &amd64, MetaResolver: &fake.Resolver{}, Context: fake.Shop()}
	opt.Labels = map[string]string{"tier": "edge", "com.docker.compose.project": "shop"}
	res, err := Convert(context.Background(), pf, opt)
	require.NoError(t, err)
	labels := res.Image.Config.Labels
	require.Equal(t, "web", labels["team"])
	require.Equal(t, "edge", labels["tier"], "a build label wins over LABEL")
	require.Equal(t, "shop", labels["com.docker.compose.project"])
	require.Equal(t, res.Identity.Deps.String(), labels[decide.LabelDeps])

	opt.Labels = map[string]string{decide.LabelDeps: "sha256:forged"}
	_, err = Convert(context.Background(), pf, opt)
	require.ErrorContains(t, err, `--label dev.patchfile.deps: labels starting with "dev.patchfile." are written by Patchfile itself`)
}

// TestBuildCacheRefs: the build cache is the buildcache tag of each
// candidate's repository, once each, whatever tag or digest the candidate
// names.
func TestBuildCacheRefs(t *testing.T) {
	require.Equal(t, []string{"registry.example.com/shop/web:buildcache", "docker.io/library/web:buildcache"},
		BuildCacheRefs([]string{"registry.example.com/shop/web:release", "registry.example.com/shop/web@" + fake.TestDigest, "web:v1", "not a ref"}))
	require.Empty(t, BuildCacheRefs(nil))
}

// TestStageFromStage: a build stage may start from an earlier one, with
// its files, environment and working directory; the final stage may not.
func TestStageFromStage(t *testing.T) {
	files := withOutputs(fake.Shop(), "server")
	res, _, err := convert(t, `FROM golang@`+fake.TestDigest+` AS base
ENV CGO_ENABLED=0
WORKDIR /src
FROM base AS build
APP . /src
RUN go build -o /out/server .
FROM busybox@`+fake.TestDigest+`
APP --from=build /out /app/
`, files, nil)
	require.NoError(t, err)
	runs := execOps(t, res.Full(""))
	require.NotEmpty(t, runs, "the build step")
	run := runs[len(runs)-1]
	require.Equal(t, "/src", run.Meta.Cwd, "the working directory of the stage it starts from")
	require.Contains(t, run.Meta.Env, "CGO_ENABLED=0", "and its environment")

	_, _, err = convert(t, `FROM golang@`+fake.TestDigest+` AS build
RUN make
FROM build
APP --from=build /out /app/
`, files, nil)
	require.ErrorContains(t, err, "FROM build names a build stage: the final stage starts from an image pinned by digest")
	require.Equal(t, 3, fake.FirstLine(t, err))
}

// TestSecretSource: RUN --mount=type=secret,source=<id> asks for that
// secret, as the Dockerfile frontend reads it, not the target's base name
// (which made the mount silently empty: secrets are optional by default).
func TestSecretSource(t *testing.T) {
	res, _, err := convert(t, fake.PinnedFrom+"RUN --mount=type=secret,source=npmrc,target=/root/.npmrc npm ci\nAPP . /app\n", fake.Shop(), nil)
	require.NoError(t, err)
	var ids []string
	for _, e := range execOps(t, res.Deps) {
		for _, m := range e.GetMounts() {
			if m.SecretOpt != nil {
				ids = append(ids, m.SecretOpt.ID+" at "+m.Dest)
			}
		}
	}
	require.Equal(t, []string{"npmrc at /root/.npmrc"}, ids)
}

// TestBuildNetwork: the build's network (`docker buildx build
// --network=host`) applies to every RUN that does not set its own, in build
// stages too, as with the Dockerfile frontend; RUN --network wins.
func TestBuildNetwork(t *testing.T) {
	pf, err := patchfile.Parse([]byte("FROM a@" + fake.TestDigest + " AS b\nRUN x\nFROM b@" + fake.TestDigest + "\nRUN y\nRUN --network=none z\nAPP --from=b /out /app/\n"))
	require.NoError(t, err)
	opt := Opt{TargetPlatform: &amd64, MetaResolver: &fake.Resolver{}, Context: withOutputs(fake.Shop(), "x")}
	opt.NetworkMode = llb.NetModeHost
	res, err := Convert(context.Background(), pf, opt)
	require.NoError(t, err)
	got := map[string]pb.NetMode{}
	for _, e := range execOps(t, res.Full("")) {
		got[e.Meta.Args[2]] = e.Network
	}
	require.Equal(t, map[string]pb.NetMode{"x": pb.NetMode_HOST, "y": pb.NetMode_HOST, "z": pb.NetMode_NONE}, got)
}

// TestBareArgTakesMetaDefault: a bare ARG in a stage takes the value of the
// ARG of that name declared before FROM, as in a Dockerfile; a build arg
// wins over both.
func TestBareArgTakesMetaDefault(t *testing.T) {
	text := "ARG VERSION=1.2.3\n" + fake.PinnedFrom + "ARG VERSION\nRUN echo $VERSION\nAPP . /app\n"
	envOf := func(args map[string]string) []string {
		res, _, err := convert(t, text, fake.Shop(), args)
		require.NoError(t, err)
		runs := execOps(t, res.Full(""))
		require.NotEmpty(t, runs, "no RUN")
		return runs[0].Meta.Env
	}
	require.Contains(t, envOf(nil), "VERSION=1.2.3")
	require.Contains(t, envOf(map[string]string{"VERSION": "2.0.0"}), "VERSION=2.0.0")
}
