// Package stack runs the real BuildKit test stack on loopback: a
// distribution registry and any number of buildkitd daemons and Docker
// Engines, each with its own directories, started and stopped by PID.
package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/pkg/errors"
	"golang.org/x/crypto/bcrypt"
)

// Stack is one registry plus the daemons started against it.
type Stack struct {
	// Dir holds everything of this run: configs, storage, logs, PID files.
	Dir string
	// Registry is the registry's host:port on 127.0.0.1.
	Registry string
	// ToolsDir holds the binaries hack/install-tools.sh built.
	ToolsDir string
	registry *process
	daemons  []*Daemon
	engines  []*Engine
	// extra are more registries (StartAuthRegistry).
	extra []*process
}

// Daemon is one buildkitd with its own root (its own cache).
type Daemon struct {
	Name string
	// Addr is the daemon's unix socket address (unix://...).
	Addr string
	Root string
	proc *process
}

// process is a child started in its own process group and stopped by PID.
type process struct {
	name    string
	pidFile string
	cmd     *exec.Cmd
	logPath string
}

// ToolsDir returns where hack/install-tools.sh puts its binaries.
func ToolsDir() string {
	if d := os.Getenv("PATCHFILE_TOOLS"); d != "" {
		return filepath.Join(d, "bin")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	return filepath.Join(cache, "patchfile", "tools", "bin")
}

// Start starts a registry in dir (created if needed). Stop it with Stop.
func Start(ctx context.Context, dir string) (*Stack, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Stack{Dir: dir, ToolsDir: ToolsDir()}
	for _, bin := range []string{"registry", "buildkitd", "buildctl"} {
		if _, err := os.Stat(filepath.Join(s.ToolsDir, bin)); err != nil {
			return nil, errors.Errorf("%s is missing from %s: run hack/install-tools.sh", bin, s.ToolsDir)
		}
	}
	if s.registry, s.Registry, err = startRegistry(ctx, filepath.Join(dir, "registry"), s.ToolsDir, ""); err != nil {
		return nil, err
	}
	return s, nil
}

// startRegistry starts a distribution registry with its storage in dir, on
// a free port of 127.0.0.1; extra is added to its config (an auth section).
func startRegistry(ctx context.Context, dir, toolsDir, extra string) (*process, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: json
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "data"), addr, extra)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, "", err
	}
	proc, err := startProcess(dir, "registry", filepath.Join(toolsDir, "registry"), "serve", cfgPath)
	if err != nil {
		return nil, "", err
	}
	if err := waitFor(ctx, 30*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		_ = proc.stop()
		return nil, "", errors.Wrapf(err, "registry did not start, see %s", proc.logPath)
	}
	return proc, addr, nil
}

// AuthRegistry is a second registry that answers only to one user, for
// candidates that need credentials the build does not have.
type AuthRegistry struct {
	// Addr is its host:port on 127.0.0.1.
	Addr           string
	User, Password string
	proc           *process
}

// StartAuthRegistry starts a registry with htpasswd auth in the stack's
// directory (name keeps several apart); Stop stops it, and so does the
// stack's Stop.
func (s *Stack) StartAuthRegistry(ctx context.Context, name, user, password string) (*AuthRegistry, error) {
	dir := filepath.Join(s.Dir, "registry-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		return nil, err
	}
	proc, addr, err := startRegistry(ctx, dir, s.ToolsDir, fmt.Sprintf("auth:\n  htpasswd:\n    realm: patchfile-test\n    path: %s\n", htpasswd))
	if err != nil {
		return nil, err
	}
	r := &AuthRegistry{Addr: addr, User: user, Password: password, proc: proc}
	s.extra = append(s.extra, proc)
	return r, nil
}

// Stop stops the registry.
func (r *AuthRegistry) Stop() error { return r.proc.stop() }

// NewDaemon starts a buildkitd with an empty cache: a cold builder.
func (s *Stack) NewDaemon(ctx context.Context, name string) (*Daemon, error) {
	root := filepath.Join(s.Dir, "buildkitd-"+name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("[registry.%q]\n  http = true\n  insecure = true\n", s.Registry)
	cfgPath := filepath.Join(root, "buildkitd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	// Unix socket paths are limited to 108 bytes; keep the socket short.
	sock := filepath.Join(root, "bk.sock")
	if len(sock) > 100 {
		return nil, errors.Errorf("socket path %s is too long for a unix socket", sock)
	}
	d := &Daemon{Name: name, Addr: "unix://" + sock, Root: root}
	var err error
	d.proc, err = startProcess(root, "buildkitd", filepath.Join(s.ToolsDir, "buildkitd"),
		"--root", filepath.Join(root, "state"),
		"--addr", d.Addr,
		"--config", cfgPath,
		"--oci-worker-snapshotter=overlayfs",
		"--oci-worker-gc=false",
		"--containerd-worker=false")
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 60*time.Second, func() error {
		c, err := client.New(ctx, d.Addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.ListWorkers(ctx)
		return err
	}); err != nil {
		d.proc.stop()
		return nil, errors.Wrapf(err, "buildkitd %s did not start, see %s", name, d.proc.logPath)
	}
	s.daemons = append(s.daemons, d)
	return d, nil
}

// Client connects to the daemon.
func (d *Daemon) Client(ctx context.Context) (*client.Client, error) {
	return client.New(ctx, d.Addr)
}

// LogPath is the file that holds the daemon's standard output and error,
// where BuildKit also sends its frontends' standard error.
func (d *Daemon) LogPath() string { return d.proc.logPath }

// PeakMemoryKiB is the daemon process's peak resident memory so far
// (VmHWM), 0 if it cannot be read.
func (d *Daemon) PeakMemoryKiB() int64 {
	dt, err := os.ReadFile(d.proc.pidFile)
	if err != nil {
		return 0
	}
	status, err := os.ReadFile("/proc/" + strings.TrimSpace(string(dt)) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// Kill kills the daemon at once (SIGKILL to its process group), as a
// crash or an OOM kill would, and keeps its state: NewDaemon with the same
// name starts it again on that state.
func (d *Daemon) Kill() error {
	return killProcess(d.proc.pidFile, "buildkitd")
}

// Stop stops the daemon and removes its state.
func (d *Daemon) Stop() error {
	err := d.proc.stop()
	if rmErr := removeAll(d.Root); err == nil {
		err = rmErr
	}
	return err
}

// Stop stops every engine, every daemon and the registry.
func (s *Stack) Stop() error {
	var firstErr error
	for _, e := range s.engines {
		if err := e.stop(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, d := range s.daemons {
		if err := d.proc.stop(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, p := range append([]*process{s.registry}, s.extra...) {
		if p == nil {
			continue
		}
		if err := p.stop(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// StopDir stops whatever a previous Start left running in dir, by the PIDs
// it recorded there. It is how the demo stops a stack started by another
// process.
func StopDir(dir string) error {
	// An engine's bridge name, shim address and mounts are absolute paths.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	engines, _ := filepath.Glob(filepath.Join(dir, "engine-*"))
	for _, e := range engines {
		(&Engine{Host: "unix://" + filepath.Join(e, "docker.sock")}).killContainers()
	}
	pidFiles, _ := filepath.Glob(filepath.Join(dir, "*", "*.pid"))
	// An engine's dockerd stops before its containerd.
	sort.SliceStable(pidFiles, func(i, j int) bool {
		return filepath.Base(pidFiles[i]) != "containerd.pid" && filepath.Base(pidFiles[j]) == "containerd.pid"
	})
	for _, f := range pidFiles {
		p := &process{pidFile: f}
		if err := p.stop(); err != nil {
			return err
		}
	}
	for _, e := range engines {
		killShims(filepath.Join(e, "containerd.sock"))
		if err := unmountUnder(e); err != nil {
			return err
		}
		if err := deleteBridge(bridgeName(e)); err != nil {
			return err
		}
	}
	return nil
}

// RegistryLog returns the registry's log file path.
func (s *Stack) RegistryLog() string { return s.registry.logPath }

// BlobTransfer is one blob request the registry answered.
type BlobTransfer struct {
	Method string
	Repo   string
	Digest string
	Bytes  int64
}

// RegistryRequests reads the registry log and returns the blob transfers
// logged since offset (a byte offset into the log, from LogSize).
func (s *Stack) RegistryRequests(offset int64) ([]BlobTransfer, error) {
	var out []BlobTransfer
	err := s.eachRegistryResponse(offset, func(method, uri string, written int64) bool {
		if repo, kind, ref, ok := splitRegistryURI(uri); ok && kind == "blobs" {
			out = append(out, BlobTransfer{Method: method, Repo: repo, Digest: ref, Bytes: written})
		}
		return true
	})
	return out, err
}

// RegistryBytesServed is what the registry answered to GET requests for
// blobs and manifests since offset (LogSize): what a pull cost.
func (s *Stack) RegistryBytesServed(offset int64) (int64, error) {
	var n int64
	err := s.eachRegistryResponse(offset, func(method, uri string, written int64) bool {
		if _, kind, _, ok := splitRegistryURI(uri); ok && method == "GET" && (kind == "blobs" || kind == "manifests") {
			n += written
		}
		return true
	})
	return n, err
}

// eachRegistryResponse calls fn with each request the registry answered
// since offset (a byte offset into its log), in order, until fn returns
// false.
func (s *Stack) eachRegistryResponse(offset int64, fn func(method, uri string, written int64) bool) error {
	f, err := os.Open(s.registry.logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var entry map[string]any
		if json.Unmarshal(sc.Bytes(), &entry) != nil || entry["msg"] != "response completed" {
			continue
		}
		uri, _ := entry["http.request.uri"].(string)
		method, _ := entry["http.request.method"].(string)
		written, _ := entry["http.response.written"].(float64)
		if !fn(method, uri, int64(written)) {
			return nil
		}
	}
	return sc.Err()
}

// LogSize returns the current size of the registry log, to read from later.
func (s *Stack) LogSize() int64 {
	st, err := os.Stat(s.registry.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// splitRegistryURI splits /v2/<repo>/blobs/<digest> (or manifests/<ref>).
func splitRegistryURI(uri string) (repo, kind, ref string, ok bool) {
	uri, _, _ = strings.Cut(uri, "?")
	if !strings.HasPrefix(uri, "/v2/") {
		return "", "", "", false
	}
	parts := strings.Split(strings.TrimPrefix(uri, "/v2/"), "/")
	if len(parts) < 3 {
		return "", "", "", false
	}
	n := len(parts)
	return strings.Join(parts[:n-2], "/"), parts[n-2], parts[n-1], true
}

func startProcess(dir, name, bin string, args ...string) (*process, error) {
	return startProcessEnv(dir, name, nil, bin, args...)
}

// startProcessEnv is startProcess with env as the environment (nil: this
// process's).
func startProcessEnv(dir, name string, env []string, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = env
	// Its own session: it outlives a demo script's shell and is stopped by PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, errors.Wrapf(err, "starting %s", name)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, pidFile: filepath.Join(dir, name+".pid")}
	if err := os.WriteFile(p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return nil, err
	}
	go cmd.Wait() //nolint:errcheck // reaped here; stop() checks liveness by PID
	return p, nil
}

// stop sends SIGTERM to the recorded PID's process group, then SIGKILL
// after 10 s, and removes the PID file.
func (p *process) stop() error {
	dt, err := os.ReadFile(p.pidFile)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(dt)))
	if err != nil || pid <= 1 {
		return errors.Errorf("bad PID file %s", p.pidFile)
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && alive(pid) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		time.Sleep(100 * time.Millisecond)
	}
	return os.Remove(p.pidFile)
}

// alive tells whether pid runs and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitFor(ctx context.Context, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if err = check(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Wrap(err, "timed out")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// removeAll removes a daemon root; overlay mounts may linger a moment.
func removeAll(dir string) error {
	var err error
	for range 20 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Blobs returns the registry's stored blobs (digest -> size), read from its
// storage: what was pushed is the difference between two calls.
func (s *Stack) Blobs() (map[string]int64, error) {
	root := filepath.Join(s.Dir, "registry", "data", "docker", "registry", "v2", "blobs")
	out := map[string]int64{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Name() == "data" && !info.IsDir() {
			dir := filepath.Dir(p)
			out[filepath.Base(filepath.Dir(filepath.Dir(dir)))+":"+filepath.Base(dir)] = info.Size()
		}
		return nil
	})
	return out, err
}
