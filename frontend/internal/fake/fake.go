// Package fake serves the frontend's unit tests: Patchfile fixtures, a build context held in
// memory and a resolver that serves a fixed base image config, so that
// conversions and decisions run with no builder and no registry.
package fake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/stretchr/testify/require"
)

// Amd64 is the platform of the fakes' tests.
var Amd64 = ocispecs.Platform{OS: "linux", Architecture: "amd64"}

// Resolver serves one fixed image config for every reference, so that
// conversions never reach a registry.
type Resolver struct {
	manifest digest.Digest
	Resolved []string // the references asked for
}

// Config is the base image config for a platform, as a registry
// serves it: what matters is the PATH, which every exec op must inherit.
func Config(p *ocispecs.Platform) []byte {
	return []byte(`{
  "architecture": "` + p.Architecture + `",
  "os": "` + p.OS + `",
  "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
  "rootfs": {"type": "layers", "diff_ids": ["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},
  "history": [{"created_by": "base layer"}]
}`)
}

func (r *Resolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	if opt.ImageOpt == nil || opt.ImageOpt.Platform == nil {
		return "", "", nil, fmt.Errorf("resolving %s without a platform", ref)
	}
	p := opt.ImageOpt.Platform
	r.Resolved = append(r.Resolved, ref+" "+p.Architecture)
	m := r.manifest
	if m == "" {
		m = digest.FromString("manifest of " + ref + " for " + p.Architecture)
	}
	return ref, m, Config(p), nil
}

// Context is a build context held in memory: path -> content.
type Context map[string]string

func (fc Context) Main(_ context.Context, opts ...llb.LocalOption) (*llb.State, error) {
	st := llb.Local("context", append([]llb.LocalOption{llb.LocalUniqueID("fake")}, opts...)...)
	return &st, nil
}

// Load returns the state Files returns for patterns.
func (fc Context) Load(_ context.Context, _ string, patterns []string) (llb.State, error) {
	return llb.Local("context", llb.IncludePatterns(patterns), llb.LocalUniqueID("fake")), nil
}

// Files returns the files matching patterns (all for none) with their
// parent directories, sorted, as the gateway context does.
func (fc Context) Files(ctx context.Context, name string, patterns []string) (llb.State, []buildcontext.File, error) {
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return llb.State{}, nil, err
	}
	entries := map[string]buildcontext.File{}
	for p, data := range fc {
		if ok, _ := pm.MatchesOrParentMatches(p); len(patterns) > 0 && !ok {
			continue
		}
		entries[p] = buildcontext.NewFile(p, 0o644, []byte(data))
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			entries[dir] = buildcontext.File{Path: dir, Mode: os.ModeDir | 0o755}
		}
	}
	files := make([]buildcontext.File, 0, len(entries))
	for _, f := range entries {
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	st, err := fc.Load(ctx, name, patterns)
	return st, files, err
}

// OutputsPrefix is where a fake context holds what a build stage makes:
// Outputs returns the context's entries under it, as the tree of every
// build's outputs.
const OutputsPrefix = "outputs/"

// Outputs returns the entries under OutputsPrefix, with the prefix cut,
// as if every build stage had written them: a fake runs no build.
func (fc Context) Outputs(ctx context.Context, _ llb.State, _ string, _ []string) ([]buildcontext.File, error) {
	_, all, err := fc.Files(ctx, "outputs", []string{OutputsPrefix})
	if err != nil {
		return nil, err
	}
	var out []buildcontext.File
	for _, f := range all {
		if rel, ok := strings.CutPrefix(f.Path, OutputsPrefix); ok {
			f.Path = rel
			out = append(out, f)
		}
	}
	return out, nil
}

// Shop is the build context of most tests.
func Shop() Context {
	return Context{
		"package.json":      `{"name": "shop"}`,
		"package-lock.json": `{"lockfileVersion": 3}`,
		"web/package.json":  `{"name": "web"}`,
		"src/server.js":     `console.log("hi")`,
		"static/index.html": `<h1>shop</h1>`,
		"README.md":         `# shop`,
	}
}

// List lists the fake context; without withIgnored, the patterns of its
// ".dockerignore" entry (one per line) are applied.
func (fc Context) List(ctx context.Context, withIgnored bool) ([]buildcontext.File, error) {
	_, all, err := fc.Files(ctx, "list", nil)
	if err != nil {
		return nil, err
	}
	patterns, _ := fc.IgnorePatterns(ctx)
	if withIgnored || len(patterns) == 0 {
		return all, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	var out []buildcontext.File
	for _, f := range all {
		if ok, _ := pm.MatchesOrParentMatches(f.Path); !ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// IgnorePatterns returns the lines of the fake ".dockerignore".
func (fc Context) IgnorePatterns(context.Context) ([]string, error) {
	return strings.Fields(fc[".dockerignore"]), nil
}

// TestDigest pins the base image of test Patchfiles.
const TestDigest = "sha256:4f1d3b2a8c9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"

// PinnedFrom is a valid FROM line.
const PinnedFrom = "FROM alpine@" + TestDigest + "\n"

// FirstLine returns the first line err is located at.
func FirstLine(t testing.TB, err error) int {
	t.Helper()
	var le *parser.LocationError
	require.True(t, errors.As(err, &le), "error has no location: %v", err)
	require.NotEmpty(t, le.Locations)
	require.NotEmpty(t, le.Locations[0])
	return le.Locations[0][0].Start.Line
}
