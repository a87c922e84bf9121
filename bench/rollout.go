package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/patchfile/patchfile/internal/stack"
	"github.com/pkg/errors"
)

// A rollout is what a deploy costs the user end to end: CI builds and
// pushes the change on a cold builder, then a host that runs the app, and
// already holds the release, pulls the new image and starts it. Both
// cross the network to the registry, which the rollout series shapes
// (stack.ShapedLink) as a CI runner's link to a cloud registry and as an
// office link, beside loopback.

// rolloutPoint is the rollout series under one network profile: the
// Patchfile's cold patch and the anchor (Dockerfile COPY --link, cold,
// --import-cache), round by round in alternating order. Kept is the
// Patchfile's cold patch on a builder that holds the frontend image and
// nothing else: what is left of a deploy once the builder keeps the
// image (the targets are Patch's).
type rolloutPoint struct {
	Profile string  // "loopback" or a stack.LinkProfiles name
	RTTms   float64 // 0 on loopback
	Mbit    float64 // 0 on loopback
	Patch   []rollout
	Kept    []rollout
	Anchor  []rollout
}

// rollout is one deploy: its build (and push), and the host's pull and
// start of what it pushed.
type rollout struct {
	Build measurement
	// Pull is `docker pull` of the new image on the host; Start is
	// `docker run` of it (which reads the edited file and checks it).
	Pull, Start time.Duration
	// PulledBytes is what the registry answered the host's pull: blobs
	// and manifests (the registry's log).
	PulledBytes int64
}

// newImageBytes is what a host needs of the deploy's image beyond the
// release: its top layer, config and manifest.
func (r rollout) newImageBytes() int64 {
	return r.Build.TopLayer + r.Build.ConfigBytes + r.Build.ManifestBytes
}

// Deploy is build + push + pull + start.
func (r rollout) Deploy() time.Duration { return r.Build.Wall + r.Pull + r.Start }

// rolloutProfiles are the network profiles of the rollout series, in
// order.
func rolloutProfiles(names []string) ([]*stack.LinkProfile, error) {
	var out []*stack.LinkProfile
	for _, n := range names {
		if n == "loopback" {
			out = append(out, nil)
			continue
		}
		p, ok := stack.LinkProfiles[n]
		if !ok {
			return nil, errors.Errorf("-rollout: no network profile %q (loopback, ci or slow)", n)
		}
		out = append(out, &p)
	}
	return out, nil
}

// runRollouts deploys the main app's one-file change under each profile:
// a Docker Engine (overlay2, the default) plays the host; it pulls the
// releases first, as a host running the app holds them, through the same
// link. Every start checks the edited file has its new content, so a
// deploy that shipped the wrong thing fails the run.
func (e *env) runRollouts(ctx context.Context) ([]rolloutPoint, error) {
	profiles, err := rolloutProfiles(e.cfg.Rollout)
	if err != nil || len(profiles) == 0 {
		return nil, err
	}
	logf("rollout: starting the host (Docker Engine)")
	host, err := e.stack.StartEngine(ctx, "host", false)
	if err != nil {
		return nil, errors.Wrap(err, "starting the rollout's host")
	}
	defer host.Stop()
	// The series picks its own links; the run's (-link) comes back after.
	runLink := e.link
	defer e.useLink(runLink)
	e.useLink(nil)
	app := e.mainApp
	var out []rolloutPoint
	for i, profile := range profiles {
		point := rolloutPoint{Profile: "loopback"}
		var link *stack.ShapedLink
		if profile != nil {
			if link, err = e.stack.StartShapedLink(*profile); err != nil {
				return nil, err
			}
			point.Profile, point.RTTms, point.Mbit = profile.Name, float64(profile.RTT)/float64(time.Millisecond), profile.Mbit
		}
		e.useLink(link)
		err := e.rolloutRounds(ctx, host, app, i, &point)
		e.useLink(nil)
		if link != nil {
			link.Close()
		}
		if err != nil {
			return nil, err
		}
		out = append(out, point)
	}
	return out, nil
}

// rolloutRounds runs the rounds of one profile.
func (e *env) rolloutRounds(ctx context.Context, host *stack.Engine, app *mainApp, profileIndex int, point *rolloutPoint) error {
	release, anchorRelease := e.ref("bench/app", "pf-release"), e.ref("bench/app", "dfl-release")
	for _, ref := range []string{release, anchorRelease} {
		if _, err := host.Run(ctx, "pull", "-q", ref); err != nil {
			return err
		}
	}
	args := map[string]string{"BASE": e.base, "RELEASE": release}
	for n := 1; n <= e.cfg.Runs; n++ {
		patch := func() error {
			r, err := e.rolloutOnce(ctx, host, app, buildSpec{file: "Patchfile", args: args}, point.Profile, "pf", profileIndex, n)
			point.Patch = append(point.Patch, r)
			return err
		}
		kept := func() error {
			r, err := e.rolloutOnce(ctx, host, app, buildSpec{file: "Patchfile", args: args, frontendKept: true}, point.Profile, "pf-kept", profileIndex, n)
			point.Kept = append(point.Kept, r)
			return err
		}
		anchor := func() error {
			r, err := e.rolloutOnce(ctx, host, app, buildSpec{file: "Dockerfile.link", args: args, importCache: e.ref("bench/cache", "dfl")},
				point.Profile, "dfl", profileIndex, n)
			point.Anchor = append(point.Anchor, r)
			return err
		}
		if err := inTurn(n, patch, kept, anchor); err != nil {
			return err
		}
	}
	return nil
}

// rolloutKinds are the deploys of a round: the cold patch, the patch on
// a builder that holds the frontend image, the anchor.
var rolloutKinds = []string{"pf", "pf-kept", "dfl"}

// rolloutOnce edits the app, deploys it with b on a cold builder, then
// pulls and starts it on host.
func (e *env) rolloutOnce(ctx context.Context, host *stack.Engine, app *mainApp, b buildSpec, profile, kind string, profileIndex, n int) (rollout, error) {
	// Each deploy its own edit, so that no two push the same patch.
	changed, err := editSource(app.dir, editedFile, 10000+profileIndex*100+n*len(rolloutKinds)+slices.Index(rolloutKinds, kind))
	if err != nil {
		return rollout{}, err
	}
	want, err := os.ReadFile(filepath.Join(app.dir, filepath.FromSlash(changed)))
	if err != nil {
		return rollout{}, err
	}
	name := fmt.Sprintf("rollout-%s-%s-%d", profile, kind, n)
	b.name, b.appDir, b.defsDir, b.output = name, app.dir, app.defs, e.ref("bench/app", name)
	logf("%s: build and push, cold builder", name)
	var r rollout
	if r.Build, err = e.measureCold(ctx, b); err != nil {
		return r, err
	}
	logf("  %s", r.Build.summary())
	if b.file == "Patchfile" && r.Build.Path != "patch" {
		return r, errors.Errorf("%s took the %s path, not a patch", name, r.Build.Path)
	}
	image := b.output + "@" + r.Build.Digest
	logAt := e.stack.LogSize()
	start := time.Now()
	if _, err := host.Run(ctx, "pull", "-q", image); err != nil {
		return r, err
	}
	r.Pull = time.Since(start)
	start = time.Now()
	got, err := host.Run(ctx, "run", "--rm", "--network", "none", image, "cat", "/app/"+changed)
	if err != nil {
		return r, err
	}
	r.Start = time.Since(start)
	if got != string(want) {
		return r, errors.Errorf("%s: the host's container reads /app/%s as %d bytes that are not the edit's %d", name, changed, len(got), len(want))
	}
	if r.PulledBytes, err = e.stack.RegistryBytesServed(logAt); err != nil {
		return r, err
	}
	logf("  host: pull %.2f s (%s), start %.2f s", r.Pull.Seconds(), human(r.PulledBytes), r.Start.Seconds())
	return r, nil
}

// rolloutTitle names a profile in the report.
func (p rolloutPoint) title() string {
	if p.Profile == "loopback" {
		return "loopback"
	}
	return fmt.Sprintf("%s: %g ms RTT, %g Mbit/s", p.Profile, p.RTTms, p.Mbit)
}

// parseRollout reads the -rollout flag.
func parseRollout(v string) []string {
	if v == "" || v == "none" {
		return nil
	}
	return strings.Split(v, ",")
}

// rolloutSummary is the medians of one side of a profile.
type rolloutSummary struct {
	N                              int
	Build, Pull, Start, Deploy     time.Duration
	Pushed, PulledByHost, Frontend int64
	LayerConfigManifest, MaxPulled int64
}

func summarizeRollouts(rs []rollout) rolloutSummary {
	s := rolloutSummary{N: len(rs)}
	if len(rs) == 0 {
		return s
	}
	pick := func(f func(rollout) int64) int64 { return medianOf(rs, f) }
	s.Build = time.Duration(pick(func(r rollout) int64 { return int64(r.Build.Wall) }))
	s.Pull = time.Duration(pick(func(r rollout) int64 { return int64(r.Pull) }))
	s.Start = time.Duration(pick(func(r rollout) int64 { return int64(r.Start) }))
	s.Deploy = time.Duration(pick(func(r rollout) int64 { return int64(r.Deploy()) }))
	s.Pushed = pick(func(r rollout) int64 { return r.Build.Pushed })
	s.PulledByHost = pick(func(r rollout) int64 { return r.PulledBytes })
	s.Frontend = pick(func(r rollout) int64 { return r.Build.PulledFrontend })
	s.LayerConfigManifest = pick(rollout.newImageBytes)
	// The worst run's excess over its own image's blobs, negative when
	// every run pulled less (the margin to spare).
	s.MaxPulled = rs[0].PulledBytes - rs[0].newImageBytes()
	for _, r := range rs[1:] {
		s.MaxPulled = max(s.MaxPulled, r.PulledBytes-r.newImageBytes())
	}
	return s
}

// writeRollouts is the rollout series' table.
func (r *report) writeRollouts(b *strings.Builder) {
	fmt.Fprintf(b, "| network | deploy | rounds | build+push s | host pull s | host start s | build+push+pull+start s | pushed | pulled by the host | frontend image pulled by the builder | Patchfile / anchor, build+push | Patchfile / anchor, whole deploy |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Rollouts {
		pf, kept, an := summarizeRollouts(p.Patch), summarizeRollouts(p.Kept), summarizeRollouts(p.Anchor)
		for _, side := range []struct {
			title string
			s     rolloutSummary
			// ratio: the row is a Patchfile deploy, compared with the
			// anchor in its ratio columns.
			ratio bool
		}{
			{"Patchfile cold patch", pf, true},
			{"Patchfile cold patch, the frontend image already on the builder", kept, true},
			{"anchor: Dockerfile COPY --link, cold, --import-cache", an, false},
		} {
			if side.s.N == 0 {
				continue
			}
			ratios := "— | —"
			if side.ratio {
				ratios = fmt.Sprintf("%s | %s", ratioOrDash(side.s.Build, an.Build), ratioOrDash(side.s.Deploy, an.Deploy))
			}
			fmt.Fprintf(b, "| %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s |\n", p.title(), side.title, side.s.N,
				side.s.Build.Seconds(), side.s.Pull.Seconds(), side.s.Start.Seconds(), side.s.Deploy.Seconds(),
				human(side.s.Pushed), human(side.s.PulledByHost), human(side.s.Frontend), ratios)
		}
	}
}

// rolloutTargets are the outcomes asked of a deploy over a network: under
// the CI profile, build+push ≤ 0.6× the anchor's and the whole deploy ≤
// 0.5×; under the slow profile the whole deploy ≤ 0.3×; under every
// profile the host pulls no more than the patch layer, its config and
// its manifest.
func (r *report) rolloutTargets(share func(name string, anchor, build time.Duration, most float64) target) []target {
	var out []target
	for _, p := range r.Rollouts {
		pf, an := summarizeRollouts(p.Patch), summarizeRollouts(p.Anchor)
		if pf.N == 0 || an.N == 0 {
			continue
		}
		at := p.title() + ": "
		switch p.Profile {
		case stack.LinkCI.Name:
			out = append(out,
				share(at+"cold deploy, build+push vs the anchor", an.Build, pf.Build, 0.6),
				share(at+"cold deploy, build+push+pull+start on a host holding the release, vs the anchor", an.Deploy, pf.Deploy, 0.5))
		case stack.LinkSlow.Name:
			out = append(out, share(at+"cold deploy, build+push+pull+start on a host holding the release, vs the anchor", an.Deploy, pf.Deploy, 0.3))
		}
		t := target{Name: at + "bytes the host pulls", Required: "≤ patch layer + config + manifest",
			Measured: fmt.Sprintf("%s vs %s (median)", human(pf.PulledByHost), human(pf.LayerConfigManifest)), Met: pf.MaxPulled <= 0}
		if t.Met {
			t.Margin = fmt.Sprintf("met with %s to spare (worst run)", human(-pf.MaxPulled))
		} else {
			t.Margin = fmt.Sprintf("missed by %s (worst run)", human(pf.MaxPulled))
		}
		out = append(out, t)
	}
	return out
}

// rolloutMissed says where a rollout target's time went: the median
// deploys' builds by phase, and the host's pull.
func (r *report) rolloutMissed(name string) string {
	for _, p := range r.Rollouts {
		if !strings.HasPrefix(name, p.title()+": ") {
			continue
		}
		pf, an := medianRollout(p.Patch), medianRollout(p.Anchor)
		out := fmt.Sprintf("The median Patchfile deploy: build and push %s (%s), the host's pull %s (%s), start %s. The anchor's: build and push %s (%s; it pushed %s), pull %s (%s), start %s.",
			secs(pf.Build.Wall), pf.Build.Phases.describe(), secs(pf.Pull), human(pf.PulledBytes), secs(pf.Start),
			secs(an.Build.Wall), an.Build.Phases.describe(), human(an.Build.Pushed), secs(an.Pull), human(an.PulledBytes), secs(an.Start))
		if len(p.Kept) > 0 {
			kept, ks, as := medianRollout(p.Kept), summarizeRollouts(p.Kept), summarizeRollouts(p.Anchor)
			out += fmt.Sprintf(" On a builder that already holds the frontend image, the median deploy: build and push %s (%s), the whole deploy %s: %s and %s the anchor's.",
				secs(kept.Build.Wall), kept.Build.Phases.describe(), secs(kept.Deploy()), ratioOrDash(ks.Build, as.Build), ratioOrDash(ks.Deploy, as.Deploy))
		}
		return out + "\n"
	}
	return "\n"
}

// medianRollout is the rollout whose whole deploy is the median.
func medianRollout(rs []rollout) rollout {
	return medianBy(rs, func(r rollout) int64 { return int64(r.Deploy()) })
}
