package stack

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEngine is the smoke test of StartEngine: an engine on overlay2 and
// one with the containerd image store, side by side, each building with
// `docker buildx build --builder default`, pushing to and pulling from the
// stack's registry, and running a container.
func TestEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real components: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the Docker Engine needs root")
	}
	for _, bin := range []string{"dockerd", "containerd", "docker", "registry", "buildkitd"} {
		if _, err := os.Stat(filepath.Join(ToolsDir(), bin)); err != nil {
			t.Skipf("%s is not installed: run hack/install-tools.sh", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	s, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	d, err := s.NewDaemon(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	busybox, err := s.PushBaseImage(ctx, d, s.Ref("busybox", "1"))
	if err != nil {
		t.Fatal(err)
	}

	ctxDir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "a\n")
	write("Dockerfile", "FROM scratch\nCOPY a /a\n")
	write("run.Dockerfile", "FROM "+busybox+"\nRUN echo built > /built\n")
	write("link.Dockerfile", "FROM "+busybox+"\nCOPY --link a /a\n")

	// Both engines run at once, side by side.
	for _, tc := range []struct {
		name            string
		containerdStore bool
		driver          string
	}{
		{"overlay2", false, "overlay2"},
		{"containerd", true, "overlayfs"},
	} {
		start := time.Now()
		e, err := s.StartEngine(ctx, tc.name, tc.containerdStore)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("engine %s started in %s", tc.name, time.Since(start).Round(time.Millisecond))
		t.Cleanup(func() {
			if err := e.Stop(); err != nil {
				t.Error(err)
			}
		})
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			docker := func(args ...string) string {
				t.Helper()
				start := time.Now()
				out, err := e.Run(ctx, args...)
				if err != nil {
					t.Fatalf("%v\ndockerd log: %s", err, e.DockerdLog())
				}
				t.Logf("docker %s (%s)", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
				return out
			}
			if out := docker("version", "--format", "{{.Server.Version}}"); strings.TrimSpace(out) != "28.5.2" {
				t.Errorf("server version %q", out)
			}
			if out := strings.TrimSpace(docker("info", "--format", "{{.Driver}}")); out != tc.driver {
				t.Errorf("storage driver %q, want %q", out, tc.driver)
			}
			t.Logf("driver status: %s", docker("info", "--format", "{{json .DriverStatus}}"))
			ref := s.Ref("x-"+tc.name, "1")
			docker("buildx", "build", "--builder", "default", "--progress", "plain",
				"--output", "type=image,name="+ref+",push=true", ctxDir)
			resp, err := http.Head("http://" + s.Registry + "/v2/x-" + tc.name + "/manifests/1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("pushed manifest: %s", resp.Status)
			}
			docker("buildx", "build", "--builder", "default", "--progress", "plain",
				"--load", "-t", "local-"+tc.name, ctxDir)
			docker("image", "inspect", "local-"+tc.name)
			if out := docker("run", "--rm", busybox, "echo", "hi"); strings.TrimSpace(out) != "hi" {
				t.Errorf("docker run: %q", out)
			}
			runRef := s.Ref("run-"+tc.name, "1")
			docker("buildx", "build", "--builder", "default", "--progress", "plain",
				"-f", filepath.Join(ctxDir, "run.Dockerfile"), "--push", "-t", runRef, ctxDir)
			docker("pull", runRef)
			if out := docker("run", "--rm", runRef, "cat", "/built"); strings.TrimSpace(out) != "built" {
				t.Errorf("docker run: %q", out)
			}
			// COPY --link on the graphdriver: BuildKit in dockerd has no
			// merge op there and copies as a plain COPY.
			out, err := e.Command(ctx, "buildx", "build", "--builder", "default", "--progress", "plain",
				"-f", filepath.Join(ctxDir, "link.Dockerfile"), "--load", "-t", "link-"+tc.name, ctxDir).CombinedOutput()
			t.Logf("COPY --link: err=%v\n%s", err, out)
		})
	}
}
