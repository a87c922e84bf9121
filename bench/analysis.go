package main

import (
	"fmt"
	"strings"
	"time"
)

// medianRun is the run whose wall time is the median (the lower middle),
// so that its phases add up to the median shown in the table.
func medianRun(ms []measurement) measurement {
	return medianBy(ms, func(m measurement) int64 { return int64(m.Wall) })
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// writeWhy writes where the time went, why each missed target was missed,
// and what looked wrong.
func (r *report) writeWhy(b *strings.Builder) {
	m := r.Main
	fmt.Fprintf(b, "### Where the time goes (the median run of each build, from its progress)\n\n")
	fmt.Fprintf(b, "| build | wall |")
	for _, x := range (phases{}).list() {
		fmt.Fprintf(b, " %s |", x.Name)
	}
	fmt.Fprintf(b, "\n|---|---|%s\n", strings.Repeat("---|", len((phases{}).list())))
	row := func(title string, x measurement) {
		fmt.Fprintf(b, "| %s | %.1f |", title, x.Wall.Seconds())
		for _, p := range x.Phases.list() {
			fmt.Fprintf(b, " %.1f |", p.D.Seconds())
		}
		b.WriteString("\n")
	}
	row("release: Patchfile", m.Releases[pfRelease])
	row("release: Dockerfile", m.Releases[dfRelease])
	row("release: Dockerfile COPY --link", m.Releases[dflRel])
	for _, sc := range scenarios {
		row(sc.title, medianRun(m.Runs[sc.key]))
	}
	b.WriteString("\nSeconds. *Dependency layers from cache* is pulling and unpacking what the registry cache answered; *app layer* is COPY . /app, or the Patchfile's app copy, or its patch (context copy and diff); *other* is what the progress does not name (buildctl's session, the base image, solver gaps). Phases that overlap count in both.\n\n")

	fmt.Fprintf(b, "### Targets missed, and why\n\n")
	pc, pw := medianRun(m.Runs[pfCold]), medianRun(m.Runs[pfWarm])
	missed := 0
	for _, t := range r.targets() {
		if t.Met {
			continue
		}
		missed++
		fmt.Fprintf(b, "- **%s** (%s): %s. ", t.Name, t.Required, t.Margin)
		switch {
		case t.App != "":
			b.WriteString(r.buildsMissed(t))
		case strings.Contains(t.Name, " files: "):
			b.WriteString(r.scaleMissed(t.Name))
		case strings.Contains(t.Name, "cold deploy, "):
			b.WriteString(r.rolloutMissed(t.Name))
		case strings.HasPrefix(t.Name, "release vs"):
			pr, dr := m.Releases[pfRelease], m.Releases[dflRel]
			fmt.Fprintf(b, "The Patchfile release took %s: %s. The anchor's: %s: %s. Both ran on the warm builder, one after the other, each with its own dependency RUN.\n",
				secs(pr.Wall), pr.Phases.describe(), secs(dr.Wall), dr.Phases.describe())
		case strings.Contains(t.Name, "no cache"), strings.Contains(t.Name, "import-cache"):
			key := dfCold
			switch {
			case strings.Contains(t.Name, "COPY --link") && strings.Contains(t.Name, "import-cache"):
				key = dflCache
			case strings.Contains(t.Name, "import-cache"):
				key = dfCache
			}
			a := medianRun(m.Runs[key])
			fmt.Fprintf(b, "The anchor took %s: %s. The cold patch took %s: %s. ", secs(a.Wall), a.Phases.describe(), secs(pc.Wall), pc.Phases.describe())
			if pc.Phases.ContextUpload > a.Phases.ContextUpload+500*time.Millisecond {
				fmt.Fprintf(b, "The same context reached the anchor's cold builder in %s, against %s for the Patchfile frontend's `load application files`. ",
					secs(a.Phases.ContextUpload), secs(pc.Phases.ContextUpload))
			}
			if key == dfCold {
				fmt.Fprintf(b, "The ratio is bounded by the dependency stage (its RUN took %s here): the cold patch has to fit in a tenth of the anchor's time, %s.\n",
					secs(a.Phases.DepsRun), secs(a.Wall/10))
			} else {
				fmt.Fprintf(b, "With the registry cache the anchor skips the RUN and pulls and unpacks the dependency layers instead (%s).\n", secs(a.Phases.DepsFromCache))
			}
		case strings.Contains(t.Name, "pushed"):
			fmt.Fprintf(b, "The median cold patch pushed %s in %d blobs: top layer %s, config %s, manifest %s; the changed file alone compresses to %s.\n",
				human(pc.Pushed), pc.PushedBlobs, human(pc.TopLayer), human(pc.ConfigBytes), human(pc.ManifestBytes), human(pc.ChangedCompressed))
		case strings.Contains(t.Name, "layer bytes pulled"):
			fmt.Fprintf(b, "A cold patch should read only image configs: see the registry log of the cold patch runs in the run dir.\n")
		case strings.Contains(t.Name, "warm"):
			l := medianRun(m.Runs[dflWarm])
			fmt.Fprintf(b, "Warm patch: %s. COPY --link: %s.\n", pw.Phases.describe(), l.Phases.describe())
		default:
			b.WriteString("\n")
		}
	}
	if missed == 0 {
		b.WriteString("None: every target was met in this run.\n")
	}
	if obs := r.observations(); len(obs) > 0 {
		fmt.Fprintf(b, "\n### Observations\n\n")
		for _, o := range obs {
			fmt.Fprintf(b, "- %s\n", o)
		}
	}
}

// observations are checks of the frontend's behaviour that are not
// targets but would point at a problem: a patch path not taken, a release
// config fetched more than once, more blobs pushed than a patch needs.
func (r *report) observations() []string {
	m := r.Main
	var out []string
	pc, pw := summarize(m.Runs[pfCold]), summarize(m.Runs[pfWarm])
	for _, s := range []struct {
		name string
		s    summarized
	}{{"cold", pc}, {"warm", pw}} {
		if !s.s.allPatch() {
			out = append(out, fmt.Sprintf("**A %s Patchfile build did not take the patch path** (paths: %s).", s.name, strings.Join(s.s.Paths, ", ")))
		}
	}
	if m.ReleaseConfig > 0 {
		out = append(out, fmt.Sprintf("The release's config (with its file list of %d app files) is %s; a cold patch pulled %s of configs (%.1f× that), a warm patch %s.",
			m.AppFiles, human(m.ReleaseConfig), human(pc.PulledConfigs), float64(pc.PulledConfigs)/float64(m.ReleaseConfig), human(pw.PulledConfigs)))
	}
	if pc.PushedBlobs != 3 {
		out = append(out, fmt.Sprintf("A cold patch pushed %d blobs; a patch needs 3 (layer, config, manifest).", pc.PushedBlobs))
	}
	if pc.TopLayer > 2*pc.ChangedCompressed+2048 {
		out = append(out, fmt.Sprintf("The patch layer (%s) is much larger than the changed file compressed (%s).", human(pc.TopLayer), human(pc.ChangedCompressed)))
	}
	if pcm := medianRun(m.Runs[pfCold]); pcm.ConfigBytes > 0 {
		meta := pcm.ConfigBytes + pcm.ManifestBytes
		out = append(out, fmt.Sprintf("A cold patch pushes its layer (%s, for a changed file that compresses to %s), its config (%s) and its manifest (%s): config and manifest take %s of the 4 KiB the push target allows beyond the changed files. Both grow with the base image (a manifest entry per layer, a history entry per instruction; this busybox base has one of each), so a base with many layers would exceed the target by itself.",
			human(pcm.TopLayer), human(pcm.ChangedCompressed), human(pcm.ConfigBytes), human(pcm.ManifestBytes), human(meta)))
	}
	if pw.PulledLayers() > 0 {
		out = append(out, fmt.Sprintf("A warm patch pulled %s of layers; the warm builder has the release.", human(pw.PulledLayers())))
	}
	if pc.PulledFrontend > 0 {
		out = append(out, fmt.Sprintf("Every cold builder pulls the frontend image: %s, %.0f%% of the cold patch's bytes pulled; pulling and starting it took %s of the median cold patch.",
			human(pc.PulledFrontend), 100*float64(pc.PulledFrontend)/float64(pc.PulledFrontend+pc.PulledConfigs+pc.PulledLayers()),
			secs(medianRun(m.Runs[pfCold]).Phases.FrontendStart)))
	}
	if pr, dr := m.Releases[pfRelease], m.Releases[dfRelease]; pr.DepsStart > dr.DepsStart+time.Second {
		out = append(out, fmt.Sprintf("In a full build the dependency RUN starts only after the frontend has received and hashed every app file: %s into the Patchfile release against %s into the Dockerfile's (context upload %s, read+hash %s). With a 100,000-file app that wait grows to tens of seconds (see Scale).",
			secs(pr.DepsStart), secs(dr.DepsStart), secs(pr.Phases.ContextUpload), secs(pr.Phases.FrontendRead)))
	}
	if nr := summarize(m.Runs[pfNewRel]); nr.Wall > 0 {
		if !nr.allPath(pathFullReused) {
			out = append(out, fmt.Sprintf("**A cold Patchfile new release did not take its dependency stage from the release's inline cache** (paths: %s).", strings.Join(nr.Paths, ", ")))
		}
		dc, lc := summarize(m.Runs[dfCache]), summarize(m.Runs[dflCache])
		out = append(out, fmt.Sprintf("A new release of the changed app on a cold builder (PATCH_MAX_SHARE=0, no --cache-from: the frontend imports the previous release's inline cache by itself) took %s, pulled %s of base and dependency layers and pushed %s; the Dockerfile with --import-cache from a registry cache took %s (%.1f×, pulling %s of layers), with COPY --link %s (%.1f×).",
			secs(nr.Wall), human(nr.PulledBaseDeps), human(nr.Pushed), secs(dc.Wall), dc.Wall.Seconds()/nr.Wall.Seconds(), human(dc.PulledLayers()),
			secs(lc.Wall), lc.Wall.Seconds()/nr.Wall.Seconds()))
	}
	if lc := summarize(m.Runs[dflCache]); lc.Wall > 0 {
		out = append(out, fmt.Sprintf("The strongest anchor is COPY --link with the registry cache on a cold builder: %s, %s of layers pulled (its dependency layers stay lazy), %.1f× the cold patch's time, but it pushes the whole app layer again (%s against %s).",
			secs(lc.Wall), human(lc.PulledLayers()), lc.Wall.Seconds()/pc.Wall.Seconds(), human(lc.Pushed), human(pc.Pushed)))
	}
	return out
}

// scaleFilesGrowth says in words how the one-file patch grows with the app.
func (r *report) scaleFilesGrowth() string {
	ps := r.ScaleFiles
	if len(ps) < 2 {
		return ""
	}
	first, last := ps[0], ps[len(ps)-1]
	fc, lc := summarize(first.Cold), summarize(last.Cold)
	lw := summarize(last.Warm)
	k := float64(last.Files) / float64(first.Files)
	var b strings.Builder
	fmt.Fprintf(&b, "From %d to %d files (%.0f×), the cold one-file patch went from %.1f s to %.1f s (%.1f×), the warm one to %.1f s; ",
		first.Files, last.Files, k, fc.Wall.Seconds(), lc.Wall.Seconds(), lc.Wall.Seconds()/fc.Wall.Seconds(), lw.Wall.Seconds())
	fmt.Fprintf(&b, "the frontend's read+hash from %.2f s to %.2f s (%.0f µs per file at %d files), the context upload from %.2f s to %.2f s, the release config from %s to %s. ",
		fc.FrontendRead.Seconds(), lc.FrontendRead.Seconds(), float64(lc.FrontendRead.Microseconds())/float64(last.Files), last.Files,
		fc.ContextLoad.Seconds(), lc.ContextLoad.Seconds(), human(first.ReleaseConfig), human(last.ReleaseConfig))
	fmt.Fprintf(&b, "The file list costs the release config %.0f bytes per file at %d files (a full SHA-256 per file is 43 of them, in base64: see docs/design.md). ",
		float64(last.ReleaseConfig)/float64(last.Files), last.Files)
	share := lc.FrontendRead.Seconds() / lc.Wall.Seconds()
	wshare := lw.FrontendRead.Seconds() / lw.Wall.Seconds()
	verdict := "does not dominate"
	if share >= 0.5 {
		verdict = "**dominates**"
	}
	fmt.Fprintf(&b, "At %d files the frontend hashing every file (in one build step of its own image) takes %.0f%% of the cold patch and %.0f%% of the warm one: it %s. ",
		last.Files, 100*share, 100*wshare, verdict)
	fmt.Fprintf(&b, "Pushes stay flat (%s at %d files, %s at %d): the patch layer does not grow with the app.", human(fc.Pushed), first.Files, human(lc.Pushed), last.Files)
	return b.String()
}

// scaleBytesGrowth says in words how the patch grows with the change.
func (r *report) scaleBytesGrowth() string {
	ps := r.ScaleBytes
	if len(ps) < 2 {
		return ""
	}
	first, last := ps[0], ps[len(ps)-1]
	fc, lc := summarize(first.Cold), summarize(last.Cold)
	overhead := human(fc.Pushed - fc.ChangedCompressed)
	if o := human(lc.Pushed - lc.ChangedCompressed); o != overhead {
		overhead += " to " + o
	}
	return fmt.Sprintf("From %s to %s changed, the cold patch went from %.1f s to %.1f s and its push from %s to %s: the push is the compressed changed bytes plus a constant %s (config, manifest, directory entries), and the time grows only with compressing and pushing the new bytes.",
		human(int64(first.Bytes)), human(int64(last.Bytes)), fc.Wall.Seconds(), lc.Wall.Seconds(), human(fc.Pushed), human(lc.Pushed), overhead)
}

// scaleMissed explains a missed target of the largest scale point by the
// phases of its median runs: the patch's upload and hashing against the
// anchor's upload and copy, or the two releases' walls.
func (r *report) scaleMissed(name string) string {
	var p *scaleFilesPoint
	for i := range r.ScaleFiles {
		if strings.HasPrefix(name, fmt.Sprintf("%d files: ", r.ScaleFiles[i].Files)) {
			p = &r.ScaleFiles[i]
		}
	}
	if p == nil {
		return "\n"
	}
	switch {
	case strings.Contains(name, "release"):
		return fmt.Sprintf("Patchfile's median cold release: %s. The anchor's median cold release: %s. Beyond the anchor's work, a Patchfile release hashes every file in a build step (about the frontend read+hash of the patches) and writes the file list into its config.\n",
			medianRun(p.ColdReleases).Phases.describe(), medianRun(p.AnchorColdReleases).Phases.describe())
	case strings.Contains(name, "warm"):
		w, a := medianRun(p.Warm), medianRun(p.AnchorWarm)
		return fmt.Sprintf("The median warm patch took %s: %s. The median warm anchor took %s: %s.\n",
			secs(w.Wall), w.Phases.describe(), secs(a.Wall), a.Phases.describe())
	}
	c, a := medianRun(p.Cold), medianRun(p.Anchor)
	return fmt.Sprintf("The median cold patch took %s: %s. The median anchor took %s: %s.\n",
		secs(c.Wall), c.Phases.describe(), secs(a.Wall), a.Phases.describe())
}
