package main

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
)

// goBenchResult is one line of `go test -bench` output.
type goBenchResult struct {
	Name        string
	NsPerOp     float64
	BytesPerOp  int64
	AllocsPerOp int64
}

// goBench is the frontend's own overhead, measured without a daemon:
// parsing and converting a realistic Patchfile (frontend/bench_test.go).
type goBench struct {
	Results []goBenchResult
	Err     string // set when the benchmark could not run
}

// runGoBench runs the frontend's Go benchmarks. A failure (another
// engineer's test file that does not compile right now, say) is reported,
// not fatal: the stack measurements stand on their own.
func runGoBench(ctx context.Context, repoRoot string) goBench {
	logf("go test -bench for the frontend's parse and conversion")
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^Benchmark(ParseConvert|PlanPatch)$",
		"-benchmem", "-benchtime", "2s", "./frontend")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		return goBench{Err: err.Error() + ": " + msg}
	}
	var res goBench
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		r := goBenchResult{Name: f[0]}
		for i := 2; i+1 < len(f); i += 2 {
			switch f[i+1] {
			case "ns/op":
				r.NsPerOp, _ = strconv.ParseFloat(f[i], 64)
			case "B/op":
				r.BytesPerOp, _ = strconv.ParseInt(f[i], 10, 64)
			case "allocs/op":
				r.AllocsPerOp, _ = strconv.ParseInt(f[i], 10, 64)
			}
		}
		res.Results = append(res.Results, r)
	}
	if len(res.Results) == 0 {
		res.Err = "no benchmark result in the output"
	}
	return res
}
