package main

import (
	"fmt"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	Config     config
	Started    time.Time
	Duration   time.Duration
	RunDir     string
	Machine    machine
	Load       loadStats
	Frontend   frontendInfo
	Main       *mainResult
	ScaleFiles []scaleFilesPoint
	ScaleBytes []scaleBytesPoint
	Rollouts   []rolloutPoint
	Builds     []buildsResult
	Concurrent *concurrentResult
	GoBench    goBench
}

// target is one outcome of docs/design.md ("Outcomes"), checked against
// this run.
type target struct {
	Name, Required, Measured, Margin string
	Met                              bool
	// App is the app that builds the target is about, "" for the main app.
	App string
}

// targets checks the outcomes docs/design.md asks of the cold and warm
// patch path and of a release, in the same run as the anchors. The anchor
// of the cold patch is the strongest Dockerfile set-up: COPY --link with
// --import-cache from a registry cache (mode=max).
func (r *report) targets() []target {
	m := r.Main
	pfc, pfw := summarize(m.Runs[pfCold]), summarize(m.Runs[pfWarm])
	var out []target
	speed := func(name string, anchor summarized, patch summarized, factor float64) target {
		ratio := anchor.Wall.Seconds() / patch.Wall.Seconds()
		t := target{Name: name, Required: fmt.Sprintf("≥ %.0f× faster", factor),
			Measured: fmt.Sprintf("%.1f× (%.1f s vs %.1f s)", ratio, patch.Wall.Seconds(), anchor.Wall.Seconds()), Met: ratio >= factor}
		limit := anchor.Wall.Seconds() / factor
		if t.Met {
			t.Margin = fmt.Sprintf("met with %.0f%% to spare (limit %.1f s)", (ratio/factor-1)*100, limit)
		} else {
			t.Margin = fmt.Sprintf("missed: %.1f s over the %.1f s limit (%.0f%% slower than needed)",
				patch.Wall.Seconds()-limit, limit, (patch.Wall.Seconds()/limit-1)*100)
		}
		return t
	}
	// share: the build takes at most share of the anchor's time.
	share := func(name string, anchor, build time.Duration, most float64) target {
		ratio := build.Seconds() / anchor.Seconds()
		limit := anchor.Seconds() * most
		t := target{Name: name, Required: fmt.Sprintf("≤ %.2f× the anchor", most),
			Measured: fmt.Sprintf("%.2f× (%.1f s vs %.1f s)", ratio, build.Seconds(), anchor.Seconds()), Met: ratio <= most}
		if t.Met {
			t.Margin = fmt.Sprintf("met with %.1f s to spare (limit %.1f s)", limit-build.Seconds(), limit)
		} else {
			t.Margin = fmt.Sprintf("missed: %.1f s over the %.1f s limit", build.Seconds()-limit, limit)
		}
		return t
	}
	out = append(out,
		speed("cold patch vs Dockerfile, cold, no cache", summarize(m.Runs[dfCold]), pfc, 10),
		share("cold patch vs the anchor: Dockerfile COPY --link, cold, --import-cache registry", summarize(m.Runs[dflCache]).Wall, pfc.Wall, 0.6),
		share("warm patch vs Dockerfile COPY --link, warm", summarize(m.Runs[dflWarm]).Wall, pfw.Wall, 0.5))
	// The main app's releases are one build each on the warm builder, in a
	// fixed order (the Patchfile's first): the table shows them, and the
	// release target is the scale series', whose releases run on cold
	// builders in alternating rounds at every point, 3,000 files included.
	// Along the scale series, against the anchor on the same app: a
	// release at every point; the cold patch of a small app (1,000 files)
	// and of the largest (100,000 in a full run); the largest's warm patch.
	for i, p := range r.ScaleFiles {
		if len(p.Anchor) == 0 {
			continue
		}
		c, a, am := summarize(p.Cold), summarize(p.Anchor), medianRun(p.Anchor)
		at := fmt.Sprintf("%d files: ", p.Files)
		if p.Files == 1000 {
			out = append(out, share(at+"cold patch vs the anchor, cold", a.Wall, c.Wall, 1.0))
		}
		if i == len(r.ScaleFiles)-1 {
			out = append(out,
				share(at+"cold patch vs the anchor, cold", a.Wall, c.Wall, 0.5),
				share(at+"the Patchfile's context upload vs the anchor's", am.Phases.ContextUpload, c.ContextLoad, 1.0))
			if aw := summarize(p.AnchorWarm); aw.N > 0 {
				out = append(out, share(at+"warm patch vs the anchor, warm", aw.Wall, summarize(p.Warm).Wall, 0.5))
			}
		}
		if rel, arel := summarize(p.ColdReleases), summarize(p.AnchorColdReleases); rel.N > 0 && arel.N > 0 {
			out = append(out, share(at+"release vs the anchor's release, cold", arel.Wall, rel.Wall, 1.0))
		}
	}

	if pa, da := summarize(m.Runs[pfColdAttest]), summarize(m.Runs[dflCacheAttest]); pa.N > 0 && da.N > 0 {
		out = append(out, share("cold patch vs the anchor, both with --sbom and --provenance=mode=max", da.Wall, pa.Wall, 0.6))
		var worst int64
		for _, x := range m.Runs[pfColdAttest] {
			worst = max(worst, x.PulledLayers())
		}
		out = append(out, noBytes("cold patch with --sbom: layer bytes pulled", worst,
			fmt.Sprintf("%s (worst run); the anchor: %s (median); both pull the generator's image (%s)", human(worst),
				human(medianRun(m.Runs[dflCacheAttest]).PulledLayers()), human(medianRun(m.Runs[pfColdAttest]).PulledScanner))))
	}

	out = append(out, r.rolloutTargets(share)...)
	out = append(out, r.buildsTargets(share)...)
	out = append(out, r.concurrentTargets(share)...)

	// Every cold builder pulls the frontend image first.
	const imageLimit = 67 * (1 << 20) / 10 // 6.7 MiB
	img := target{Name: "frontend image, compressed", Required: "≤ 6.7 MiB", Measured: human(r.Frontend.ImageBytes), Met: r.Frontend.ImageBytes <= imageLimit}
	if img.Met {
		img.Margin = fmt.Sprintf("met with %s to spare", human(imageLimit-r.Frontend.ImageBytes))
	} else {
		img.Margin = fmt.Sprintf("missed by %s", human(r.Frontend.ImageBytes-imageLimit))
	}
	out = append(out, img)

	var maxBaseDeps, maxApp int64
	for _, x := range m.Runs[pfCold] {
		maxBaseDeps, maxApp = max(maxBaseDeps, x.PulledBaseDeps), max(maxApp, x.PulledApp)
	}
	out = append(out, noBytes("cold patch: base and dependency layer bytes pulled", maxBaseDeps,
		fmt.Sprintf("%s (worst run); app layers: %s", human(maxBaseDeps), human(maxApp))))

	worst, worstBudget, allMet := int64(0), int64(0), true
	for i, x := range m.Runs[pfCold] {
		budget := x.ChangedCompressed + 4096
		if x.Pushed > budget {
			allMet = false
		}
		if x.Pushed-budget > worst-worstBudget || i == 0 {
			worst, worstBudget = x.Pushed, budget
		}
	}
	t := target{Name: "cold patch: bytes pushed", Required: "≤ compressed changed files + 4 KiB",
		Measured: fmt.Sprintf("%s vs budget %s (%s + 4 KiB), worst run", human(worst), human(worstBudget), human(worstBudget-4096)), Met: allMet}
	if allMet {
		t.Margin = fmt.Sprintf("met with %s to spare", human(worstBudget-worst))
	} else {
		t.Margin = fmt.Sprintf("missed by %s", human(worst-worstBudget))
	}
	out = append(out, t)

	return out
}

// table is what the run prints: the main comparison, the targets and the
// scale series, as Markdown tables.
func (r *report) table() string {
	var b strings.Builder
	r.writeMain(&b)
	b.WriteString("\n")
	r.writeTargets(&b)
	if len(r.Rollouts) > 0 {
		b.WriteString("\n")
		r.writeRollouts(&b)
	}
	if len(r.ScaleFiles) > 0 {
		b.WriteString("\n")
		r.writeScaleFiles(&b)
	}
	if len(r.ScaleBytes) > 0 {
		b.WriteString("\n")
		r.writeScaleBytes(&b)
	}
	if len(r.Builds) > 0 {
		b.WriteString("\n")
		r.writeBuilds(&b)
	}
	b.WriteString("\n")
	r.writeFrontend(&b)
	return b.String()
}

func (r *report) writeMain(b *strings.Builder) {
	m := r.Main
	fmt.Fprintf(b, "| build | runs | wall s, median (min–max) | pulled: base+deps layers | app layers | configs | frontend image | pushed (blobs) | top layer | Patchfile faster by |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|\n")
	// path is the path a Patchfile row's builds must all take ("" for
	// the Dockerfile rows); the title says so when one did not.
	row := func(title string, s summarized, ref *summarized, path string) {
		vs := "—"
		if ref != nil && ref.Wall > 0 {
			vs = fmt.Sprintf("%.1f×", s.Wall.Seconds()/ref.Wall.Seconds())
		}
		if path != "" && !s.allPath(path) {
			title += fmt.Sprintf(" **(paths taken: %s)**", strings.Join(s.Paths, ", "))
		}
		fmt.Fprintf(b, "| %s | %d | %.1f (%.1f–%.1f) | %s | %s | %s | %s | %s (%d) | %s | %s |\n", title, s.N,
			s.Wall.Seconds(), s.MinWall.Seconds(), s.MaxWall.Seconds(), human(s.PulledBaseDeps), human(s.PulledApp),
			human(s.PulledConfigs), human(s.PulledFrontend), human(s.Pushed), s.PushedBlobs, human(s.TopLayer), vs)
	}
	for _, rel := range []struct{ key, title string }{
		{pfRelease, "release: Patchfile, full build (warm builder)"},
		{dfRelease, "release: Dockerfile + --export-cache mode=max"},
		{dflRel, "release: Dockerfile COPY --link + --export-cache mode=max"},
		{pfReleaseAttest, "release: Patchfile, full build, --sbom --provenance=mode=max (warm builder)"},
	} {
		if m.Releases[rel.key].Wall > 0 {
			row(rel.title, summarize([]measurement{m.Releases[rel.key]}), nil, "")
		}
	}
	pfc, pfw, pfa := summarize(m.Runs[pfCold]), summarize(m.Runs[pfWarm]), summarize(m.Runs[pfColdAttest])
	for _, sc := range scenarios {
		s := summarize(m.Runs[sc.key])
		ref := &pfc
		switch {
		case sc.attest:
			ref = &pfa
		case !sc.cold:
			ref = &pfw
		}
		if sc.file == "Patchfile" {
			ref = nil
		}
		row(sc.title, s, ref, sc.path)
	}
}

func (r *report) writeTargets(b *strings.Builder) {
	fmt.Fprintf(b, "| target (docs/design.md) | required | measured | met? | margin |\n|---|---|---|---|---|\n")
	for _, t := range r.targets() {
		met := "**missed**"
		if t.Met {
			met = "met"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", t.Name, t.Required, t.Measured, met, t.Margin)
	}
}

func (r *report) writeScaleFiles(b *strings.Builder) {
	fmt.Fprintf(b, "| app files | release s, cold: Patchfile / anchor | release config (file list) | cold patch s | anchor cold s | cold patch / anchor | context upload s: Patchfile / anchor | frontend read+hash s | anchor's COPY s | warm patch s: Patchfile / anchor | configs pulled (cold) | pushed (cold): patch / anchor | top layer |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.ScaleFiles {
		c, w, a, aw := summarize(p.Cold), summarize(p.Warm), summarize(p.Anchor), summarize(p.AnchorWarm)
		rel, arel := summarize(p.ColdReleases), summarize(p.AnchorColdReleases)
		am := medianRun(p.Anchor) // its phases add up to the median
		title := fmt.Sprintf("%d", p.Files)
		if !c.allPatch() || !w.allPatch() {
			title += fmt.Sprintf(" **(paths: %s / %s)**", strings.Join(c.Paths, ","), strings.Join(w.Paths, ","))
		}
		fmt.Fprintf(b, "| %s | %.1f / %s | %s | %.1f | %s | %s | %.2f / %s | %.2f | %s | %.1f / %s | %s | %s / %s | %s |\n", title,
			rel.Wall.Seconds(), secsOrDash(arel.Wall), human(p.ReleaseConfig),
			c.Wall.Seconds(), secsOrDash(a.Wall), ratioOrDash(c.Wall, a.Wall),
			c.ContextLoad.Seconds(), secsOrDash(am.Phases.ContextUpload), c.FrontendRead.Seconds(), secsOrDash(am.Phases.AppLayer),
			w.Wall.Seconds(), secsOrDash(aw.Wall), human(c.PulledConfigs), human(c.Pushed), humanOrDash(a.Pushed, len(p.Anchor)), human(c.TopLayer))
	}
}

// secsOrDash is d in seconds, or "—" when it was not measured.
func secsOrDash(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}

// ratioOrDash is a / b, or "—" when b was not measured.
func ratioOrDash(a, b time.Duration) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a.Seconds()/b.Seconds())
}

// humanOrDash is human(n), or "—" when there were no runs.
func humanOrDash(n int64, runs int) string {
	if runs == 0 {
		return "—"
	}
	return human(n)
}

func (r *report) writeScaleBytes(b *strings.Builder) {
	fmt.Fprintf(b, "| changed bytes (one file) | cold patch s | warm patch s | pushed (cold) | pushed (warm) | top layer (cold) | budget: gzip(tar) + 4 KiB | within budget (cold) |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.ScaleBytes {
		c, w := summarize(p.Cold), summarize(p.Warm)
		title := human(int64(p.Bytes))
		if !c.allPatch() || !w.allPatch() {
			title += fmt.Sprintf(" **(paths: %s / %s)**", strings.Join(c.Paths, ","), strings.Join(w.Paths, ","))
		}
		budget := c.ChangedCompressed + 4096
		ok := "yes"
		if c.Pushed > budget {
			ok = fmt.Sprintf("**no**, %s over", human(c.Pushed-budget))
		}
		fmt.Fprintf(b, "| %s | %.1f | %.1f | %s | %s | %s | %s | %s |\n", title, c.Wall.Seconds(), w.Wall.Seconds(),
			human(c.Pushed), human(w.Pushed), human(c.TopLayer), human(budget), ok)
	}
}

func (r *report) writeFrontend(b *strings.Builder) {
	fmt.Fprintf(b, "| frontend | value |\n|---|---|\n")
	fmt.Fprintf(b, "| image, compressed (registry) | %s |\n", human(r.Frontend.ImageBytes))
	fmt.Fprintf(b, "| binary (-trimpath -ldflags='-s -w', dependencies without inlining) | %s |\n", human(r.Frontend.BinaryBytes))
	if r.GoBench.Err != "" {
		fmt.Fprintf(b, "| go test -bench | could not run: %s |\n", strings.ReplaceAll(r.GoBench.Err, "\n", " "))
	}
	for _, g := range r.GoBench.Results {
		fmt.Fprintf(b, "| %s | %.2f ms/op, %s/op, %d allocs/op |\n", g.Name, g.NsPerOp/1e6, human(g.BytesPerOp), g.AllocsPerOp)
	}
}

// buildsTargets are the outcomes asked of the apps that build: a cold
// deploy with no cache flag no slower than the multi-stage Dockerfile with
// its registry cache, faster than it without one, pushing the changed
// outputs and little else, and reading none of the release's runtime
// layers.
func (r *report) buildsTargets(share func(name string, anchor, build time.Duration, most float64) target) []target {
	var out []target
	for _, a := range r.Builds {
		pf, anchor, nocache := summarize(a.Runs[buildsPF]), summarize(a.Runs[buildsAnchor]), summarize(a.Runs[buildsNoCache])
		if pf.N == 0 {
			continue
		}
		first := len(out)
		if a.Compiles {
			// The edit changes the binary: the deploy is a new release,
			// fast because it compiles only what changed (CARRY).
			out = append(out,
				share(a.Name+": cold deploy, a new release compiled from the carried cache, vs the multi-stage Dockerfile, COPY --link, cold, --import-cache", anchor.Wall, pf.Wall, 0.5),
				share(a.Name+": cold deploy vs the same Dockerfile with no cache", nocache.Wall, pf.Wall, 1.0))
		} else {
			out = append(out,
				share(a.Name+": cold deploy vs the multi-stage Dockerfile, COPY --link, cold, --import-cache", anchor.Wall, pf.Wall, 1.0),
				share(a.Name+": cold deploy vs the same Dockerfile with no cache", nocache.Wall, pf.Wall, 1.0))
		}
		worst, worstBudget, allMet, runtime := int64(0), int64(0), true, int64(0)
		for i, x := range a.Runs[buildsPF] {
			budget := x.ChangedCompressed + 4096
			if x.Pushed > budget {
				allMet = false
			}
			if x.Pushed-budget > worst-worstBudget || i == 0 {
				worst, worstBudget = x.Pushed, budget
			}
			runtime = max(runtime, x.PulledRuntime)
		}
		if !a.Compiles {
			t := target{Name: a.Name + ": cold deploy, bytes pushed", Required: "≤ compressed changed outputs + 4 KiB",
				Measured: fmt.Sprintf("%s vs budget %s, worst run", human(worst), human(worstBudget)), Met: allMet}
			if allMet {
				t.Margin = fmt.Sprintf("met with %s to spare", human(worstBudget-worst))
			} else {
				t.Margin = fmt.Sprintf("missed by %s", human(worst-worstBudget))
			}
			out = append(out, t)
		}
		out = append(out, noBytes(a.Name+": cold deploy, runtime layers of the release pulled", runtime, human(runtime)+" (worst run)"))
		for i := first; i < len(out); i++ {
			out[i].App = a.Name
		}
	}
	return out
}

// buildsMissed says why a target of an app that builds was missed: where
// the cold deploy's time went beside the anchor's, and what it pushed.
func (r *report) buildsMissed(t target) string {
	for _, a := range r.Builds {
		if a.Name != t.App {
			continue
		}
		pf, anchor := medianRun(a.Runs[buildsPF]), medianRun(a.Runs[buildsAnchor])
		if strings.Contains(t.Name, "pushed") {
			return fmt.Sprintf("The median deploy pushed %s in %d blobs: top layer %s, config %s, manifest %s; the changed outputs alone compress to %s.\n",
				human(pf.Pushed), pf.PushedBlobs, human(pf.TopLayer), human(pf.ConfigBytes), human(pf.ManifestBytes), human(pf.ChangedCompressed))
		}
		return fmt.Sprintf("The anchor (--import-cache) took %s: %s. The deploy took %s: %s.\n",
			secs(anchor.Wall), anchor.Phases.describe(), secs(pf.Wall), pf.Phases.describe())
	}
	return "\n"
}

// writeBuilds is the table of the apps that build.
func (r *report) writeBuilds(b *strings.Builder) {
	fmt.Fprintf(b, "| app that builds | build | runs | wall s, median (min–max) | pulled: layers | of them, release runtime layers | configs | frontend image | pushed (blobs) | top layer | vs the Patchfile deploy |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, a := range r.Builds {
		pf := summarize(a.Runs[buildsPF])
		row := func(title string, s summarized, ratio bool) {
			vs := "—"
			if ratio && pf.Wall > 0 {
				vs = fmt.Sprintf("%.1f×", s.Wall.Seconds()/pf.Wall.Seconds())
			}
			fmt.Fprintf(b, "| %s | %s | %d | %.1f (%.1f–%.1f) | %s | %s | %s | %s | %s (%d) | %s | %s |\n", a.Name, title, s.N,
				s.Wall.Seconds(), s.MinWall.Seconds(), s.MaxWall.Seconds(), human(s.PulledLayers()), human(s.PulledRuntime),
				human(s.PulledConfigs), human(s.PulledFrontend), human(s.Pushed), s.PushedBlobs, human(s.TopLayer), vs)
		}
		row("release: Patchfile (+ inline and build cache), warm", summarize([]measurement{a.Releases["pf"]}), false)
		row("release: Dockerfile COPY --link (+ --export-cache mode=max), warm", summarize([]measurement{a.Releases["dfl"]}), false)
		row("**deploy: Patchfile, cold, no cache flag**", pf, false)
		row("deploy: Dockerfile COPY --link, cold, --import-cache", summarize(a.Runs[buildsAnchor]), true)
		row("deploy: Dockerfile COPY --link, cold, no cache", summarize(a.Runs[buildsNoCache]), true)
	}
}

// concurrentTargets are the shared builder's outcomes: every one of the 16
// deploys at once right, each frontend within 64 MiB, and all of them
// done no later than the 16 Dockerfile deploys at once.
func (r *report) concurrentTargets(share func(name string, anchor, build time.Duration, most float64) target) []target {
	c := r.Concurrent
	if c == nil {
		return nil
	}
	by := map[string]concurrentScenario{}
	for _, sc := range c.Scenarios {
		by[sc.Key] = sc
	}
	var out []target
	for _, key := range []string{ccAppsAtOnce, ccOneAppAtOnce} {
		sc, ok := by[key]
		if !ok {
			continue
		}
		ok = sc.Checked == sc.Builds && len(sc.Failures) == 0
		t := target{Name: sc.Title + ": every deploy a right patch", Required: fmt.Sprintf("%d of %d", sc.Builds, sc.Builds),
			Measured: fmt.Sprintf("%d of %d", sc.Checked, sc.Builds), Met: ok, Margin: "met"}
		if !ok {
			t.Margin = fmt.Sprintf("missed: %d failures", sc.Builds-sc.Checked)
		}
		out = append(out, t)
		const limit = 64 << 10 // KiB
		peak := maxOf(sc.FrontendPeakKiB)
		t = target{Name: sc.Title + ": frontend peak memory", Required: "≤ 64 MiB each",
			Measured: fmt.Sprintf("%s (max of %d)", humanKiB(peak), len(sc.FrontendPeakKiB)), Met: peak > 0 && peak <= limit && len(sc.FrontendPeakKiB) == sc.Builds}
		if t.Met {
			t.Margin = fmt.Sprintf("met with %s to spare", humanKiB(limit-peak))
		} else {
			t.Margin = fmt.Sprintf("missed (%d of %d frontends logged)", len(sc.FrontendPeakKiB), sc.Builds)
		}
		out = append(out, t)
	}
	if pf, df := by[ccAppsAtOnce], by[ccDockerAtOnce]; pf.Wall > 0 && df.Wall > 0 {
		out = append(out, share(fmt.Sprintf("%d deploys at once vs %d Dockerfile deploys at once", concurrentApps, concurrentApps), df.Wall, pf.Wall, 1.0))
	}
	return out
}

// noBytes is a target of 0 B (of layers pulled), worst the most a run
// took and measured how the report words it.
func noBytes(name string, worst int64, measured string) target {
	t := target{Name: name, Required: "0 B", Measured: measured, Met: worst == 0, Margin: "met"}
	if !t.Met {
		t.Margin = "missed by " + human(worst)
	}
	return t
}
