package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/patchfile/patchfile/internal/stack"
)

// machine describes where the numbers were taken, read at run time: the
// same benchmark on another machine gives other numbers, and the report
// must say which.
type machine struct {
	CPUModel string
	Cores    int
	MemTotal string
	Kernel   string
	Disk     string // filesystem, device and free space of the run dir
	Go       string
	BuildKit string
	Commit   string // git HEAD, and whether the tree had local changes
}

func readMachine(runDir string) machine {
	m := machine{Cores: numCPU(), CPUModel: "unknown", MemTotal: "unknown", Kernel: "unknown", Disk: "unknown"}
	if dt, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(dt), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if dt, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(dt), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if dt, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(dt))
	}
	m.Disk = diskOf(runDir)
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if dt, err := os.ReadFile(filepath.Join(stack.ToolsDir(), ".buildkitd.version")); err == nil {
		m.BuildKit = strings.TrimSpace(string(dt))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--", "frontend", "cmd", "llb", "go.mod").Output(); err == nil && len(st) > 0 {
			m.Commit += " with uncommitted changes in frontend/, cmd/ or llb/ (the frontend image is built from the working tree)"
		}
	}
	return m
}

// diskOf names the filesystem holding dir: type, device, size and free
// space, and whether the device is rotational.
func diskOf(dir string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return "unknown"
	}
	size := int64(st.Blocks) * st.Bsize
	free := int64(st.Bavail) * st.Bsize
	dev, fstype := "", ""
	best := -1
	if f, err := os.Open("/proc/mounts"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) >= 3 && strings.HasPrefix(dir, fl[1]) && len(fl[1]) > best {
				best, dev, fstype = len(fl[1]), fl[0], fl[2]
			}
		}
		f.Close()
	}
	kind := ""
	if dt, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "queue", "rotational")); err == nil {
		if strings.TrimSpace(string(dt)) == "0" {
			kind = " (the kernel reports it non-rotational)"
		} else {
			kind = " (the kernel reports it rotational)"
		}
	}
	return fmt.Sprintf("%s on %s%s, %s, %s free", fstype, dev, kind, human(size), human(free))
}

// loadSampler reads /proc/loadavg every 5 s during the run: the machine is
// shared, and a busy machine slows some builds more than others.
type loadSampler struct {
	ours    string // the run dir: processes naming it are ours
	mu      sync.Mutex
	samples []float64
	busy    map[string]int // most processes of each kind seen at once
	done    chan struct{}
	stopped sync.Once
}

// loadStats is the 1-minute load average over the run, and the other
// work seen on the machine meanwhile.
type loadStats struct {
	Mean, Max float64
	Samples   int
	Busy      []string
}

func startLoadSampler(ctx context.Context, runDir string) *loadSampler {
	l := &loadSampler{ours: runDir, busy: map[string]int{}, done: make(chan struct{})}
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			l.sample()
			select {
			case <-ctx.Done():
				return
			case <-l.done:
				return
			case <-t.C:
			}
		}
	}()
	return l
}

func (l *loadSampler) sample() {
	dt, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	f := strings.Fields(string(dt))
	if len(f) == 0 {
		return
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return
	}
	others := foreignProcesses(l.ours)
	l.mu.Lock()
	l.samples = append(l.samples, v)
	for k, n := range others {
		l.busy[k] = max(l.busy[k], n)
	}
	l.mu.Unlock()
}

func (l *loadSampler) stop() loadStats {
	l.stopped.Do(func() { close(l.done) })
	l.mu.Lock()
	defer l.mu.Unlock()
	var s loadStats
	for _, v := range l.samples {
		s.Mean += v
		s.Max = max(s.Max, v)
	}
	if s.Samples = len(l.samples); s.Samples > 0 {
		s.Mean /= float64(s.Samples)
	}
	for _, k := range slices.Sorted(maps.Keys(l.busy)) {
		s.Busy = append(s.Busy, fmt.Sprintf("up to %d× %s", l.busy[k], k))
	}
	return s
}

// foreignProcesses counts the processes that are not this run's and that
// compete for the cores: other buildkitd daemons and registries (other
// engineers' test stacks), go test runs, fuzzers, compilers.
func foreignProcesses(ours string) map[string]int {
	entries, _ := os.ReadDir("/proc")
	seen := map[string]int{}
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || descendsFrom(pid, os.Getpid()) {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || len(cmd) == 0 || strings.Contains(string(cmd), ours) {
			continue
		}
		line := strings.ReplaceAll(string(cmd), "\x00", " ")
		for _, kind := range []string{"buildkitd", "registry serve", ".test ", "-test.fuzz", "go test", "compile "} {
			if strings.Contains(line, kind) {
				seen[strings.TrimSpace(kind)]++
			}
		}
	}
	return seen
}

// descendsFrom tells whether pid is ancestor or one of its descendants
// (our own go build and go test runs are not competition).
func descendsFrom(pid, ancestor int) bool {
	for range 64 {
		if pid == ancestor {
			return true
		}
		if pid <= 1 {
			return false
		}
		dt, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		s := string(dt)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			return false
		}
		if pid, err = strconv.Atoi(f[1]); err != nil {
			return false
		}
	}
	return false
}
