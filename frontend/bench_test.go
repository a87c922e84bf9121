package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/patchfile/patchfile/frontend/patchfile"
)

// The frontend's own overhead, without a daemon: bench/ (./hack/bench.sh)
// runs these and reports them next to the end-to-end figures. The fakes
// here are the benchmark's own, so that it does not depend on the names
// other tests use.

// benchPatchfile is the realistic shape: the flagship example's
// (examples/Patchfile) on a node base.
const benchPatchfile = `# syntax=registry.example.com/patchfile:1
ARG RELEASE=registry.example.com/shop/web:release
FROM node:20-bookworm-slim@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ARG NPM_TAG=latest
WORKDIR /app
DEPS package.json package-lock.json
RUN --mount=type=cache,target=/cache/npm npm ci --cache /cache/npm --omit=dev --tag $NPM_TAG
APP --exclude=*.md . /app
PATCH ${RELEASE}
ENV NODE_ENV=production
EXPOSE 8080
USER node
LABEL org.opencontainers.image.title="shop web"
CMD ["node", "src/server.js"]
`

var benchPlatform = ocispecs.Platform{OS: "linux", Architecture: "amd64"}

// benchFiles is a 3,000-file app in directories of 15, like the one
// bench/ generates: what a build hands convert.Convert after reading the context.
func benchFiles(n int, edited int) []buildcontext.File {
	files := []buildcontext.File{
		buildcontext.NewFile("package.json", 0o644, []byte(`{"name": "shop"}`)),
		buildcontext.NewFile("package-lock.json", 0o644, []byte(`{"lockfileVersion": 3}`)),
		{Path: "src", Mode: os.ModeDir | 0o755},
	}
	for d := range n / 15 {
		dir := fmt.Sprintf("src/m%03d", d)
		files = append(files, buildcontext.File{Path: dir, Mode: os.ModeDir | 0o755})
		for f := range 15 {
			content := fmt.Sprintf("module.exports = %d;\n", d*15+f)
			if d*15+f == edited {
				content += "// edited\n"
			}
			files = append(files, buildcontext.NewFile(fmt.Sprintf("%s/f%02d.js", dir, f), 0o644, []byte(content)))
		}
	}
	// Sorted by path, as the gateway context returns them.
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files
}

// benchContext serves fixed files; Files ignores patterns but for DEPS,
// which asks for the manifests by name. It embeds the interface so that a
// method added to convert.ContextSource later does not break the benchmark's build
// (calling it would panic, loudly).
type benchContext struct {
	convert.ContextSource
	files []buildcontext.File
}

func (c *benchContext) List(context.Context, bool) ([]buildcontext.File, error) { return c.files, nil }

func (c *benchContext) IgnorePatterns(context.Context) ([]string, error) { return nil, nil }

func (c *benchContext) Main(_ context.Context, opts ...llb.LocalOption) (*llb.State, error) {
	st := llb.Local("context", append([]llb.LocalOption{llb.LocalUniqueID("bench")}, opts...)...)
	return &st, nil
}

func (c *benchContext) Load(_ context.Context, _ string, patterns []string) (llb.State, error) {
	return llb.Local("context", llb.IncludePatterns(patterns), llb.LocalUniqueID("bench")), nil
}

func (c *benchContext) Files(_ context.Context, _ string, patterns []string) (llb.State, []buildcontext.File, error) {
	files := c.files
	if len(patterns) > 0 {
		files = nil
		for _, f := range c.files {
			for _, p := range patterns {
				if f.Path == p {
					files = append(files, f)
				}
			}
		}
	}
	return llb.Local("context", llb.IncludePatterns(patterns), llb.LocalUniqueID("bench")), files, nil
}

// benchResolver serves the base config, and the release config (with its
// file list) for references to the release repository.
type benchResolver struct{ release []byte }

func (r *benchResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	if strings.Contains(ref, "shop/web") {
		if r.release == nil {
			return "", "", nil, fmt.Errorf("%s: not found", ref)
		}
		return ref, digest.FromBytes(r.release), r.release, nil
	}
	cfg := []byte(`{"architecture": "amd64", "os": "linux",
  "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["node"]},
  "rootfs": {"type": "layers", "diff_ids": ["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},
  "history": [{"created_by": "base layer"}]}`)
	return ref, digest.FromString("base manifest"), cfg, nil
}

func benchConvert(b *testing.B, resolver llb.ImageMetaResolver, files []buildcontext.File) (*convert.Result, convert.Opt) {
	pf, err := patchfile.Parse([]byte(benchPatchfile))
	if err != nil {
		b.Fatal(err)
	}
	opt := convert.Opt{TargetPlatform: &benchPlatform, MetaResolver: resolver, Context: &benchContext{files: files},
		SourceMap: llb.NewSourceMap(nil, "Patchfile", patchfile.Language, []byte(benchPatchfile))}
	opt.BuildArgs = map[string]string{}
	res, err := convert.Convert(context.Background(), pf, opt)
	if err != nil {
		b.Fatal(err)
	}
	return res, opt
}

// BenchmarkParseConvert parses the Patchfile and converts it to the LLB of
// a full build, marshaled as it is sent to the daemon.
func BenchmarkParseConvert(b *testing.B) {
	files := benchFiles(3000, -1)
	resolver := &benchResolver{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, _ := benchConvert(b, resolver, files)
		if _, err := res.Full("").Marshal(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanPatch decides a patch build against a release of the same
// 3,000 files with one changed: resolve the release config, decode its file
// list, compare, and build and marshal the patch LLB.
func BenchmarkPlanPatch(b *testing.B) {
	ctx := context.Background()
	released, _ := benchConvert(b, &benchResolver{}, benchFiles(3000, -1))
	list := released.AppList
	enc, err := list.Encode()
	if err != nil {
		b.Fatal(err)
	}
	cfg := map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": released.Identity.Labels()},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{
			"sha256:1111111111111111111111111111111111111111111111111111111111111111",
			"sha256:2222222222222222222222222222222222222222222222222222222222222222",
			"sha256:3333333333333333333333333333333333333333333333333333333333333333",
		}},
		filelist.ConfigField: enc,
	}
	release, err := json.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	resolver := &benchResolver{release: release}
	res, opt := benchConvert(b, resolver, benchFiles(3000, 42))
	b.ReportAllocs()
	for b.Loop() {
		out, err := outputOf(ctx, res, opt, newCandidateReader(opt))
		if err != nil {
			b.Fatal(err)
		}
		if out.extraConfig != nil {
			d, _ := decision(ctx, res, opt, newCandidateReader(opt))
			b.Fatalf("a full build, not a patch: %s", d.Summary())
		}
		if _, err := out.state.Marshal(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
