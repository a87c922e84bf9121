package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/patchfile/patchfile/internal/stack"
	"github.com/patchfile/patchfile/version"
)

// env is the stack shared by the tests of one run.
var env struct {
	stack *stack.Stack
	// warm is the daemon most tests build on.
	warm *stack.Daemon
	// base is the busybox base image, pinned by digest.
	base string
	// frontendImage is the frontend image in the registry, pinned by digest.
	frontendImage string
	// frontendTag is the same image by tag, as `# syntax=` lines name it.
	frontendTag string
	repoRoot    string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		// go test -short ./...: the unit tests alone, in seconds.
		fmt.Println("integration: skipped with -short (they start a registry, buildkitd and Docker Engines)")
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "pf-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keep := os.Getenv("PATCHFILE_KEEP") != ""
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	_, file, _, _ := runtime.Caller(0)
	env.repoRoot = filepath.Dir(filepath.Dir(file))
	// The frontend runs here too (client.Build): it gets the version the
	// frontend image is built with, so that every entry point writes the
	// same dev.patchfile.frontend label and gives the same image.
	version.Version, version.Revision = stack.FrontendVersion(ctx, env.repoRoot)

	s, err := stack.Start(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test stack:", err)
		return 1
	}
	env.stack = s
	defer s.Stop()
	if env.warm, err = s.NewDaemon(ctx, "warm"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if env.base, err = s.PushBaseImage(ctx, env.warm, s.Ref("busybox", "stable")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.frontendTag = s.Ref("patchfile", "test")
	if env.frontendImage, err = s.BuildFrontendImage(ctx, env.warm, env.repoRoot, env.frontendTag); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "test stack in %s: registry %s, base %s, frontend %s\n", dir, s.Registry, env.base, env.frontendImage)
	return m.Run()
}
