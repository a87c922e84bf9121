package stack

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/errors"
)

// Faults for tests: the registry killed and started again on the same
// address and storage, and a way to wait for a request it answered.

// KillRegistry kills the registry at once (SIGKILL to its process group,
// by the PID it recorded), as a crash would: requests in flight break.
func (s *Stack) KillRegistry() error {
	return killProcess(s.registry.pidFile, "the registry")
}

// killProcess sends SIGKILL to the process group of the PID a process
// recorded, waits for it to be gone, and removes its PID file.
func killProcess(pidFile, name string) error {
	dt, err := os.ReadFile(pidFile)
	if err != nil {
		return errors.Wrapf(err, "%s is not running", name)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(dt)))
	if err != nil || pid <= 1 {
		return errors.Errorf("bad PID file %s", pidFile)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		return errors.Wrapf(err, "killing %s (PID %d)", name, pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			return errors.Errorf("%s (PID %d) survived SIGKILL", name, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return os.Remove(pidFile)
}

// RestartRegistry starts the registry again with the configuration Start
// wrote: same address, same storage, same log.
func (s *Stack) RestartRegistry(ctx context.Context) error {
	dir := filepath.Join(s.Dir, "registry")
	p, err := startProcess(dir, "registry", filepath.Join(s.ToolsDir, "registry"), "serve", filepath.Join(dir, "config.yml"))
	if err != nil {
		return err
	}
	s.registry = p
	return waitFor(ctx, 30*time.Second, func() error {
		resp, err := http.Get("http://" + s.Registry + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// UploadsInProgress tells whether the registry holds a blob upload that
// has started and not finished in repo (its _uploads directory).
func (s *Stack) UploadsInProgress(repo string) bool {
	entries, _ := os.ReadDir(filepath.Join(s.Dir, "registry", "data", "docker", "registry", "v2", "repositories", repo, "_uploads"))
	return len(entries) > 0
}

// WaitForRequest waits until the registry log, read from offset (see
// LogSize), records a completed request whose URI ends with suffix and
// whose method is method (any if "").
func (s *Stack) WaitForRequest(ctx context.Context, offset int64, method, suffix string) error {
	for {
		if ok, err := s.logged(offset, method, suffix); err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Wrapf(ctx.Err(), "waiting for %s ...%s", method, suffix)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Stack) logged(offset int64, method, suffix string) (bool, error) {
	found := false
	err := s.eachRegistryResponse(offset, func(m, uri string, _ int64) bool {
		found = (method == "" || m == method) && strings.HasSuffix(uri, suffix)
		return !found
	})
	return found, err
}

// Registry is a registry of its own in the stack's directory, for a test
// that changes a whole registry (its clean-up): the stack's is shared.
type Registry struct {
	// Addr is its host:port on 127.0.0.1.
	Addr string
	dir  string
	s    *Stack
	proc *process
}

// StartRegistry starts a registry of its own; name keeps several apart.
func (s *Stack) StartRegistry(ctx context.Context, name string) (*Registry, error) {
	dir := filepath.Join(s.Dir, "registry-"+name)
	proc, addr, err := startRegistry(ctx, dir, s.ToolsDir, "")
	if err != nil {
		return nil, err
	}
	s.extra = append(s.extra, proc)
	return &Registry{Addr: addr, dir: dir, s: s, proc: proc}, nil
}

// CleanUpUntagged is a registry's clean-up of untagged images, as
// operators schedule it: the registry stopped, `registry garbage-collect
// --delete-untagged` (manifests no tag points to are deleted, then every
// blob no manifest left references), and the registry started again on
// the same address.
func (r *Registry) CleanUpUntagged(ctx context.Context) (string, error) {
	if err := r.proc.stop(); err != nil {
		return "", err
	}
	cfg := filepath.Join(r.dir, "config.yml")
	out, err := exec.CommandContext(ctx, filepath.Join(r.s.ToolsDir, "registry"), "garbage-collect", "--delete-untagged", cfg).CombinedOutput()
	if err != nil {
		return string(out), errors.Wrapf(err, "registry garbage-collect: %s", out)
	}
	p, err := startProcess(r.dir, "registry", filepath.Join(r.s.ToolsDir, "registry"), "serve", cfg)
	if err != nil {
		return string(out), err
	}
	r.proc = p
	r.s.extra = append(r.s.extra, p)
	return string(out), waitFor(ctx, 30*time.Second, func() error {
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// Stop stops the registry.
func (r *Registry) Stop() error { return r.proc.stop() }
