// Command devstack controls the test stack of internal/stack from scripts
// (hack/demo.sh):
//
//	devstack up --dir D       start a registry and a buildkitd ("demo") in D,
//	                          push the busybox base and the frontend image,
//	                          write D/env, and exit leaving the daemons running
//	devstack down --dir D     stop what `up` started in D, by its PID files
//	devstack inspect REF [R]  print an image's layers and labels (from the
//	                          registry); with R, mark the layers R also has
//
// Run it from the repository root: `up` builds the frontend from it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patchfile/patchfile/internal/stack"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "up", "down":
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		dir := fs.String("dir", "", "the stack's directory")
		_ = fs.Parse(args)
		if *dir == "" || fs.NArg() != 0 {
			usage()
		}
		if cmd == "up" {
			err = up(*dir)
		} else {
			err = down(*dir)
		}
	case "inspect":
		if len(args) < 1 || len(args) > 2 {
			usage()
		}
		err = inspect(args[0], args[1:]...)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: devstack up --dir D | down --dir D | inspect REF [OTHER_REF]")
	os.Exit(2)
}

// down stops the stack in dir and removes dir/env, so that up can start
// one there again.
func down(dir string) error {
	if err := stack.StopDir(dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, "env")); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// up starts the stack in dir and writes dir/env for shells to source.
func up(dir string) (err error) {
	envFile := filepath.Join(dir, "env")
	if _, err := os.Stat(envFile); err == nil {
		return fmt.Errorf("%s exists: a stack is already up there (devstack down --dir %s)", envFile, dir)
	}
	repoRoot, err := os.Getwd()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	d, err := s.NewDaemon(ctx, "demo")
	if err != nil {
		return err
	}
	base, err := s.PushBaseImage(ctx, d, s.Ref("busybox", "stable"))
	if err != nil {
		return err
	}
	tag := s.Ref("patchfile", "1")
	frontendImage, err := s.BuildFrontendImage(ctx, d, repoRoot, tag)
	if err != nil {
		return err
	}
	var env strings.Builder
	for _, kv := range [][2]string{
		{"REGISTRY", s.Registry}, {"BUILDKIT_HOST", d.Addr}, {"BASE_IMAGE", base},
		{"FRONTEND_IMAGE", frontendImage}, {"FRONTEND_TAG", tag},
	} {
		fmt.Fprintf(&env, "%s='%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", `'\''`))
	}
	return os.WriteFile(envFile, []byte(env.String()), 0o644)
}
