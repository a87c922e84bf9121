// Command bench measures what Patchfile promises (docs/design.md,
// "Outcomes") on the real local stack of internal/stack: a registry and
// buildkitd daemons on loopback, every build run with buildctl as a user
// would, every byte counted by the registry itself. It compares a patch deploy of a generated
// app with the Dockerfile frontend building the same app (with and without
// COPY --link; cold, cold with registry cache, warm), then measures how the
// patch path grows with the app and with the change, and the frontend's
// own overhead. It prints the tables and writes BENCHMARKS.md.
//
//	./hack/bench.sh                  the full benchmark (about 15 minutes)
//	./hack/bench.sh -quick           a small version, to smoke-test
//	./hack/bench.sh -n 5 -scale=false
//	go run ./bench -report .tmp/bench-<time>/results.json   (render again)
//
// Each run lives in .tmp/bench-<time>/ (logs, progress, results); every
// daemon it starts is stopped by PID at the end, on error or on Ctrl-C too
// (after a second Ctrl-C, `go run ./cmd/devstack down --dir <run dir>/stack`
// stops what is left).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/patchfile/patchfile/internal/stack"
)

// config is what the flags chose.
type config struct {
	Runs       int  // N: runs per measured build (the median is reported)
	Quick      bool // small app, one run, small scale series
	Scale      bool // run the scale series
	Builds     bool // run the apps that build (examples typescript and spa)
	ScaleRuns  int
	Seed       int64
	Out        string // where to write BENCHMARKS.md; "" for the default
	Report     string // render this results.json instead of running
	Keep       bool   // keep registry data and daemon state
	GoBench    bool   // run the frontend's Go benchmarks
	Concurrent bool   // run the shared-builder comparison (16 deploys at once)
	App        appSpec
	ScaleFiles []int // app sizes of the file-count series
	ScaleBytes []int // changed bytes of the changed-bytes series
	// Link is the network profile every build of the run reaches the
	// registry through ("" for loopback); Rollout the profiles of the
	// rollout series (build, push, pull on a host).
	Link    string
	Rollout []string
}

// flagSet tells whether the command line set the flag.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseFlags() config {
	var c config
	flag.IntVar(&c.Runs, "n", 3, "runs per measured build; the table shows medians (every cold run gets a fresh daemon)")
	flag.BoolVar(&c.Quick, "quick", false, "small app, one run, small scale series (-scale-files and -scale-n still apply): a smoke test of the benchmark itself (results go to the run dir, not BENCHMARKS.md)")
	flag.BoolVar(&c.Scale, "scale", true, "run the scale series (app of 1k/3k/10k/100k files; 1 KB/1 MB/10 MB changed)")
	flag.BoolVar(&c.Builds, "builds", true, "measure the apps that build (examples/typescript, examples/spa, examples/go-build) against their multi-stage Dockerfiles")
	flag.IntVar(&c.ScaleRuns, "scale-n", 3, "rounds per point of the scale series (the table shows medians)")
	flag.Int64Var(&c.Seed, "seed", 1, "seed of the generated app")
	flag.StringVar(&c.Out, "out", "", "where to write the report (default BENCHMARKS.md at the repository root; the run dir with -quick)")
	flag.BoolVar(&c.Keep, "keep", false, "keep the registry's data and the daemons' state in the run dir")
	flag.StringVar(&c.Report, "report", "", "render the report of a previous run from its results.json (in its run dir) without running anything")
	flag.BoolVar(&c.Concurrent, "concurrent", true, "run the shared-builder comparison: 16 deploys at once on one builder, against one by one and 16 Dockerfile deploys at once")
	flag.BoolVar(&c.GoBench, "gobench", true, "run go test -bench for the frontend's parse and conversion")
	flag.StringVar(&c.Link, "link", "", "run every build through a shaped link to the registry: ci (20 ms RTT, 200 Mbit/s) or slow (60 ms, 20 Mbit/s); loopback when empty")
	rollout := flag.String("rollout", "loopback,ci,slow", "network profiles of the rollout series (a cold deploy, then a host pulls and starts it), comma-separated; none to skip it")
	files := flag.String("scale-files", "", "app sizes of the file-count series, comma-separated (default 1000,3000,10000,100000; 100,1000 with -quick)")
	changes := flag.String("scale-bytes", "", "changed bytes of the change-size series, comma-separated (default 1024,1048576,10485760)")
	flag.Parse()
	c.Rollout = parseRollout(*rollout)
	if _, ok := stack.LinkProfiles[c.Link]; c.Link != "" && !ok {
		fmt.Fprintf(os.Stderr, "bench: -link=%s: no such network profile (ci or slow)\n", c.Link)
		os.Exit(2)
	}
	if _, err := rolloutProfiles(c.Rollout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if flag.NArg() != 0 || c.Runs < 1 || c.ScaleRuns < 1 {
		flag.Usage()
		os.Exit(2)
	}
	// The default app: ~3,000 sources and ~4 MB of assets (about 10 MB in
	// all), and a dependency stage of ~250 MB in ~12,000 files that takes
	// about 30 s on 2 cores.
	c.App = appSpec{Seed: c.Seed, SourceFiles: 3000, SourceMin: 200, SourceMax: 3800,
		Assets: 24, AssetSize: 160 << 10, ClipSize: 512 << 10,
		Packages: 300, FilesPerPackage: 40, PackageKB: 20, BlockLines: 16384}
	c.ScaleFiles = []int{1000, 3000, 10000, 100000}
	c.ScaleBytes = []int{1 << 10, 1 << 20, 10 << 20}
	if c.Quick {
		c.Runs = 1
		if !flagSet("scale-n") {
			c.ScaleRuns = 1
		}
		c.App = appSpec{Seed: c.Seed, SourceFiles: 300, SourceMin: 200, SourceMax: 3800,
			Assets: 4, AssetSize: 64 << 10, ClipSize: 64 << 10,
			Packages: 10, FilesPerPackage: 10, PackageKB: 8, BlockLines: 512}
		c.ScaleFiles = []int{100, 1000}
		c.ScaleBytes = []int{1 << 10, 100 << 10}
	}
	for _, l := range []struct {
		flag string
		dst  *[]int
	}{{*files, &c.ScaleFiles}, {*changes, &c.ScaleBytes}} {
		if l.flag == "" {
			continue
		}
		*l.dst = nil
		for f := range strings.SplitSeq(l.flag, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bench: %q is not a positive number\n", f)
				os.Exit(2)
			}
			*l.dst = append(*l.dst, n)
		}
	}
	return c
}

func main() {
	cfg := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := run
	if cfg.Report != "" {
		run = rerender
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run sets the stack up, runs every part, and reports. Whatever happens,
// the deferred Stop stops every daemon and the registry by PID.
func run(ctx context.Context, cfg config) (err error) {
	started := time.Now()
	repoRoot, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "go.mod")); err != nil {
		return fmt.Errorf("run from the repository root (./hack/bench.sh does)")
	}
	runDir, err := makeRunDir(repoRoot, started)
	if err != nil {
		return err
	}
	logf("run dir %s", runDir)
	load := startLoadSampler(ctx, runDir)

	s, err := stack.Start(ctx, filepath.Join(runDir, "stack"))
	if err != nil {
		return err
	}
	e := &env{cfg: cfg, stack: s, runDir: runDir, repoRoot: repoRoot}
	defer func() {
		if stopErr := e.stopAll(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	if err := e.setup(ctx); err != nil {
		return err
	}
	if cfg.Link != "" {
		link, err := s.StartShapedLink(stack.LinkProfiles[cfg.Link])
		if err != nil {
			return err
		}
		defer link.Close()
		logf("every build reaches the registry through a shaped link: %s", link.Profile)
		e.useLink(link)
	}
	rep := &report{Config: cfg, Started: started, RunDir: runDir}
	rep.Machine = readMachine(runDir)
	rep.Frontend = e.frontendInfo
	if rep.Main, err = e.runMain(ctx); err != nil {
		return err
	}
	if rep.Rollouts, err = e.runRollouts(ctx); err != nil {
		return err
	}
	if cfg.Builds {
		if rep.Builds, err = e.runBuilds(ctx); err != nil {
			return err
		}
	}
	if cfg.Scale {
		// The change-size series first: it patches the main app, whose
		// context the warm builder still holds. BuildKit keeps one cached
		// copy per local source name, so after the file-count apps the
		// first warm build of the main app would upload it all again.
		if rep.ScaleBytes, err = e.runScaleBytes(ctx); err != nil {
			return err
		}
		if rep.ScaleFiles, err = e.runScaleFiles(ctx); err != nil {
			return err
		}
	}
	if cfg.Concurrent {
		if rep.Concurrent, err = e.runConcurrent(ctx); err != nil {
			return err
		}
	}
	if cfg.GoBench {
		rep.GoBench = runGoBench(ctx, repoRoot)
	}
	rep.Duration = time.Since(started)
	rep.Load = load.stop()
	// The raw figures, so that the report can be rendered again (-report)
	// without measuring again.
	dt, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(runDir, "results.json"), dt, 0o644); err != nil {
		return err
	}
	return rep.write(cfg.Out, repoRoot)
}

// rerender writes the report of a previous run from its results.json.
func rerender(_ context.Context, cfg config) error {
	dt, err := os.ReadFile(cfg.Report)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(dt, &rep); err != nil {
		return fmt.Errorf("%s: %w", cfg.Report, err)
	}
	repoRoot, err := os.Getwd()
	if err != nil {
		return err
	}
	return rep.write(cfg.Out, repoRoot)
}

// write prints the tables and writes the report: to out, or by default to
// BENCHMARKS.md at the repository root (the run dir for a -quick run).
func (r *report) write(out, repoRoot string) error {
	fmt.Println(r.table())
	if out == "" {
		out = filepath.Join(repoRoot, "BENCHMARKS.md")
		if r.Config.Quick {
			out = filepath.Join(r.RunDir, "BENCHMARKS.md")
		}
	}
	if err := os.WriteFile(out, []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	logf("wrote %s (the run took %s)", out, r.Duration.Round(time.Second))
	return nil
}

// makeRunDir creates .tmp/bench-<time>. buildkitd sockets live in it and
// unix socket paths are short, so a deep checkout falls back to /tmp.
func makeRunDir(repoRoot string, t time.Time) (string, error) {
	dir := filepath.Join(repoRoot, ".tmp", "bench-"+t.Format("20060102-150405"))
	if len(dir) > 50 {
		if err := os.MkdirAll("/tmp/patchfile", 0o755); err != nil {
			return "", err
		}
		return os.MkdirTemp("/tmp/patchfile", "bench-")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// numCPU is the number of cores, as the report shows it.
func numCPU() int { return runtime.NumCPU() }
