package stack

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/pkg/errors"
)

// Engine is one Docker Engine: a dockerd with its own containerd, both with
// their own directories, sockets and PID files under the stack's Dir, and a
// docker CLI configuration of its own (DOCKER_CONFIG) that has the buildx
// plugin, so `docker buildx build --builder default` builds on this engine.
//
// Two engines run side by side: neither uses /var/lib/docker, /run/docker
// (but for an empty /run/docker/plugins that dockerd always makes),
// /etc/docker, docker0 or the default containerd. Each has a bridge of its
// own (BuildKit in dockerd runs RUN steps on the default bridge network, and
// dockerd creates no bridge but docker0 itself), which Stop deletes; the
// engine touches no iptables rules and forwards nothing, so containers reach
// the host's addresses on that bridge and nothing beyond.
type Engine struct {
	Name string
	// Host is the engine's API socket (unix://...), for DOCKER_HOST.
	Host string
	// Dir holds the engine's configs, storage, logs and PID files.
	Dir string
	// ConfigDir is the docker CLI's configuration for this engine, for
	// DOCKER_CONFIG: cli-plugins/docker-buildx, and buildx's own state.
	ConfigDir string
	// ContainerdStore tells whether images are in containerd's image store
	// (the containerd-snapshotter feature) rather than the overlay2
	// graphdriver.
	ContainerdStore bool
	// Docker is the docker CLI binary that Command runs.
	Docker string

	containerdSock string
	bridge         string
	containerd     *process
	dockerd        *process
}

// StartEngine starts a Docker Engine named name (which keeps several apart
// in the stack's directory): on the overlay2 graphdriver, or with the
// containerd image store when containerdStore is set. It returns once the
// engine answers /_ping. Stop it with Stop; the stack's Stop stops it too.
//
// The stack's registry, on 127.0.0.1, needs no configuration: the engine
// treats loopback registries as insecure (plain HTTP) by default.
func (s *Stack) StartEngine(ctx context.Context, name string, containerdStore bool) (*Engine, error) {
	for _, bin := range []string{"dockerd", "containerd", "containerd-shim-runc-v2", "docker", "docker-buildx"} {
		if _, err := os.Stat(filepath.Join(s.ToolsDir, bin)); err != nil {
			return nil, errors.Errorf("%s is missing from %s: run hack/install-tools.sh", bin, s.ToolsDir)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, errors.New("runc is not installed: run hack/install-tools.sh")
	}
	dir := filepath.Join(s.Dir, "engine-"+name)
	e := &Engine{
		Name:            name,
		Dir:             dir,
		ConfigDir:       filepath.Join(dir, "docker-config"),
		ContainerdStore: containerdStore,
		Docker:          filepath.Join(s.ToolsDir, "docker"),
		containerdSock:  filepath.Join(dir, "containerd.sock"),
		bridge:          bridgeName(dir),
	}
	sock := filepath.Join(dir, "docker.sock")
	// Unix socket paths are limited to 108 bytes; containerd adds ".ttrpc".
	if len(e.containerdSock) > 100 {
		return nil, errors.Errorf("socket path %s is too long for a unix socket", e.containerdSock)
	}
	e.Host = "unix://" + sock
	if err := os.MkdirAll(filepath.Join(e.ConfigDir, "cli-plugins"), 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(filepath.Join(s.ToolsDir, "docker-buildx"), filepath.Join(e.ConfigDir, "cli-plugins", "docker-buildx")); err != nil && !os.IsExist(err) {
		return nil, err
	}
	if err := createBridge(e.bridge); err != nil {
		return nil, err
	}
	// containerd finds its shim, and dockerd finds runc, on PATH.
	env := append(os.Environ(), "PATH="+s.ToolsDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if err := e.startContainerd(ctx, env); err != nil {
		_ = deleteBridge(e.bridge)
		return nil, err
	}
	if err := e.startDockerd(ctx, env); err != nil {
		_ = e.containerd.stop()
		_ = deleteBridge(e.bridge)
		return nil, err
	}
	s.engines = append(s.engines, e)
	return e, nil
}

func (e *Engine) startContainerd(ctx context.Context, env []string) error {
	// Its own root, state and sockets; the CRI (and NRI, which would share
	// /var/run/nri) are not needed by dockerd.
	cfg := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(e.Dir, "containerd", "root"), filepath.Join(e.Dir, "containerd", "state"),
		e.containerdSock, e.containerdSock+".ttrpc", filepath.Join(e.Dir, "containerd", "opt"))
	cfgPath := filepath.Join(e.Dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := startProcessEnv(e.Dir, "containerd", env, filepath.Join(filepath.Dir(e.Docker), "containerd"), "--config", cfgPath)
	if err != nil {
		return err
	}
	e.containerd = p
	if err := waitFor(ctx, 30*time.Second, func() error {
		c, err := net.Dial("unix", e.containerdSock)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		_ = p.stop()
		return errors.Wrapf(err, "containerd of engine %s did not start, see %s", e.Name, p.logPath)
	}
	return nil
}

func (e *Engine) startDockerd(ctx context.Context, env []string) error {
	cfg := map[string]any{
		"features": map[string]bool{"containerd-snapshotter": e.ContainerdStore},
		// The builder's cache stays until the engine stops, as buildkitd's
		// does (NewDaemon).
		"builder": map[string]any{"gc": map[string]any{"enabled": false}},
	}
	if !e.ContainerdStore {
		cfg["storage-driver"] = "overlay2"
	}
	dt, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(e.Dir, "daemon.json")
	if err := os.WriteFile(cfgPath, dt, 0o644); err != nil {
		return err
	}
	execRoot := filepath.Join(e.Dir, "exec")
	p, err := startProcessEnv(e.Dir, "dockerd", env, filepath.Join(filepath.Dir(e.Docker), "dockerd"),
		"--config-file", cfgPath,
		"--data-root", filepath.Join(e.Dir, "data"),
		"--exec-root", execRoot,
		"--pidfile", filepath.Join(execRoot, "dockerd.pid"),
		"--host", e.Host,
		"--containerd", e.containerdSock,
		"--bridge", e.bridge,
		"--iptables=false",
		"--ip6tables=false",
		"--ip-forward=false",
		"--ip-masq=false",
		"--userland-proxy=false")
	if err != nil {
		return err
	}
	e.dockerd = p
	if err := waitFor(ctx, 60*time.Second, func() error { return e.ping(ctx) }); err != nil {
		_ = p.stop()
		return errors.Wrapf(err, "dockerd of engine %s did not start, see %s", e.Name, p.logPath)
	}
	return nil
}

// ping asks the engine's /_ping.
func (e *Engine) ping(ctx context.Context) error {
	return engineAPI(ctx, e.Host, http.MethodGet, "/_ping", nil)
}

// killContainers kills the engine's running containers, which dockerd would
// otherwise give their full stop timeout (10 s) when it stops.
func (e *Engine) killContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list []struct{ ID string }
	if engineAPI(ctx, e.Host, http.MethodGet, "/containers/json", &list) != nil {
		return
	}
	for _, c := range list {
		_ = engineAPI(ctx, e.Host, http.MethodPost, "/containers/"+c.ID+"/kill", nil)
	}
}

// engineAPI calls the Engine API on host (unix://...) and decodes the JSON
// answer into out, if not nil.
func engineAPI(ctx context.Context, host, method, path string, out any) error {
	sock := strings.TrimPrefix(host, "unix://")
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// Env returns the environment for the docker CLI on this engine: this
// process's, less whatever would pick another engine, builder or CLI
// configuration, plus DOCKER_HOST and DOCKER_CONFIG.
func (e *Engine) Env() []string {
	drop := map[string]bool{
		"DOCKER_HOST": true, "DOCKER_CONTEXT": true, "DOCKER_CONFIG": true,
		"DOCKER_TLS_VERIFY": true, "DOCKER_CERT_PATH": true, "DOCKER_API_VERSION": true,
		"BUILDX_BUILDER": true, "DOCKER_BUILDKIT": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env, "DOCKER_HOST="+e.Host, "DOCKER_CONFIG="+e.ConfigDir, "DOCKER_CLI_HINTS=false")
}

// Command returns the docker CLI with args, on this engine (Env).
func (e *Engine) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.Docker, args...)
	cmd.Env = e.Env()
	return cmd
}

// Run runs the docker CLI with args on this engine and returns its
// standard output; the error has its standard error too.
func (e *Engine) Run(ctx context.Context, args ...string) (string, error) {
	cmd := e.Command(ctx, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), errors.Wrapf(err, "docker %s: %s", strings.Join(args, " "), stderr.String())
	}
	return string(out), nil
}

// DockerdLog returns the path of dockerd's log.
func (e *Engine) DockerdLog() string { return e.dockerd.logPath }

// ContainerdLog returns the path of the engine's containerd log.
func (e *Engine) ContainerdLog() string { return e.containerd.logPath }

// Stop stops the engine and removes its directory.
func (e *Engine) Stop() error {
	err := e.stop()
	if rmErr := removeAll(e.Dir); err == nil {
		err = rmErr
	}
	return err
}

// stop kills the running containers, stops dockerd, then containerd, then
// kills what containers are left (shims and their processes), unmounts
// whatever is still mounted under the engine's directory and deletes the
// engine's bridge.
func (e *Engine) stop() error {
	e.killContainers()
	var firstErr error
	for _, p := range []*process{e.dockerd, e.containerd} {
		if p == nil {
			continue
		}
		if err := p.stop(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	killShims(e.containerdSock)
	if err := unmountUnder(e.Dir); err != nil && firstErr == nil {
		firstErr = err
	}
	if err := deleteBridge(e.bridge); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// bridgeName is the name of the bridge of the engine in dir: an interface
// name has at most 15 bytes.
func bridgeName(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "pfe" + hex.EncodeToString(sum[:])[:10]
}

// createBridge adds a bridge interface, without an address: dockerd gives
// it one from its default address pools, clear of the routes in use.
func createBridge(name string) error {
	if out, err := exec.Command("ip", "link", "add", "name", name, "type", "bridge").CombinedOutput(); err != nil {
		if strings.Contains(string(out), "File exists") {
			return nil
		}
		return errors.Wrapf(err, "creating bridge %s (iproute2, from hack/install-tools.sh): %s", name, out)
	}
	return nil
}

// deleteBridge deletes a bridge that createBridge added, if it is there.
func deleteBridge(name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); os.IsNotExist(err) {
		return nil
	}
	if out, err := exec.Command("ip", "link", "delete", name, "type", "bridge").CombinedOutput(); err != nil {
		return errors.Wrapf(err, "deleting bridge %s: %s", name, out)
	}
	return nil
}

// killShims kills, with everything they started, the runc shims that a
// containerd on address left behind (they run in process groups of their
// own, so stopping containerd does not stop them), and removes their
// sockets from /run/containerd/s.
func killShims(address string) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	children := map[int][]int{}
	var shims []int
	var sockets []string
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(p, "stat")); err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
				if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
					if ppid, err := strconv.Atoi(f[1]); err == nil {
						children[ppid] = append(children[ppid], pid)
					}
				}
			}
		}
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if !strings.HasSuffix(args[0], "containerd-shim-runc-v2") {
			continue
		}
		flags := map[string]string{}
		for i := 1; i+1 < len(args); i++ {
			if strings.HasPrefix(args[i], "-") {
				flags[args[i]] = args[i+1]
			}
		}
		if flags["-address"] != address {
			continue
		}
		shims = append(shims, pid)
		// As containerd's shim.SocketAddress names them.
		for _, p := range []string{filepath.Join(address, flags["-namespace"], flags["-id"]), filepath.Join(address, flags["-namespace"], flags["-id"], "debug")} {
			sum := sha256.Sum256([]byte(p))
			sockets = append(sockets, filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:])))
		}
	}
	var kill func(pid int)
	kill = func(pid int) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for _, c := range children[pid] {
			kill(c)
		}
	}
	for _, pid := range shims {
		kill(pid)
	}
	for _, sock := range sockets {
		_ = os.Remove(sock)
	}
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var firstErr error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && firstErr == nil {
			firstErr = errors.Wrapf(err, "unmounting %s", mp)
		}
	}
	return firstErr
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
