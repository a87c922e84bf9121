package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/patchfile/patchfile/internal/stack"
)

// env is the stack of one benchmark run and what was set up on it.
type env struct {
	cfg      config
	stack    *stack.Stack
	runDir   string
	repoRoot string
	// warm is the builder that builds every release: the warm builds run
	// on it, with everything the release left in its cache.
	warm *stack.Daemon
	// base is the busybox base image, pinned; baseManifest its digest.
	base, baseManifest string
	// frontendImage is the Patchfile frontend image in the registry,
	// pinned, and frontendBlobs its layer and config digests.
	frontendImage string
	frontendBlobs map[string]bool
	frontendInfo  frontendInfo
	// scanner is the SBOM generator of the attest rows (internal/testscanner),
	// pinned by digest, and scannerBlobs its layer and config digests.
	scanner      string
	scannerBlobs map[string]bool
	// mainApp is the main comparison's app and release, which the
	// changed-bytes series patches too.
	mainApp *mainApp
	// cold counts the cold daemons started, to name them.
	cold int
	// link is the shaped link the builds and pulls reach the registry
	// through, nil for loopback (useLink).
	link *stack.ShapedLink
}

// ref is an image reference in the registry, through the link in use.
func (e *env) ref(repo, tag string) string {
	return e.registryHost() + "/" + repo + ":" + tag
}

// registryHost is the registry's host:port as builds and pulls reach it.
func (e *env) registryHost() string {
	if e.link != nil {
		return e.link.Addr
	}
	return e.stack.Registry
}

// useLink makes every build and pull from now on reach the registry
// through link (nil: directly, on loopback): it names the registry by the
// link's address in every reference it hands out, the base, frontend and
// generator images included. The registry and its log are the same, so
// bytes are counted as before.
func (e *env) useLink(link *stack.ShapedLink) {
	from := e.registryHost() + "/"
	e.link = link
	to := e.registryHost() + "/"
	for _, ref := range []*string{&e.base, &e.frontendImage, &e.scanner, &e.frontendInfo.Image} {
		*ref = to + strings.TrimPrefix(*ref, from)
	}
}

// frontendInfo is the frontend's footprint on every cold builder.
type frontendInfo struct {
	Image       string
	ImageBytes  int64 // compressed: layers and config, as the registry stores them
	BinaryBytes int64 // bin/linux-$GOARCH/patchfile-frontend as built (stack.FrontendGCFlags, -trimpath -ldflags='-s -w')
}

// setup starts the warm daemon and pushes the base and frontend images.
func (e *env) setup(ctx context.Context) error {
	var err error
	logf("starting the warm builder; pushing the base image and the frontend image")
	if e.warm, err = e.stack.NewDaemon(ctx, "warm"); err != nil {
		return err
	}
	if e.base, err = e.stack.PushBaseImage(ctx, e.warm, e.ref("busybox", "stable")); err != nil {
		return err
	}
	_, e.baseManifest, _ = strings.Cut(e.base, "@")
	if e.scanner, err = e.stack.PushScannerImage(ctx, e.warm, e.repoRoot, e.ref("testscanner", "bench")); err != nil {
		return err
	}
	if e.scannerBlobs, _, err = e.imageBlobs(e.scanner); err != nil {
		return err
	}
	if e.frontendImage, err = e.stack.BuildFrontendImage(ctx, e.warm, e.repoRoot, e.ref("patchfile", "bench")); err != nil {
		return err
	}
	e.frontendInfo = frontendInfo{Image: e.frontendImage, BinaryBytes: fileSize(filepath.Join(e.repoRoot, "bin", "linux-"+runtime.GOARCH, "patchfile-frontend"))}
	if e.frontendBlobs, e.frontendInfo.ImageBytes, err = e.imageBlobs(e.frontendImage); err != nil {
		return err
	}
	logf("registry %s, base %s, frontend %s (%s compressed)", e.stack.Registry, e.base, e.frontendImage, human(e.frontendInfo.ImageBytes))
	return nil
}

// withCold runs f on a fresh daemon (an empty cache: a cold builder, like
// a CI runner) and stops it, removing its state, whatever f returns.
func (e *env) withCold(ctx context.Context, f func(d *stack.Daemon) error) error {
	e.cold++
	d, err := e.stack.NewDaemon(ctx, fmt.Sprintf("c%d", e.cold))
	if err != nil {
		return err
	}
	err = f(d)
	if stopErr := d.Stop(); stopErr != nil && err == nil {
		err = stopErr
	}
	return err
}

// stopAll stops the warm daemon and the registry (every cold daemon is
// already stopped), and removes the bulky state unless -keep.
func (e *env) stopAll() error {
	var err error
	if e.warm != nil && !e.cfg.Keep {
		err = e.warm.Stop()
	}
	if stopErr := e.stack.Stop(); stopErr != nil && err == nil {
		err = stopErr
	}
	if !e.cfg.Keep {
		for _, p := range []string{
			filepath.Join(e.stack.Dir, "registry", "data"),
			filepath.Join(e.runDir, "app"),
			filepath.Join(e.runDir, "scale"),
			filepath.Join(e.stack.Dir, "base-rootfs"),
		} {
			if rmErr := os.RemoveAll(p); rmErr != nil && err == nil {
				err = rmErr
			}
		}
	}
	return err
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n < 0:
		return "-" + human(-n)
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
