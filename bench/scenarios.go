package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/patchfile/patchfile/internal/stack"
	"github.com/pkg/errors"
)

// Scenario keys of the main comparison, in table order.
const (
	dfCold    = "df-cold"
	dflCold   = "dfl-cold"
	dfCache   = "df-cache"
	dflCache  = "dfl-cache"
	dfWarm    = "df-warm"
	dflWarm   = "dfl-warm"
	pfCold    = "pf-cold"
	pfWarm    = "pf-warm"
	pfNewRel  = "pf-newrel-cold"
	pfRelease = "pf-release"
	dfRelease = "df-release"
	dflRel    = "dfl-release"
	// With an SBOM and a mode=max provenance (attest).
	pfColdAttest    = "pf-cold-attest"
	dflCacheAttest  = "dfl-cache-attest"
	pfReleaseAttest = "pf-release-attest"
)

// scenario is one way of building the app after the one-file change.
type scenario struct {
	key, title string
	file       string // Patchfile, Dockerfile or Dockerfile.link
	cold       bool   // on a fresh daemon
	cache      bool   // --import-cache from the release's registry cache
	// args are build args on top of the app's (BASE, RELEASE).
	args map[string]string
	// path is the path every Patchfile build of the row must take.
	path string
	// attest asks for an SBOM (the bench's generator) and a mode=max
	// provenance; a Patchfile build patches the release made with them.
	attest bool
}

// scenarios are the measured builds, interleaved run by run so that
// whatever else the machine does spreads over all of them.
var scenarios = []scenario{
	{dfCold, "Dockerfile, cold, no cache", "Dockerfile", true, false, nil, "", false},
	{dflCold, "Dockerfile COPY --link, cold, no cache", "Dockerfile.link", true, false, nil, "", false},
	{dfCache, "Dockerfile, cold, --import-cache registry", "Dockerfile", true, true, nil, "", false},
	{dflCache, "Dockerfile COPY --link, cold, --import-cache registry", "Dockerfile.link", true, true, nil, "", false},
	{dfWarm, "Dockerfile, warm builder", "Dockerfile", false, false, nil, "", false},
	{dflWarm, "Dockerfile COPY --link, warm builder", "Dockerfile.link", false, false, nil, "", false},
	{pfCold, "Patchfile patch, cold builder", "Patchfile", true, false, nil, "patch", false},
	{pfWarm, "Patchfile patch, warm builder", "Patchfile", false, false, nil, "patch", false},
	// A new release, not a patch: a full build whose dependency stage comes
	// from the previous release's inline cache, with no --cache-from.
	{pfNewRel, "Patchfile new release (PATCH_MAX_SHARE=0), cold builder", "Patchfile", true, false, map[string]string{"PATCH_MAX_SHARE": "0"}, pathFullReused, false},
	// What users with supply-chain requirements build: an SBOM and a
	// mode=max provenance on every deploy, both sides.
	{pfColdAttest, "Patchfile patch, cold builder, --sbom --provenance=mode=max", "Patchfile", true, false, nil, "patch", true},
	{dflCacheAttest, "Dockerfile COPY --link, cold, --import-cache registry, --sbom --provenance=mode=max", "Dockerfile.link", true, true, nil, "", true},
}

// mainResult is the main comparison.
type mainResult struct {
	Releases map[string]measurement   // the release builds, on the warm builder
	Runs     map[string][]measurement // per scenario, one per run
	// ReleaseConfig is the size of the Patchfile release's config, which
	// holds its file list and which every patch build fetches.
	ReleaseConfig int64
	AppFiles      int
	AppBytes      int64
	DepsFiles     int
	// DepsLayer is the compressed size of the release's dependency stage
	// layer (the RUN), what a cold Dockerfile build with cache pulls.
	DepsLayer int64
}

// mainApp is the main comparison's app, kept for the changed-bytes series.
type mainApp struct {
	dir, defs string
	release   string // the Patchfile release tag
	// releaseAttest is the Patchfile release made with an SBOM and a
	// provenance, which the attest rows patch.
	releaseAttest string
	originals     map[string][]byte
}

// runMain builds the releases, then N times: change one file and build it
// every way.
func (e *env) runMain(ctx context.Context) (*mainResult, error) {
	app := &mainApp{dir: filepath.Join(e.runDir, "app", "src"), defs: filepath.Join(e.runDir, "app", "defs")}
	if err := writeApp(app.dir, e.cfg.App); err != nil {
		return nil, err
	}
	if err := writeDefs(app.defs); err != nil {
		return nil, err
	}
	app.originals = map[string][]byte{}
	for _, f := range []string{editedFile, clipFile} {
		dt, err := os.ReadFile(filepath.Join(app.dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		app.originals[f] = dt
	}
	e.mainApp = app
	res := &mainResult{Releases: map[string]measurement{}, Runs: map[string][]measurement{}}
	res.AppFiles, res.AppBytes = treeSize(app.dir)
	res.DepsFiles = e.cfg.App.Packages * (e.cfg.App.FilesPerPackage + 2)
	app.release = e.ref("bench/app", "pf-release")
	args := map[string]string{"BASE": e.base, "RELEASE": app.release}

	// The releases: Patchfile's with its inline cache (as the README's
	// release recipe builds them), and the anchors' with their registry cache.
	for _, r := range []struct{ key, file, tag, cache string }{
		{pfRelease, "Patchfile", "pf-release", inlineCache},
		{dfRelease, "Dockerfile", "df-release", e.ref("bench/cache", "df")},
		{dflRel, "Dockerfile.link", "dfl-release", e.ref("bench/cache", "dfl")},
	} {
		logf("release build: %s", r.key)
		m, err := e.measure(ctx, buildSpec{name: r.key, daemon: e.warm, appDir: app.dir, defsDir: app.defs,
			file: r.file, args: args, output: e.ref("bench/app", r.tag), exportCache: r.cache})
		if err != nil {
			return nil, err
		}
		if r.file == "Patchfile" && m.Path != "full" {
			return nil, errors.Errorf("the first Patchfile release took the %s path, not a full build", m.Path)
		}
		res.Releases[r.key] = m
		logf("  %s", m.summary())
	}
	// The release the attest rows patch: the same inputs with an SBOM and
	// a provenance (its dependency stage comes from the warm builder).
	app.releaseAttest = e.ref("bench/app", pfReleaseAttest)
	logf("release build: %s", pfReleaseAttest)
	m, err := e.measure(ctx, buildSpec{name: pfReleaseAttest, daemon: e.warm, appDir: app.dir, defsDir: app.defs,
		file: "Patchfile", args: withArgs(args, map[string]string{"RELEASE": app.releaseAttest}), output: app.releaseAttest,
		exportCache: inlineCache, attest: true})
	if err != nil {
		return nil, err
	}
	if m.Path != "full" {
		return nil, errors.Errorf("the attested Patchfile release took the %s path, not a full build", m.Path)
	}
	res.Releases[pfReleaseAttest] = m
	logf("  %s", m.summary())
	rel, err := e.readManifest(res.Releases[pfRelease].Digest)
	if err != nil {
		return nil, err
	}
	res.ReleaseConfig = rel.Config.Size
	if n := len(rel.Layers); n >= 2 {
		res.DepsLayer = rel.Layers[n-2].Size
	}

	// The rounds alternate their order (inTurn): a build's place in a
	// round changes what it finds (the disk still writing back the builds
	// before it), and a fixed order would give one side the same place
	// every round.
	for n := 1; n <= e.cfg.Runs; n++ {
		steps := make([]func() error, len(scenarios))
		for k, sc := range scenarios {
			steps[k] = func() error {
				// Every build gets its own edit of the same file: a patch
				// is reproducible, so a second build of the same change
				// would push nothing and look free.
				changed, err := editSource(app.dir, editedFile, n*100+k)
				if err != nil {
					return err
				}
				logf("run %d/%d: %s", n, e.cfg.Runs, sc.title)
				m, err := e.runScenario(ctx, app, sc, args, n)
				if err != nil {
					return err
				}
				if m.ChangedCompressed, err = compressedFiles(app.dir, "/app", changed); err != nil {
					return err
				}
				res.Runs[sc.key] = append(res.Runs[sc.key], m)
				logf("  %s", m.summary())
				return nil
			}
		}
		if err := inTurn(n-1, steps...); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// runScenario builds the changed app one way.
func (e *env) runScenario(ctx context.Context, app *mainApp, sc scenario, args map[string]string, n int) (measurement, error) {
	b := buildSpec{name: fmt.Sprintf("%s-%d", sc.key, n), appDir: app.dir, defsDir: app.defs,
		file: sc.file, args: withArgs(args, sc.args), output: e.ref("bench/app", fmt.Sprintf("%s-%d", sc.key, n)), attest: sc.attest}
	if sc.attest && sc.file == "Patchfile" {
		b.args = withArgs(b.args, map[string]string{"RELEASE": app.releaseAttest})
	}
	if sc.cache {
		cache := "df"
		if sc.file == "Dockerfile.link" {
			cache = "dfl"
		}
		b.importCache = e.ref("bench/cache", cache)
	}
	if !sc.cold {
		b.daemon = e.warm
		return e.measure(ctx, b)
	}
	return e.measureCold(ctx, b)
}

// measureCold measures b on a fresh daemon (withCold).
func (e *env) measureCold(ctx context.Context, b buildSpec) (measurement, error) {
	var m measurement
	err := e.withCold(ctx, func(d *stack.Daemon) error {
		b.daemon = d
		if b.frontendKept {
			if err := e.loadFrontend(ctx, b); err != nil {
				return err
			}
		}
		var err error
		m, err = e.measure(ctx, b)
		return err
	})
	return m, err
}

// withArgs is args plus extra, in a new map.
func withArgs(args, extra map[string]string) map[string]string {
	out := maps.Clone(args)
	maps.Copy(out, extra)
	return out
}

// summary is the one-line progress report of a measurement.
func (m measurement) summary() string {
	s := fmt.Sprintf("%.1f s; pulled %s base/deps + %s app layers, %s configs, %s frontend; pushed %s in %d blobs; top layer %s",
		m.Wall.Seconds(), human(m.PulledBaseDeps), human(m.PulledApp), human(m.PulledConfigs), human(m.PulledFrontend),
		human(m.Pushed), m.PushedBlobs, human(m.TopLayer))
	if m.Path != "" {
		s += "; path " + m.Path
	}
	if m.PulledScanner > 0 {
		s += "; SBOM generator image " + human(m.PulledScanner)
	}
	if m.FrontendRead > 0 {
		s += fmt.Sprintf("; context load %.2f s, frontend read+hash %.2f s", m.ContextLoad.Seconds(), m.FrontendRead.Seconds())
	}
	return s
}

// treeSize counts the regular files under dir and their bytes.
func treeSize(dir string) (int, int64) {
	var n int
	var size int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n++
			size += info.Size()
		}
		return nil
	})
	return n, size
}
