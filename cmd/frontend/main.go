// Command frontend is the Patchfile BuildKit frontend: the entrypoint of the
// frontend image that `# syntax=` names.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	"github.com/moby/buildkit/util/appcontext"
	"github.com/moby/buildkit/util/bklog"
	"github.com/patchfile/patchfile/frontend"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/carry"
	"github.com/patchfile/patchfile/version"
)

// logMemoryArg names the build arg that makes the frontend write its peak
// resident memory to the builder's log (buildkitd's standard error, where
// BuildKit sends a frontend's): how the README's memory budget is checked.
const logMemoryArg = "build-arg:PATCH_LOG_MEMORY"

func main() {
	if len(os.Args) == 4 && os.Args[1] == buildcontext.HashCommand {
		// A build step the frontend runs over the context (see
		// buildcontext.WriteList): list and hash it, in one step.
		if err := buildcontext.WriteList(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 4 && os.Args[1] == carry.CopyCommand {
		// A release's step that keeps a build stage's cache (CARRY).
		stats, err := carry.Copy(os.Args[2], os.Args[3], false)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(stats)
		return
	}
	if len(os.Args) > 2 && os.Args[1] == carry.RunCommand {
		// A build step that starts from the caches its release carried.
		args := os.Args[2:]
		fills, command := args, []string(nil)
		if i := slices.Index(args, "--"); i >= 0 {
			fills, command = args[:i], args[i+1:]
		}
		if err := carry.Run(fills, command); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 2 && os.Args[1] == "version" {
		fmt.Println(version.String())
		return
	}
	showVersion := flag.Bool("version", false, "print the version and exit (as `patchfile-frontend version`)")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String())
		return
	}
	if err := grpcclient.RunFromEnvironment(appcontext.Context(), build); err != nil {
		bklog.L.Errorf("fatal error: %+v", err)
		os.Exit(1)
	}
}

func build(ctx context.Context, c client.Client) (*client.Result, error) {
	res, err := frontend.Build(ctx, c)
	if c.BuildOpts().Opts[logMemoryArg] == "1" {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			// Maxrss is in KiB on Linux, the only OS a frontend runs on.
			fmt.Fprintf(os.Stderr, "patchfile frontend: peak resident memory %d KiB\n", ru.Maxrss)
		}
	}
	return res, err
}
