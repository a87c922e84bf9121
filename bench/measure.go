package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// measurement is what one build cost, read from the registry's own log
// and storage rather than from BuildKit, so that every builder and frontend
// is measured the same way.
type measurement struct {
	Wall time.Duration
	// Pulled bytes (blob GETs the registry answered), split by what the
	// blob is: layers of the base image and of dependency stages (anything
	// below an image's top layer, and cache layers that are not an image's
	// top layer), app layers (an image's top layer), configs (image and
	// cache configs), and the frontend image's own blobs.
	PulledBaseDeps, PulledApp, PulledConfigs, PulledFrontend int64
	// Pushed is the size of the blobs the registry stores after the build
	// and did not before; PushedBlobs is their number.
	Pushed      int64
	PushedBlobs int
	// TopLayer is the compressed size of the pushed image's last layer.
	TopLayer int64
	// ChangedCompressed is gzip(tar) of the changed files as a layer would
	// hold them (compressedFiles): the push budget is this + 4 KiB.
	ChangedCompressed int64
	// Path is "patch" or "full" for Patchfile builds.
	Path   string
	Digest string
	// ContextLoad is how long the daemon took to receive the app files
	// (the "load application files" vertex), and FrontendRead the time
	// between that and the frontend's next request (reading the release
	// config): the frontend reading and hashing every app file. Zero for
	// Dockerfile builds.
	ContextLoad, FrontendRead time.Duration
	// Phases is where the wall time went, from the progress vertexes.
	Phases phases
	// DepsStart is when the dependency RUN started, from the build's first
	// progress (0 if it did not run).
	DepsStart time.Duration
	// ConfigBytes and ManifestBytes are the pushed image's config and
	// manifest sizes (part of what a patch pushes besides its layer).
	ConfigBytes, ManifestBytes int64
	// PulledScanner is the bytes pulled of the SBOM generator's image
	// (the attest rows), which every cold builder pulls, as it pulls the
	// frontend's.
	PulledScanner int64
	// PulledRuntime is the bytes pulled of the build's runtimeLayers (the
	// apps that build: a release's layers a deploy needs not read).
	PulledRuntime int64
}

// PulledLayers is every layer byte pulled.
func (m measurement) PulledLayers() int64 { return m.PulledBaseDeps + m.PulledApp }

// measure runs a build and reads what it cost.
func (e *env) measure(ctx context.Context, b buildSpec) (measurement, error) {
	blobsBefore, err := e.stack.Blobs()
	if err != nil {
		return measurement{}, err
	}
	logAt := e.stack.LogSize()
	settle()
	run, err := e.runBuildctl(ctx, b)
	if err != nil {
		return measurement{}, err
	}
	served, err := e.stack.RegistryRequests(logAt)
	if err != nil {
		return measurement{}, err
	}
	blobsAfter, err := e.stack.Blobs()
	if err != nil {
		return measurement{}, err
	}
	idx, err := e.indexRegistry(blobsAfter)
	if err != nil {
		return measurement{}, err
	}
	m := measurement{Wall: run.wall, Digest: run.digest}
	for _, t := range served {
		if t.Method != "GET" {
			continue
		}
		if b.runtimeLayers[t.Digest] {
			m.PulledRuntime += t.Bytes
		}
		switch {
		case e.frontendBlobs[t.Digest]:
			m.PulledFrontend += t.Bytes
		case e.scannerBlobs[t.Digest]:
			m.PulledScanner += t.Bytes
		case idx.appLayers[t.Digest]:
			m.PulledApp += t.Bytes
		case idx.layers[t.Digest]:
			m.PulledBaseDeps += t.Bytes
		default:
			m.PulledConfigs += t.Bytes
		}
	}
	for d, size := range blobsAfter {
		if _, ok := blobsBefore[d]; !ok {
			m.Pushed += size
			m.PushedBlobs++
		}
	}
	mf, err := e.readManifest(run.digest)
	if err != nil {
		return measurement{}, errors.Wrapf(err, "reading the manifest %s pushed by %s", run.digest, b.name)
	}
	if n := len(mf.Layers); n > 0 {
		m.TopLayer = mf.Layers[n-1].Size
	}
	m.ConfigBytes, m.ManifestBytes = mf.Config.Size, blobsAfter[run.digest]
	if b.file == "Patchfile" {
		m.Path = buildPath(run.vertexes)
		m.ContextLoad, m.FrontendRead = frontendReadTimes(run)
	}
	m.Phases = phasesOf(run, m.FrontendRead)
	m.DepsStart = depsStart(run)
	return m, nil
}

// frontendReadTimes finds, in a Patchfile build's progress, how long the
// app files took to reach the daemon and how long the frontend then spent
// before the build's own solve started its first app or patch step: that
// gap is the hashing (a build step of the frontend's image, or gateway
// round trips) plus the file list and the decision. (The candidates' configs are read before the
// app files are loaded, so a "load metadata" step does not end the gap.)
func frontendReadTimes(run *buildRun) (load, read time.Duration) {
	v := findVertex(run.vertexes, "load application files")
	if v == nil || v.Started == nil || v.Completed == nil {
		return 0, 0
	}
	load = v.Completed.Sub(*v.Started)
	if h := findVertex(run.vertexes, "[internal] hash application files"); h != nil && h.Completed != nil && h.Completed.After(*v.Completed) {
		// Hashed in a build step: the step's end. (A full build's own solve
		// starts only once the early dependency stage is done, which the
		// gap below would count as reading.)
		return load, h.Completed.Sub(*v.Completed)
	}
	var first *time.Time
	for _, next := range run.vertexes {
		n := next.Name
		solveStep := strings.HasPrefix(n, "[app] ") || strings.HasPrefix(n, "[patch] ") || strings.HasPrefix(n, "[internal] patch") ||
			strings.Contains(n, " app] ") || strings.Contains(n, " patch] ") // "[linux/arm64 app] ..."
		if !solveStep || strings.Contains(n, "load metadata") || next.Started == nil || !next.Started.After(*v.Completed) {
			continue
		}
		if first == nil || next.Started.Before(*first) {
			first = next.Started
		}
	}
	if first == nil {
		return load, 0
	}
	return load, first.Sub(*v.Completed)
}

// registryIndex classifies the registry's blobs by the manifests it holds.
type registryIndex struct {
	layers    map[string]bool
	appLayers map[string]bool // the top layer of some image (not the base)
}

// indexRegistry reads every manifest in the registry's storage. Manifests
// are small JSON blobs; anything over 1 MiB is a layer or a config.
func (e *env) indexRegistry(blobs map[string]int64) (*registryIndex, error) {
	idx := &registryIndex{layers: map[string]bool{}, appLayers: map[string]bool{}}
	for d, size := range blobs {
		if size > 1<<20 || size < 2 {
			continue
		}
		dt, err := e.stack.ReadBlob(d)
		if err != nil {
			return nil, err
		}
		if len(dt) == 0 || dt[0] != '{' {
			continue
		}
		var mf ocispecs.Manifest
		if json.Unmarshal(dt, &mf) != nil || len(mf.Layers) == 0 || mf.Config.Digest == "" {
			continue
		}
		if strings.HasPrefix(mf.Layers[0].MediaType, "application/vnd.in-toto") {
			// An attestation manifest: its statements (an SBOM, a
			// provenance) are metadata, counted with the configs.
			continue
		}
		for _, l := range mf.Layers {
			idx.layers[l.Digest.String()] = true
		}
		// Cache manifests carry every layer of a build; only images have a
		// meaningful top layer. The base image's only layer is the base.
		if strings.Contains(mf.Config.MediaType, "buildkit") || d == e.baseManifest {
			continue
		}
		idx.appLayers[mf.Layers[len(mf.Layers)-1].Digest.String()] = true
	}
	return idx, nil
}

// readManifest reads an image manifest from storage; for an index, the
// first manifest it lists (every build here is single-platform).
func (e *env) readManifest(dgst string) (*ocispecs.Manifest, error) {
	dt, err := e.stack.ReadBlob(dgst)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Manifests []ocispecs.Descriptor `json:"manifests"`
	}
	if json.Unmarshal(dt, &probe) == nil && len(probe.Manifests) > 0 {
		return e.readManifest(probe.Manifests[0].Digest.String())
	}
	var mf ocispecs.Manifest
	if err := json.Unmarshal(dt, &mf); err != nil {
		return nil, err
	}
	return &mf, nil
}

// imageBlobs returns the layer and config digests of a pinned image
// reference, and their total size (the compressed image size).
func (e *env) imageBlobs(ref string) (map[string]bool, int64, error) {
	_, dgst, ok := strings.Cut(ref, "@")
	if !ok {
		return nil, 0, errors.Errorf("%s is not pinned by digest", ref)
	}
	mf, err := e.readManifest(dgst)
	if err != nil {
		return nil, 0, err
	}
	out := map[string]bool{mf.Config.Digest.String(): true}
	size := mf.Config.Size
	for _, l := range mf.Layers {
		out[l.Digest.String()] = true
		size += l.Size
	}
	return out, size, nil
}

// configSize returns the size of an image's config blob (a release's
// config holds its file list).
func (e *env) configSize(dgst string) (int64, error) {
	mf, err := e.readManifest(dgst)
	if err != nil {
		return 0, err
	}
	return mf.Config.Size, nil
}

// fileSize is the size of a file, or 0.
func fileSize(p string) int64 {
	st, err := os.Stat(filepath.Clean(p))
	if err != nil {
		return 0
	}
	return st.Size()
}

// depsStart is the dependency RUN's start, from the build's first vertex.
func depsStart(run *buildRun) time.Duration {
	var first time.Time
	for _, v := range run.vertexes {
		if v.Started != nil && (first.IsZero() || v.Started.Before(first)) {
			first = *v.Started
		}
	}
	for _, v := range run.vertexes {
		if !v.Cached && v.Started != nil && strings.Contains(v.Name, "RUN sh npm-ci.sh") {
			return v.Started.Sub(first)
		}
	}
	return 0
}

// settle writes every dirty page to disk before a measured build starts.
// A build that writes 100,000 files, or a daemon whose state was just
// removed, leaves the kernel seconds of writeback that would otherwise run
// during the next build and slow whichever build comes next: at 100,000
// files the same upload took 14 s in one build and 23 s in the next.
func settle() {
	start := time.Now()
	syscall.Sync()
	if d := time.Since(start); d > time.Second {
		logf("  (waited %.1f s for the disk before the build)", d.Seconds())
	}
}
