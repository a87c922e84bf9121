package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/patchfile/patchfile/internal/stack"
	"github.com/pkg/errors"
)

// scaleFilesPoint is the patch path on an app of Files tiny files, beside
// the anchor on the same app: the Dockerfile with COPY --link, its release
// exporting a registry cache (mode=max), its one-file builds on a cold
// builder importing it.
type scaleFilesPoint struct {
	Files         int
	Release       measurement   // the full build, on the warm builder, that made the release the patches patch
	ReleaseConfig int64         // its config, file list included
	Cold, Warm    []measurement // one-file patches
	AnchorRelease measurement   // the anchor's, on the warm builder, which exported the cache its cold builds import
	Anchor        []measurement // the anchor's one-file builds, cold
	// AnchorWarm are the anchor's one-file builds on the warm builder
	// that built its release, against the warm patches.
	AnchorWarm []measurement
	// ColdReleases and AnchorColdReleases are the two releases again, on a
	// cold builder each, one of each per round: the release figures and
	// target are their medians, as CI builds a release on a fresh runner.
	ColdReleases, AnchorColdReleases []measurement
}

// scaleBytesPoint is the patch path when one file of Bytes new bytes
// changes in the main app.
type scaleBytesPoint struct {
	Bytes      int
	Cold, Warm []measurement
}

// runScaleFiles measures how a one-file patch grows with the app: a
// release of n tiny files, then the same file edited, patched on a cold
// and on the warm builder, and built by the anchor on a cold builder, the
// order alternating from round to round. The dependency stage is tiny
// here, so what grows is what each does per app file: receive it, hash it
// (the frontend) or copy it (the Dockerfile), list it in the release
// config (the frontend).
func (e *env) runScaleFiles(ctx context.Context) ([]scaleFilesPoint, error) {
	var out []scaleFilesPoint
	for _, n := range e.cfg.ScaleFiles {
		dir := filepath.Join(e.runDir, "scale", fmt.Sprint(n))
		appDir, defs := filepath.Join(dir, "src"), filepath.Join(dir, "defs")
		logf("scale: writing an app of %d files", n)
		if err := writeTinyApp(appDir, n, e.cfg.Seed); err != nil {
			return nil, err
		}
		if err := writeDefs(defs); err != nil {
			return nil, err
		}
		repo := fmt.Sprintf("bench/scale-%d", n)
		args := map[string]string{"BASE": e.base, "RELEASE": e.ref(repo, "release")}
		p := scaleFilesPoint{Files: n}
		var err error
		anchorCache := e.ref(repo, "anchor-cache")
		releases := []func() error{
			func() (err error) {
				logf("scale %d files: release build", n)
				p.Release, err = e.measure(ctx, buildSpec{name: fmt.Sprintf("scale-%d-release", n), daemon: e.warm,
					appDir: appDir, defsDir: defs, file: "Patchfile", args: args, output: e.ref(repo, "release")})
				logf("  %s", p.Release.summary())
				return err
			},
			func() (err error) {
				logf("scale %d files: anchor release build", n)
				p.AnchorRelease, err = e.measure(ctx, buildSpec{name: fmt.Sprintf("scale-%d-anchor-release", n), daemon: e.warm,
					appDir: appDir, defsDir: defs, file: "Dockerfile.link", args: args, output: e.ref(repo, "anchor-release"),
					exportCache: anchorCache})
				logf("  %s", p.AnchorRelease.summary())
				return err
			},
		}
		if err := inTurn(len(e.cfg.ScaleFiles)+n, releases...); err != nil {
			return nil, err
		}
		if p.ReleaseConfig, err = e.configSize(p.Release.Digest); err != nil {
			return nil, err
		}
		for r := 1; r <= e.cfg.ScaleRuns; r++ {
			patches := func() error {
				cold, warm, err := e.patchBoth(ctx, fmt.Sprintf("scale-%d-%d", n, r), appDir, defs, args, repo,
					func(k int) (string, error) { return editSource(appDir, "src/d0000/f00.js", 3*r+k) })
				p.Cold, p.Warm = append(p.Cold, cold), append(p.Warm, warm)
				return err
			}
			anchor := func() error {
				if _, err := editSource(appDir, "src/d0000/f00.js", 3*r+2); err != nil {
					return err
				}
				name := fmt.Sprintf("scale-%d-%d-anchor", n, r)
				logf("%s: cold anchor build", name)
				return e.withCold(ctx, func(d *stack.Daemon) error {
					m, err := e.measure(ctx, buildSpec{name: name, daemon: d, appDir: appDir, defsDir: defs, file: "Dockerfile.link",
						args: args, output: e.ref(repo, name), importCache: anchorCache})
					logf("  %s", m.summary())
					p.Anchor = append(p.Anchor, m)
					return err
				})
			}
			anchorWarm := func() error {
				if _, err := editSource(appDir, "src/d0000/f00.js", 3*r+2+1000); err != nil {
					return err
				}
				name := fmt.Sprintf("scale-%d-%d-anchor-warm", n, r)
				logf("%s: warm anchor build", name)
				m, err := e.measure(ctx, buildSpec{name: name, daemon: e.warm, appDir: appDir, defsDir: defs, file: "Dockerfile.link",
					args: args, output: e.ref(repo, name)})
				logf("  %s", m.summary())
				p.AnchorWarm = append(p.AnchorWarm, m)
				return err
			}
			// The releases again, on cold builders. RELEASE names a tag
			// that does not exist, so the Patchfile takes the path of a
			// first release, as in the warm release above; each pushes to
			// a tag of its own, so the patches' release stays what it is.
			release := func() error {
				name := fmt.Sprintf("scale-%d-%d-release", n, r)
				logf("%s: release build, cold", name)
				relArgs := maps.Clone(args)
				relArgs["RELEASE"] = e.ref(repo, fmt.Sprintf("none-%d", r))
				return e.withCold(ctx, func(d *stack.Daemon) error {
					m, err := e.measure(ctx, buildSpec{name: name, daemon: d, appDir: appDir, defsDir: defs, file: "Patchfile",
						args: relArgs, output: e.ref(repo, fmt.Sprintf("release-%d", r))})
					logf("  %s", m.summary())
					p.ColdReleases = append(p.ColdReleases, m)
					return err
				})
			}
			anchorRelease := func() error {
				name := fmt.Sprintf("scale-%d-%d-anchor-release", n, r)
				logf("%s: anchor release build, cold", name)
				return e.withCold(ctx, func(d *stack.Daemon) error {
					m, err := e.measure(ctx, buildSpec{name: name, daemon: d, appDir: appDir, defsDir: defs, file: "Dockerfile.link",
						args: args, output: e.ref(repo, fmt.Sprintf("anchor-release-%d", r)),
						exportCache: fmt.Sprintf("%s-%d", anchorCache, r)})
					logf("  %s", m.summary())
					p.AnchorColdReleases = append(p.AnchorColdReleases, m)
					return err
				})
			}
			if err := inTurn(r, patches, anchor, anchorWarm, release, anchorRelease); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
		if !e.cfg.Keep {
			_ = os.RemoveAll(dir)
		}
	}
	return out, nil
}

// inTurn runs steps in order when turn is even, in reverse when it is odd:
// whatever else the machine does at the time spreads over all of them.
func inTurn(turn int, steps ...func() error) error {
	if turn%2 == 1 {
		slices.Reverse(steps)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// runScaleBytes measures how a patch grows with the change: one file of
// the main app (public/media/clip.bin) replaced by n incompressible bytes.
// PATCH_MAX_SHARE=100 keeps the patch path for the largest change, which
// the default re-release rule (50% of the app's bytes) might turn into a
// full build; the report says so.
func (e *env) runScaleBytes(ctx context.Context) ([]scaleBytesPoint, error) {
	app := e.mainApp
	if app == nil {
		return nil, errors.New("the changed-bytes series needs the main comparison's release")
	}
	// Back to the release's tree: only the clip changes from here on.
	for f, dt := range app.originals {
		if err := os.WriteFile(filepath.Join(app.dir, filepath.FromSlash(f)), dt, 0o644); err != nil {
			return nil, err
		}
	}
	args := map[string]string{"BASE": e.base, "RELEASE": app.release, "PATCH_MAX_SHARE": "100"}
	var out []scaleBytesPoint
	for _, size := range e.cfg.ScaleBytes {
		p := scaleBytesPoint{Bytes: size}
		for r := 1; r <= e.cfg.ScaleRuns; r++ {
			cold, warm, err := e.patchBoth(ctx, fmt.Sprintf("bytes-%d-%d", size, r), app.dir, app.defs, args, "bench/app",
				func(k int) (string, error) { return replaceFile(app.dir, clipFile, size, 2*r+k) })
			if err != nil {
				return nil, err
			}
			p.Cold, p.Warm = append(p.Cold, cold), append(p.Warm, warm)
		}
		out = append(out, p)
	}
	return out, nil
}

// patchBoth builds a patch on a cold builder and on the warm one. Each
// gets its own change (edit(0), edit(1): the file it changed): a patch is
// reproducible, so the same change built twice would push nothing the
// second time.
func (e *env) patchBoth(ctx context.Context, name, appDir, defs string, args map[string]string, repo string,
	edit func(k int) (string, error)) (cold, warm measurement, err error) {
	build := func(kind string, k int, d *stack.Daemon) (measurement, error) {
		changed, err := edit(k)
		if err != nil {
			return measurement{}, err
		}
		logf("%s: %s patch", name, kind)
		m, err := e.measure(ctx, buildSpec{name: name + "-" + kind, daemon: d, appDir: appDir, defsDir: defs,
			file: "Patchfile", args: args, output: e.ref(repo, name+"-"+kind)})
		if err != nil {
			return m, err
		}
		if m.ChangedCompressed, err = compressedFiles(appDir, "/app", changed); err != nil {
			return m, err
		}
		logf("  %s", m.summary())
		return m, nil
	}
	err = e.withCold(ctx, func(d *stack.Daemon) error {
		var err error
		cold, err = build("cold", 0, d)
		return err
	})
	if err != nil {
		return cold, warm, err
	}
	warm, err = build("warm", 1, e.warm)
	return cold, warm, err
}
