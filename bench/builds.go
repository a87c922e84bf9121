package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/pkg/errors"
)

// buildsApp is an example app that builds (examples/<name>), measured
// against the multi-stage Dockerfile its users would write.
type buildsApp struct {
	name  string
	title string
	// edit is the source file each round rewrites, and editText its new
	// content for round n (a change that reaches the build's outputs).
	edit     string
	editText func(orig string, n int) string
	// anchor is the multi-stage Dockerfile, with COPY --link.
	anchor string
	// runtimeOnly says whether the image's base is not the build's: then
	// no layer of the release may be pulled by a deploy.
	runtimeOnly bool
	// images are the build args naming the images the Patchfile and the
	// anchor build on (pinned): node is the Node.js base, golang the Go
	// toolchain, base the busybox base.
	images func(node, golang, base string) map[string]string
	// compiles marks an app whose edit changes a compiled binary, most of
	// its bytes: the deploy is a new release, which must be fast because
	// it compiles incrementally (CARRY), not because it ships little.
	compiles bool
}

// nodeImages and spaImages are the images of the Node.js examples.
func nodeImages(node, _, _ string) map[string]string { return map[string]string{"BASE": node} }

func spaImages(node, _, base string) map[string]string {
	return map[string]string{"NODE": node, "BASE": base}
}

var buildsApps = []buildsApp{
	{
		name: "typescript", title: "TypeScript server (tsc)", edit: "src/greeting.ts",
		editText: func(_ string, n int) string {
			return fmt.Sprintf("export function greeting(name: string): string {\n  return `hello #%d, ${name}`;\n}\n", n)
		},
		anchor: `ARG BASE
FROM ${BASE} AS build
WORKDIR /src
COPY --link package.json package-lock.json ./
RUN --mount=type=cache,target=/cache/npm npm ci --cache /cache/npm --no-audit --no-fund
COPY --link . .
RUN npx tsc -p .

FROM ${BASE}
WORKDIR /app
COPY --link package.json package-lock.json ./
RUN --mount=type=cache,target=/cache/npm npm ci --omit=dev --cache /cache/npm --no-audit --no-fund
COPY --link --from=build /src/dist ./dist
ENV NODE_ENV=production
CMD ["node", "dist/server.js"]
`,
		images: nodeImages,
	},
	{
		name: "spa", title: "bundled front end (esbuild) on busybox httpd", edit: "src/greeting.js", runtimeOnly: true,
		editText: func(_ string, n int) string {
			return fmt.Sprintf("export function greeting(name) {\n  return `hello #%d, ${name}`;\n}\n", n)
		},
		anchor: `ARG NODE
ARG BASE
FROM ${NODE} AS build
WORKDIR /src
COPY --link package.json package-lock.json ./
RUN --mount=type=cache,target=/cache/npm npm ci --cache /cache/npm --no-audit --no-fund
COPY --link . .
RUN npm run build

FROM ${BASE}
COPY --link --from=build /src/dist /srv/www/
CMD ["httpd", "-f", "-p", "8080", "-h", "/srv/www"]
`,
		images: spaImages,
	},
	{
		name: "go-build", title: "Go server (go build, golang.org/x/text) on busybox", edit: "greeting/greeting.go", runtimeOnly: true, compiles: true,
		editText: func(orig string, n int) string {
			// The example's greeting, numbered by the round.
			return strings.Replace(orig, `"hello, "`, fmt.Sprintf(`"hello #%d, "`, n), 1)
		},
		anchor: `ARG GO
ARG BASE
FROM --platform=$BUILDPLATFORM ${GO} AS build
WORKDIR /src
COPY --link go.mod go.sum ./
RUN go mod download
COPY --link . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -v -o /out/server . \
 && cp -r web /out/web

FROM ${BASE}
WORKDIR /app
COPY --link --from=build /out /app/
USER 1000:1000
CMD ["/app/server", "-addr", ":8080", "-web", "/app/web"]
`,
		images: func(_, golang, base string) map[string]string { return map[string]string{"GO": golang, "BASE": base} },
	},
}

// Scenario keys of the apps that build.
const (
	buildsPF      = "pf-cold"     // a Patchfile deploy, cold builder, no cache flag
	buildsAnchor  = "dfl-cache"   // the anchor: multi-stage Dockerfile, COPY --link, --import-cache
	buildsNoCache = "dfl-nocache" // the same Dockerfile, cold, no cache
)

// buildsResult is one app's releases and deploys.
type buildsResult struct {
	Name, Title string
	// Compiles: its deploys are new releases (buildsApp.compiles).
	Compiles bool
	Releases map[string]measurement   // "pf", "dfl": on the warm builder
	Runs     map[string][]measurement // by scenario, one per round
}

// runBuilds releases each app that builds on the warm builder (the
// Patchfile with its inline cache and its build cache, the anchor with a
// registry cache, mode=max), then edits one source file per round and
// deploys it on cold builders: the Patchfile with no cache flag, the
// anchor with --import-cache and without, in turns.
func (e *env) runBuilds(ctx context.Context) ([]buildsResult, error) {
	logf("apps that build: pushing the node and Go images")
	node, err := e.stack.PushDebianImage(ctx, e.warm, e.ref("bench/node", "base"), stack.NodeBase)
	if err != nil {
		return nil, err
	}
	golang, err := e.stack.PushGoImage(ctx, e.warm, e.ref("bench/golang", "base"))
	if err != nil {
		return nil, err
	}
	var out []buildsResult
	for _, a := range buildsApps {
		r, err := e.runBuildsApp(ctx, a, a.images(node, golang, e.base))
		if err != nil {
			return nil, errors.Wrap(err, a.name)
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *env) runBuildsApp(ctx context.Context, a buildsApp, images map[string]string) (buildsResult, error) {
	res := buildsResult{Name: a.name, Title: a.title, Compiles: a.compiles, Releases: map[string]measurement{}, Runs: map[string][]measurement{}}
	dir := filepath.Join(e.runDir, "builds", a.name)
	appDir, defs := filepath.Join(dir, "src"), filepath.Join(dir, "defs")
	if err := os.CopyFS(appDir, os.DirFS(filepath.Join(e.repoRoot, "examples", a.name))); err != nil {
		return res, err
	}
	if err := os.MkdirAll(defs, 0o755); err != nil {
		return res, err
	}
	pf, err := os.ReadFile(filepath.Join(appDir, "Patchfile"))
	if err != nil {
		return res, err
	}
	for name, dt := range map[string][]byte{"Patchfile": pf, "Dockerfile.link": []byte(a.anchor)} {
		if err := os.WriteFile(filepath.Join(defs, name), dt, 0o644); err != nil {
			return res, err
		}
	}
	repo := "bench/builds-" + a.name
	release := e.ref(repo, "release")
	args := withArgs(images, map[string]string{"RELEASE": release})
	anchorCache := e.ref("bench/builds-cache", a.name)

	logf("apps that build, %s: releases", a.name)
	m, err := e.measure(ctx, buildSpec{name: a.name + "-pf-release", daemon: e.warm, appDir: appDir, defsDir: defs, file: "Patchfile",
		args: withArgs(args, map[string]string{"PATCH_MAX_SHARE": "0"}), output: release,
		exportCache: inlineCache, exportBuildCache: convert.BuildCacheRefs([]string{release})[0]})
	if err != nil {
		return res, err
	}
	res.Releases["pf"] = m
	logf("  %s", m.summary())
	if m, err = e.measure(ctx, buildSpec{name: a.name + "-dfl-release", daemon: e.warm, appDir: appDir, defsDir: defs, file: "Dockerfile.link",
		args: args, output: e.ref(repo, "dfl-release"), exportCache: anchorCache}); err != nil {
		return res, err
	}
	res.Releases["dfl"] = m
	logf("  %s", m.summary())
	runtime, err := e.runtimeLayers(res.Releases["pf"].Digest, a.runtimeOnly)
	if err != nil {
		return res, err
	}

	editPath := filepath.Join(appDir, filepath.FromSlash(a.edit))
	orig, err := os.ReadFile(editPath)
	if err != nil {
		return res, err
	}
	order := []string{buildsPF, buildsAnchor, buildsNoCache}
	for n := 1; n <= e.cfg.Runs; n++ {
		edited := a.editText(string(orig), n)
		if edited == string(orig) {
			return res, errors.Errorf("the edit of %s changes nothing: the example no longer holds what editText replaces", a.edit)
		}
		if err := os.WriteFile(editPath, []byte(edited), 0o644); err != nil {
			return res, err
		}
		for k := range order {
			sc := order[(k+n-1)%len(order)] // each round starts with another
			b := buildSpec{name: fmt.Sprintf("%s-%s-%d", a.name, sc, n), appDir: appDir, defsDir: defs,
				args: args, output: e.ref(repo, fmt.Sprintf("%s-%d", sc, n)), runtimeLayers: runtime}
			switch sc {
			case buildsPF:
				b.file = "Patchfile"
			case buildsAnchor:
				b.file, b.importCache = "Dockerfile.link", anchorCache
			case buildsNoCache:
				b.file = "Dockerfile.link"
			}
			logf("apps that build, %s, round %d/%d: %s", a.name, n, e.cfg.Runs, sc)
			m, err := e.measureCold(ctx, b)
			if err != nil {
				return res, err
			}
			if sc == buildsPF {
				if m.ChangedCompressed, err = e.layerFilesCompressed(m.Digest); err != nil {
					return res, err
				}
			}
			res.Runs[sc] = append(res.Runs[sc], m)
			logf("  %s", m.summary())
		}
	}
	return res, nil
}

// runtimeLayers are the release's layers a deploy must not pull: all but
// the base when the build runs on the image's base (it reads the base),
// every one otherwise.
func (e *env) runtimeLayers(release string, all bool) (map[string]bool, error) {
	mf, err := e.readManifest(release)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for i, l := range mf.Layers {
		if all || i > 0 {
			out[l.Digest.String()] = true
		}
	}
	return out, nil
}

// layerFilesCompressed is a gzip'd tar of just the regular files of an
// image's top layer (the changed outputs a patch carries), read from the
// registry's storage: the least a layer carrying them could weigh.
func (e *env) layerFilesCompressed(image string) (int64, error) {
	mf, err := e.readManifest(image)
	if err != nil {
		return 0, err
	}
	if len(mf.Layers) == 0 {
		return 0, nil
	}
	blob, err := e.stack.ReadBlob(mf.Layers[len(mf.Layers)-1].Digest.String())
	if err != nil {
		return 0, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		return 0, err
	}
	tr := tar.NewReader(zr)
	return gzipTarSize(func(add func(name string, dt []byte) error) error {
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if hdr.Typeflag != tar.TypeReg || strings.HasPrefix(filepath.Base(hdr.Name), ".wh.") {
				continue
			}
			dt, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if err := add(hdr.Name, dt); err != nil {
				return err
			}
		}
	})
}
