package stack

import (
	"context"
	"net/http"
	"os"
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
	dt, err := os.ReadFile(s.registry.pidFile)
	if err != nil {
		return errors.Wrap(err, "the registry is not running")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(dt)))
	if err != nil || pid <= 1 {
		return errors.Errorf("bad PID file %s", s.registry.pidFile)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		return errors.Wrapf(err, "killing the registry (PID %d)", pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			return errors.Errorf("the registry (PID %d) survived SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return os.Remove(s.registry.pidFile)
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
