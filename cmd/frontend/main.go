// Command frontend is the Patchfile BuildKit frontend: the entrypoint of the
// frontend image that `# syntax=` names.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	"github.com/moby/buildkit/util/appcontext"
	"github.com/moby/buildkit/util/bklog"
	"github.com/patchfile/patchfile/frontend"
)

// Version and Revision are set with -ldflags -X at build time.
var (
	Version  = "dev"
	Revision = ""
)

func main() {
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Printf("patchfile-frontend %s %s\n", Version, Revision)
		return
	}
	if err := grpcclient.RunFromEnvironment(appcontext.Context(), frontend.Build); err != nil {
		bklog.L.Errorf("fatal error: %+v", err)
		os.Exit(1)
	}
}
