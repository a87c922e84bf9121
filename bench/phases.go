package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
)

// phases splits a build's wall time by what its progress shows, so that a
// missed target can say where the time went. The phases are mostly
// sequential; what runs in parallel (a context upload during a cache pull,
// COPY --link's copy during the RUN) counts in both, and Other is then
// smaller.
type phases struct {
	// FrontendStart: from the build's first step to the frontend's first
	// request (loading its build definition): resolving, pulling and
	// unpacking the frontend image and starting its container, for a
	// Patchfile build on a cold builder. BuildKit's built-in Dockerfile
	// frontend starts at once, so for the anchors it is about zero: it is
	// the fixed cost a gateway frontend pays on every cold builder.
	FrontendStart time.Duration
	// ContextUpload: the app files reaching the daemon (the Patchfile's
	// "load application files", the Dockerfile's "load build context").
	ContextUpload time.Duration
	// FrontendRead: the Patchfile frontend reading and hashing the app.
	FrontendRead time.Duration
	// DepsRun: the dependency stage's RUN, when it ran.
	DepsRun time.Duration
	// DepsFromCache: steps answered from the registry cache: pulling and
	// unpacking their layers (zero when the result stays lazy).
	DepsFromCache time.Duration
	// AppLayer: making the app layer: COPY . /app, the Patchfile's app
	// copy and merge, or its patch (context copy, diff).
	AppLayer time.Duration
	// Export: "exporting to image" and "exporting cache": layer
	// compression and the push to the registry.
	Export time.Duration
	// Other is the rest of the wall time: buildctl's session, the base
	// image, solver gaps.
	Other time.Duration
}

// phasesOf computes the phases of a run from its vertexes.
func phasesOf(run *buildRun, frontendRead time.Duration) phases {
	vs := run.vertexes
	var p phases
	p.FrontendStart = frontendStart(vs)
	p.ContextUpload = span(vs, func(v *client.Vertex) bool {
		return strings.Contains(v.Name, "load application files") || v.Name == "[internal] load build context"
	})
	p.FrontendRead = frontendRead
	p.DepsRun = span(vs, func(v *client.Vertex) bool {
		return !v.Cached && strings.Contains(v.Name, "RUN sh npm-ci.sh")
	})
	p.DepsFromCache = span(vs, func(v *client.Vertex) bool {
		return v.Cached && v.Started != nil && v.Completed != nil && v.Completed.After(*v.Started) ||
			strings.HasPrefix(v.Name, "importing cache manifest")
	})
	p.AppLayer = span(vs, func(v *client.Vertex) bool {
		n := v.Name
		return !v.Cached && (strings.Contains(n, ". /app") || strings.HasPrefix(n, "[app]") ||
			strings.HasPrefix(n, "[internal] patch") || strings.HasPrefix(n, "diff (") ||
			strings.HasPrefix(n, "[patch]") && !strings.HasPrefix(n, "[patch] load metadata"))
	})
	p.Export = span(vs, func(v *client.Vertex) bool {
		return v.Name == "exporting to image" || strings.HasPrefix(v.Name, "exporting cache")
	})
	p.Other = max(0, run.wall-p.FrontendStart-p.ContextUpload-p.FrontendRead-p.DepsRun-p.DepsFromCache-p.AppLayer-p.Export)
	return p
}

// frontendStart is the time from the first vertex's start to the start of
// the frontend's first request, "load build definition from <file>";
// zero when the run has no such vertex.
func frontendStart(vs []*client.Vertex) time.Duration {
	var first, def *time.Time
	for _, v := range vs {
		if v.Started == nil {
			continue
		}
		if first == nil || v.Started.Before(*first) {
			first = v.Started
		}
		if strings.HasPrefix(v.Name, "[internal] load build definition from ") && (def == nil || v.Started.Before(*def)) {
			def = v.Started
		}
	}
	if first == nil || def == nil {
		return 0
	}
	return def.Sub(*first)
}

// span is the time during which at least one matching vertex ran: the
// length of the union of their intervals. Vertexes that run in parallel
// with others (COPY --link's copy during the RUN) count for their own time
// only, and gaps between matching vertexes are not counted.
func span(vs []*client.Vertex, match func(*client.Vertex) bool) time.Duration {
	type interval struct{ from, to time.Time }
	var ivs []interval
	for _, v := range vs {
		if v.Started == nil || v.Completed == nil || !match(v) || v.Completed.Before(*v.Started) {
			continue
		}
		ivs = append(ivs, interval{*v.Started, *v.Completed})
	}
	slices.SortFunc(ivs, func(a, b interval) int { return a.from.Compare(b.from) })
	var total time.Duration
	var cur interval
	for i, iv := range ivs {
		switch {
		case i == 0:
			cur = iv
		case iv.from.After(cur.to):
			total += cur.to.Sub(cur.from)
			cur = iv
		case iv.to.After(cur.to):
			cur.to = iv.to
		}
	}
	if len(ivs) > 0 {
		total += cur.to.Sub(cur.from)
	}
	return total
}

// namedPhase is one phase with its name, for tables and sentences.
type namedPhase struct {
	Name string
	D    time.Duration
}

// list returns the phases in table order.
func (p phases) list() []namedPhase {
	return []namedPhase{
		{"frontend start", p.FrontendStart}, {"context upload", p.ContextUpload}, {"frontend read+hash", p.FrontendRead},
		{"dependency RUN", p.DepsRun}, {"dependency layers from cache", p.DepsFromCache}, {"app layer", p.AppLayer},
		{"export + push", p.Export}, {"other", p.Other},
	}
}

// describe lists the phases over 50 ms, largest first: "context upload
// 2.5 s, frontend read+hash 0.6 s, ...".
func (p phases) describe() string {
	l := slices.Clone(p.list())
	slices.SortStableFunc(l, func(a, b namedPhase) int { return int(b.D - a.D) })
	var parts []string
	for _, x := range l {
		if x.D >= 50*time.Millisecond {
			parts = append(parts, fmt.Sprintf("%s %.1f s", x.Name, x.D.Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}
