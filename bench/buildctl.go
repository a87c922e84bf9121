package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/pkg/errors"
)

// buildSpec is one buildctl invocation, as a user would type it: every
// build of the benchmark goes through the buildctl binary, so the frontend
// image is pulled and run by the daemon exactly as in production.
type buildSpec struct {
	name    string // names the log files
	daemon  *stack.Daemon
	appDir  string // --local context
	defsDir string // --local dockerfile
	// file is "Patchfile" (run through gateway.v0 and the frontend image)
	// or a Dockerfile (run by the dockerfile.v0 frontend built into buildkitd).
	file        string
	args        map[string]string
	output      string // image reference to push
	exportCache string // registry reference for --export-cache mode=max, or inlineCache
	// exportBuildCache is a second --export-cache, of the registry kind
	// (mode=max): a Patchfile release's build cache (convert.BuildCacheTag).
	exportBuildCache string
	importCache      string // registry reference for --import-cache
	// attest asks for an SBOM from the bench's generator (env.scanner)
	// and a mode=max provenance, as --sbom=true --provenance=mode=max do.
	attest bool
	// runtimeLayers are layers whose pulls measure counts apart
	// (measurement.PulledRuntime).
	runtimeLayers map[string]bool
	// frontendKept gives a cold builder the frontend image before the
	// clock starts (measureCold): a builder that ran the frontend before
	// and kept nothing else, as a persistent CI builder or a runner image
	// with the image pulled in advance.
	frontendKept bool
}

// buildRun is what one buildctl run did.
type buildRun struct {
	wall   time.Duration
	digest string // manifest digest pushed
	// vertexes are the progress vertexes, by digest, final state.
	vertexes []*client.Vertex
}

// runBuildctl runs the build and returns its wall time (the buildctl
// process, from exec to exit: session, context upload, solve, export and
// push).
func (e *env) runBuildctl(ctx context.Context, b buildSpec) (*buildRun, error) {
	logBase := filepath.Join(e.runDir, "logs", b.name)
	if err := os.MkdirAll(filepath.Dir(logBase), 0o755); err != nil {
		return nil, err
	}
	meta := logBase + ".metadata.json"
	args := append(e.buildctlInputs(b), "--progress=rawjson",
		"--output", "type=image,name="+b.output+",push=true",
		"--metadata-file", meta)
	keys := make([]string, 0, len(b.args))
	for k := range b.args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "--opt", "build-arg:"+k+"="+b.args[k])
	}
	switch b.exportCache {
	case "":
	case inlineCache:
		args = append(args, "--export-cache", "type=inline")
	default:
		args = append(args, "--export-cache", "type=registry,ref="+b.exportCache+",mode=max")
	}
	if b.exportBuildCache != "" {
		args = append(args, "--export-cache", "type=registry,ref="+b.exportBuildCache+",mode=max")
	}
	if b.attest {
		args = append(args, "--opt", "attest:sbom=generator="+e.scanner, "--opt", "attest:provenance=mode=max")
	}
	if b.importCache != "" {
		args = append(args, "--import-cache", "type=registry,ref="+b.importCache)
	}
	progress, err := os.Create(logBase + ".progress.jsonl")
	if err != nil {
		return nil, err
	}
	defer progress.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(e.stack.ToolsDir, "buildctl"), args...)
	cmd.Stdout = progress
	// rawjson progress goes to stderr; keep a copy for parsing.
	cmd.Stderr = io.MultiWriter(progress, &stderr)
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	vertexes := parseProgress(stderr.Bytes())
	if ctx.Err() != nil {
		return nil, errors.Wrapf(ctx.Err(), "buildctl %s interrupted", b.name)
	}
	if err != nil {
		return nil, errors.Errorf("buildctl %s: %v; failed vertexes: %s (progress in %s)",
			b.name, err, failedVertexes(vertexes), progress.Name())
	}
	dgst, err := metadataDigest(meta)
	if err != nil {
		return nil, err
	}
	return &buildRun{wall: wall, digest: dgst, vertexes: vertexes}, nil
}

// buildctlInputs are the arguments of a `buildctl build` of b without its
// outputs: the daemon, the two local sources, the definition and the
// frontend that reads it.
func (e *env) buildctlInputs(b buildSpec) []string {
	args := []string{"--addr", b.daemon.Addr, "build",
		"--local", "context=" + b.appDir, "--local", "dockerfile=" + b.defsDir,
		"--opt", "filename=" + b.file}
	if b.file == "Patchfile" {
		return append(args, "--frontend", "gateway.v0", "--opt", "source="+e.frontendImage)
	}
	return append(args, "--frontend", "dockerfile.v0")
}

// loadFrontend has the daemon of b pull and run the frontend image, and
// nothing else: it answers `--call=outline` for b's Patchfile, which
// reads no image, no context and no release.
func (e *env) loadFrontend(ctx context.Context, b buildSpec) error {
	args := append(e.buildctlInputs(b), "--opt", "requestid=frontend.outline")
	out, err := exec.CommandContext(ctx, filepath.Join(e.stack.ToolsDir, "buildctl"), args...).CombinedOutput()
	if err != nil {
		return errors.Errorf("loading the frontend image on %s: %v: %s", b.name, err, out)
	}
	return nil
}

// parseProgress folds rawjson SolveStatus lines into the final state of
// every vertex, in order of first appearance.
func parseProgress(out []byte) []*client.Vertex {
	byDigest := map[string]*client.Vertex{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var st client.SolveStatus
		if json.Unmarshal(sc.Bytes(), &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			k := v.Digest.String()
			old, ok := byDigest[k]
			if !ok {
				order = append(order, k)
				byDigest[k] = v
				continue
			}
			// Later updates carry completion; keep the first start, and
			// a cache hit reported by any update (omitempty drops false).
			if old.Started != nil && (v.Started == nil || v.Started.After(*old.Started)) {
				v.Started = old.Started
			}
			if old.Completed != nil && v.Completed == nil {
				v.Completed = old.Completed
			}
			v.Cached = v.Cached || old.Cached
			byDigest[k] = v
		}
	}
	out2 := make([]*client.Vertex, 0, len(order))
	for _, k := range order {
		out2 = append(out2, byDigest[k])
	}
	return out2
}

func failedVertexes(vs []*client.Vertex) string {
	var out []string
	for _, v := range vs {
		if v.Error != "" {
			out = append(out, fmt.Sprintf("%q: %s", v.Name, v.Error))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}

func metadataDigest(path string) (string, error) {
	dt, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var meta map[string]any
	if err := json.Unmarshal(dt, &meta); err != nil {
		return "", errors.Wrapf(err, "parsing %s", path)
	}
	d, _ := meta[exptypes.ExporterImageDigestKey].(string)
	if d == "" {
		return "", errors.Errorf("%s has no image digest", path)
	}
	return d, nil
}

// findVertex returns the first vertex whose name contains s.
func findVertex(vs []*client.Vertex, s string) *client.Vertex {
	for _, v := range vs {
		if strings.Contains(v.Name, s) {
			return v
		}
	}
	return nil
}

// inlineCache as a buildSpec's exportCache exports BuildKit's inline cache
// into the image's config (--export-cache type=inline).
const inlineCache = "inline"

// buildPath says which path a Patchfile build took, from the progress
// line the frontend writes ("patch of release ...", "full build: ...",
// and for a full build that took its dependency stage from a release's
// cache, "...; dependency stage from release ...").
func buildPath(vs []*client.Vertex) string {
	for _, v := range vs {
		// "full build:" first, so that no reason's wording passes for a patch.
		switch {
		case strings.Contains(v.Name, "full build:") && strings.Contains(v.Name, "dependency stage from release"):
			return pathFullReused
		case strings.Contains(v.Name, "full build:"):
			return "full"
		case strings.Contains(v.Name, "patch of release"):
			return "patch"
		}
	}
	return "unknown"
}

// pathFullReused is the path of a full build whose dependency stage came
// from a release's inline cache.
const pathFullReused = "full, dependency stage reused"
