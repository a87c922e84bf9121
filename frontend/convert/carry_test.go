package convert

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/carry"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
)

// fakeCarry is a ReleaseSource with a tool image and a release that carried
// seeds.
type fakeCarry struct {
	seeds map[string]digest.Digest
}

func (f fakeCarry) Tool(context.Context) (*Tool, error) {
	return &Tool{Image: llb.Image("registry.example.com/patchfile@" + fake.TestDigest), Binary: DefaultToolBinary}, nil
}

func (f fakeCarry) Released(_ context.Context, refs []string, _ ocispecs.Platform) []string {
	return refs
}

func (f fakeCarry) Carried(context.Context, []string, ocispecs.Platform) (string, map[string]digest.Digest) {
	if f.seeds == nil {
		return "", nil
	}
	return "registry.example.com/shop/api@" + fake.TestDigest, f.seeds
}

const carryPatchfile = `FROM golang@` + fake.TestDigest + ` AS build
WORKDIR /src
APP . /src
RUN --mount=type=cache,target=/root/.cache/go-build,id=gocache go build -o /out/server .
CARRY /root/.cache/go-build
FROM busybox@` + fake.TestDigest + `
APP --from=build /out /app/
PATCH registry.example.com/shop/api:release
`

func convertCarry(t *testing.T, text string, src ReleaseSource) (*Result, error) {
	t.Helper()
	pf, err := patchfile.Parse([]byte(text))
	require.NoError(t, err)
	opt := Opt{TargetPlatform: &amd64, MetaResolver: &fake.Resolver{}, Context: withOutputs(fake.Shop(), "server"), Releases: src}
	return Convert(context.Background(), pf, opt)
}

// toolOp is an op of the frontend's binary, and whether BuildKit always
// runs it.
type toolOp struct {
	*pb.Op
	ignoreCache bool
}

// execsOf are the ops of the full build that run the frontend's binary, by
// its subcommand.
func execsOf(t *testing.T, res *Result) map[string][]toolOp {
	t.Helper()
	def, err := res.Full("").Marshal(context.Background())
	require.NoError(t, err)
	out := map[string][]toolOp{}
	for _, dt := range def.Def {
		var op pb.Op
		require.NoError(t, op.UnmarshalVT(dt))
		if e := op.GetExec(); e != nil && len(e.Meta.Args) > 1 && strings.HasSuffix(e.Meta.Args[0], DefaultToolBinary) {
			out[e.Meta.Args[1]] = append(out[e.Meta.Args[1]], toolOp{&op, def.Metadata[digest.FromBytes(dt)].IgnoreCache})
		}
	}
	return out
}

// TestCarry: a release carries the cache CARRY names in a step over the
// build's cache mount, labelled with its id; a build whose release
// carried one fills the mount from the same step over a marker of its own
// first. The two steps differ in their marker's input only, so BuildKit
// keys them alike when the markers hold the same id.
func TestCarry(t *testing.T) {
	res, err := convertCarry(t, carryPatchfile, fakeCarry{})
	require.NoError(t, err)
	require.Empty(t, execsOf(t, res), "a full build that is not a release carries nothing")
	require.NotContains(t, res.Image.Config.Labels, decide.LabelCarry)
	res.Carry()
	execs := execsOf(t, res)
	require.Len(t, execs[carry.CopyCommand], 1, "the release's carry step")
	require.Empty(t, execs[carry.RunCommand], "nothing to start from")
	label := res.Image.Config.Labels[decide.LabelCarry]
	require.Contains(t, label, `{"build /root/.cache/go-build":"sha256:`)
	rel := &decide.Release{Image: res.Image}
	id := rel.Carried()["build /root/.cache/go-build"]
	require.NoError(t, id.Validate())
	release := execs[carry.CopyCommand][0].GetExec()

	// The next build starts from what the release carried.
	res2, err := convertCarry(t, carryPatchfile, fakeCarry{seeds: map[string]digest.Digest{"build /root/.cache/go-build": id}})
	require.NoError(t, err)
	res2.Carry()
	execs = execsOf(t, res2)
	require.Len(t, execs[carry.RunCommand], 1, "the build command, which fills the mount first")
	build := execs[carry.RunCommand][0].GetExec()
	require.Equal(t, []string{"/.patchfile/tool/bin/patchfile-frontend", "carry-run", "/.patchfile/carried/0=/root/.cache/go-build", "--",
		"/bin/sh", "-c", "go build -o /out/server ."}, build.Meta.Args)
	require.False(t, execs[carry.RunCommand][0].ignoreCache, "the build is cached as it would be")
	require.False(t, execs[carry.CopyCommand][0].ignoreCache, "the carry step is a cache lookup")
	require.Len(t, execs[carry.CopyCommand], 2, "the seed, and this build's own carry")
	copies := execs[carry.CopyCommand]
	a, b := copies[0].GetExec(), copies[1].GetExec()
	require.Equal(t, a.Meta.String(), b.Meta.String(), "the same command")
	for _, e := range []*pb.ExecOp{release, a, b} {
		mounts := map[string]*pb.Mount{}
		for _, m := range e.Mounts {
			mounts[m.Dest] = m
		}
		require.Len(t, mounts, 4, "rootfs, marker, cache, output")
		require.Equal(t, "/.patchfile-carry", mounts["/marker"].Selector)
		require.True(t, mounts["/marker"].Readonly, "read-only: keyed by content")
		require.Equal(t, pb.MountType_CACHE, mounts["/cache"].MountType)
		require.Equal(t, "gocache", mounts["/cache"].CacheOpt.ID, "the build's own cache mount")
		require.Equal(t, int64(-1), mounts["/cache"].Input, "no input: the cache is not part of the key")
	}

	// Without the frontend's image nothing is carried, and no label says
	// otherwise.
	res3, err := convertCarry(t, carryPatchfile, nil)
	require.NoError(t, err)
	res3.Carry()
	require.Empty(t, execsOf(t, res3))
	require.NotContains(t, res3.Image.Config.Labels, decide.LabelCarry)
}

// TestCarryErrors: CARRY names a cache mount of a build command.
func TestCarryErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       string
		line       int
	}{
		{name: "no such mount", text: `FROM golang@` + fake.TestDigest + ` AS build
APP . /src
RUN go build -o /out/server .
CARRY /root/.cache/go-build
FROM busybox@` + fake.TestDigest + `
APP --from=build /out /app/
`, want: "CARRY /root/.cache/go-build: no build command of stage build mounts a cache there; mount it in the RUN that builds, after APP: RUN --mount=type=cache,target=/root/.cache/go-build <build command>", line: 4},
		{name: "a dependency step's mount", text: `FROM golang@` + fake.TestDigest + ` AS build
RUN --mount=type=cache,target=/root/.cache/go-build go mod download
APP . /src
RUN go build -o /out/server .
CARRY /root/.cache/go-build
FROM busybox@` + fake.TestDigest + `
APP --from=build /out /app/
`, want: "no build command of stage build mounts a cache there", line: 5},
		{name: "two caches", text: `FROM golang@` + fake.TestDigest + ` AS build
APP . /src
RUN --mount=type=cache,target=/c go vet ./...
RUN --mount=type=cache,target=/c,id=other go build -o /out/server .
CARRY /c
FROM busybox@` + fake.TestDigest + `
APP --from=build /out /app/
`, want: "--mount=type=cache,target=/c mounts another cache than the RUN on line 3 (id /c): CARRY /c carries one cache", line: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertCarry(t, tc.text, fakeCarry{})
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, tc.line, fake.FirstLine(t, err))
		})
	}
}

// TestToolBinaryOf: the frontend's binary is its image's entrypoint's last
// word, else its command's first, else where the repository's image has it.
func TestToolBinaryOf(t *testing.T) {
	require.Equal(t, "/bin/patchfile-frontend", ToolBinaryOf([]string{"/bin/patchfile-frontend"}, nil))
	require.Equal(t, "/frontend", ToolBinaryOf([]string{"/sbin/tini", "--", "/frontend"}, []string{"ignored"}))
	require.Equal(t, "/usr/local/bin/pf", ToolBinaryOf(nil, []string{"/usr/local/bin/pf", "-v"}))
	require.Equal(t, DefaultToolBinary, ToolBinaryOf(nil, nil))
}
