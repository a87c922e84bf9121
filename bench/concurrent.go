package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchfile/patchfile/internal/stack"
	"github.com/pkg/errors"
)

// concurrentApps is how many deploys share one builder at once: a CI
// fleet's or a cloud builder's busy minute.
const concurrentApps = 16

// Scenario keys of the shared-builder comparison.
const (
	ccAppsAtOnce   = "apps-at-once"
	ccAppsOneByOne = "apps-one-by-one"
	ccOneAppAtOnce = "one-app-at-once"
	ccDockerAtOnce = "dockerfile-at-once"
)

// concurrentResult is the shared-builder comparison: deploys of 16
// different apps (100 to 3,000 files) at once on one fresh builder, the
// same one by one, 16 deploys of one app to the same release at once, and
// the 16 apps' Dockerfile deploys (COPY --link, --import-cache) at once.
type concurrentResult struct {
	AppFiles  []int
	Scenarios []concurrentScenario
}

// concurrentScenario is one way of running the deploys, each on a fresh
// builder.
type concurrentScenario struct {
	Key, Title string
	Builds     int
	// Wall is from the first build's start to the last one's end.
	Wall time.Duration
	// Patches is how many Patchfile builds took the patch path, and
	// Checked how many of those pushed a layer that holds exactly the
	// edited file, with its new content (and its parent directories).
	Patches, Checked int
	// FrontendPeakKiB is each frontend's peak resident memory, as it
	// logs it (PATCH_LOG_MEMORY); BuilderPeakKiB is buildkitd's (VmHWM).
	FrontendPeakKiB []int64
	BuilderPeakKiB  int64
	// Failures are the builds that failed or were wrong, with why.
	Failures []string
}

// concurrentApp is one app of the comparison.
type concurrentApp struct {
	dir, release, cache string
	files               int
}

func (e *env) runConcurrent(ctx context.Context) (*concurrentResult, error) {
	defs := filepath.Join(e.runDir, "concurrent", "defs")
	if err := writeDefs(defs); err != nil {
		return nil, err
	}
	res := &concurrentResult{}
	var apps []concurrentApp
	for i := range concurrentApps {
		files := 100 + i*(3000-100)/(concurrentApps-1)
		a := concurrentApp{dir: filepath.Join(e.runDir, "concurrent", fmt.Sprintf("app%02d", i)), files: files,
			release: e.ref("bench/concurrent", fmt.Sprintf("app%02d-release", i)),
			cache:   e.ref("bench/concurrent-cache", fmt.Sprintf("app%02d", i))}
		spec := appSpec{Seed: e.cfg.Seed + int64(i) + 1, SourceFiles: files, SourceMin: 200, SourceMax: 3800,
			Assets: 2, AssetSize: 32 << 10, ClipSize: 32 << 10, Packages: 5, FilesPerPackage: 5, PackageKB: 4, BlockLines: 256}
		if err := writeApp(a.dir, spec); err != nil {
			return nil, err
		}
		logf("concurrent: releases of app %d (%d files)", i, files)
		for _, b := range []buildSpec{
			{name: fmt.Sprintf("cc-app%02d-pf-release", i), file: "Patchfile", output: a.release, exportCache: inlineCache,
				args: map[string]string{"BASE": e.base, "RELEASE": a.release, "PATCH_MAX_SHARE": "0"}},
			{name: fmt.Sprintf("cc-app%02d-dfl-release", i), file: "Dockerfile.link", output: e.ref("bench/concurrent", fmt.Sprintf("app%02d-dfl", i)),
				exportCache: a.cache, args: map[string]string{"BASE": e.base}},
		} {
			b.daemon, b.appDir, b.defsDir = e.warm, a.dir, defs
			if _, err := e.runBuildctl(ctx, b); err != nil {
				return nil, err
			}
		}
		apps = append(apps, a)
		res.AppFiles = append(res.AppFiles, files)
	}

	// Each scenario's deploys: a Patchfile deploy of an edit, or the
	// Dockerfile's. An edit is made before the clock starts.
	type deploy struct {
		b      buildSpec
		edited []byte // the edited file's new content, to find in the layer
	}
	edit := func(a concurrentApp, dir string, n int) ([]byte, error) {
		if _, err := editSource(dir, editedFile, n); err != nil {
			return nil, err
		}
		// Each edit gets a modification time of its own, as edits in
		// separate checkouts have. Edits made in one loop can share one
		// (the kernel's clock ticks every few milliseconds), and
		// buildctl's sessions share one cached copy of a local context
		// per name on a builder (BuildKit's local source; buildx keys it
		// by directory): a file with the copy's path, size and time is
		// taken for unchanged, and the previous app's content is built,
		// by any frontend. This run saw it happen.
		p := filepath.Join(dir, filepath.FromSlash(editedFile))
		t := time.Now().Add(time.Duration(n) * time.Millisecond)
		if err := os.Chtimes(p, t, t); err != nil {
			return nil, err
		}
		return os.ReadFile(p)
	}
	pf := func(name string, a concurrentApp, dir string, n int) (deploy, error) {
		dt, err := edit(a, dir, n)
		return deploy{b: buildSpec{name: name, file: "Patchfile", appDir: dir, defsDir: defs,
			output: e.ref("bench/concurrent", name),
			args:   map[string]string{"BASE": e.base, "RELEASE": a.release, "PATCH_LOG_MEMORY": "1"}}, edited: dt}, err
	}
	// everyApp is a Patchfile deploy of an edit of every app; edits are
	// numbered from base, so that no two deploys ship the same change.
	everyApp := func(key string, round, base int) ([]deploy, error) {
		var out []deploy
		for i, a := range apps {
			d, err := pf(fmt.Sprintf("cc-%s-%d-app%02d", key, round, i), a, a.dir, base+round*100+i)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		return out, nil
	}
	scenarios := []struct {
		key, title string
		together   bool
		deploys    func(round int) ([]deploy, error)
	}{
		{ccAppsAtOnce, "16 apps, Patchfile deploys at once", true, func(round int) ([]deploy, error) {
			return everyApp(ccAppsAtOnce, round, 1000)
		}},
		{ccAppsOneByOne, "16 apps, Patchfile deploys one by one", false, func(round int) ([]deploy, error) {
			return everyApp(ccAppsOneByOne, round, 2000)
		}},
		{ccOneAppAtOnce, "1 app, 16 Patchfile deploys of one release at once", true, func(round int) ([]deploy, error) {
			var out []deploy
			a := apps[len(apps)/2]
			for i := range concurrentApps {
				dir := filepath.Join(e.runDir, "concurrent", fmt.Sprintf("copy-%d-%02d", round, i))
				if err := os.CopyFS(dir, os.DirFS(a.dir)); err != nil {
					return nil, err
				}
				d, err := pf(fmt.Sprintf("cc-%s-%d-%02d", ccOneAppAtOnce, round, i), a, dir, 3000+round*100+i)
				if err != nil {
					return nil, err
				}
				out = append(out, d)
			}
			return out, nil
		}},
		{ccDockerAtOnce, "16 apps, Dockerfile COPY --link deploys at once (--import-cache)", true, func(round int) ([]deploy, error) {
			var out []deploy
			for i, a := range apps {
				if _, err := edit(a, a.dir, 4000+round*100+i); err != nil {
					return nil, err
				}
				name := fmt.Sprintf("cc-%s-%d-app%02d", ccDockerAtOnce, round, i)
				out = append(out, deploy{b: buildSpec{name: name, file: "Dockerfile.link", appDir: a.dir, defsDir: defs,
					output: e.ref("bench/concurrent", name), importCache: a.cache, args: map[string]string{"BASE": e.base}}})
			}
			return out, nil
		}},
	}
	for _, sc := range scenarios {
		logf("concurrent: %s", sc.title)
		deploys, err := sc.deploys(1)
		if err != nil {
			return nil, err
		}
		out := concurrentScenario{Key: sc.key, Title: sc.title, Builds: len(deploys)}
		err = e.withCold(ctx, func(d *stack.Daemon) error {
			logAt := fileSize(d.LogPath())
			settle()
			runs := make([]*buildRun, len(deploys))
			errs := make([]error, len(deploys))
			start := time.Now()
			if sc.together {
				var wg sync.WaitGroup
				for i := range deploys {
					wg.Go(func() {
						b := deploys[i].b
						b.daemon = d
						runs[i], errs[i] = e.runBuildctl(ctx, b)
					})
				}
				wg.Wait()
			} else {
				for i := range deploys {
					b := deploys[i].b
					b.daemon = d
					runs[i], errs[i] = e.runBuildctl(ctx, b)
				}
			}
			out.Wall = time.Since(start)
			out.BuilderPeakKiB = d.PeakMemoryKiB()
			peaks, err := frontendPeaks(d.LogPath(), logAt)
			if err != nil {
				return err
			}
			out.FrontendPeakKiB = peaks
			for i, dep := range deploys {
				if errs[i] != nil {
					out.Failures = append(out.Failures, fmt.Sprintf("%s: %v", dep.b.name, errs[i]))
					continue
				}
				if dep.b.file != "Patchfile" {
					continue
				}
				if p := buildPath(runs[i].vertexes); p != "patch" {
					out.Failures = append(out.Failures, fmt.Sprintf("%s: took the %s path", dep.b.name, p))
					continue
				}
				out.Patches++
				if why := e.checkPatchLayer(runs[i].digest, dep.edited); why != "" {
					out.Failures = append(out.Failures, dep.b.name+": "+why)
					continue
				}
				out.Checked++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		logf("  %.1f s; %d patches, %d checked, %d failures; frontend peak %s; builder peak %s",
			out.Wall.Seconds(), out.Patches, out.Checked, len(out.Failures), humanKiB(maxOf(out.FrontendPeakKiB)), humanKiB(out.BuilderPeakKiB))
		res.Scenarios = append(res.Scenarios, out)
	}
	return res, nil
}

// checkPatchLayer says what is wrong with a patch's top layer, or "": it
// must hold the edited file with its new content, and nothing but it and
// its parent directories.
func (e *env) checkPatchLayer(manifest string, edited []byte) string {
	mf, err := e.readManifest(manifest)
	if err != nil {
		return err.Error()
	}
	top := mf.Layers[len(mf.Layers)-1]
	blob, err := e.stack.ReadBlob(top.Digest.String())
	if err != nil {
		return err.Error()
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		return "the patch layer is not gzip: " + err.Error()
	}
	want := "app/" + editedFile
	found := false
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "reading the patch layer: " + err.Error()
		}
		name := strings.TrimSuffix(h.Name, "/")
		switch {
		case name == want:
			dt, err := io.ReadAll(tr)
			if err != nil {
				return err.Error()
			}
			if !bytes.Equal(dt, edited) {
				return "the patch layer holds another content of " + want
			}
			found = true
		case h.Typeflag == tar.TypeDir && strings.HasPrefix(want, name+"/"):
		default:
			return "the patch layer holds " + h.Name + ", which did not change"
		}
	}
	if !found {
		return "the patch layer lacks " + want
	}
	return ""
}

var peakLine = regexp.MustCompile(`patchfile frontend: peak resident memory (\d+) KiB`)

// frontendPeaks reads the frontends' peak memory lines a daemon's log got
// after offset.
func frontendPeaks(logPath string, offset int64) ([]int64, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	var out []int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if m := peakLine.FindStringSubmatch(sc.Text()); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return nil, errors.WithStack(err)
			}
			out = append(out, n)
		}
	}
	return out, sc.Err()
}

func maxOf(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func humanKiB(k int64) string {
	return fmt.Sprintf("%.1f MiB", float64(k)/1024)
}
