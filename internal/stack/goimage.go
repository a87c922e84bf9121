package stack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// goRootParts are the parts of GOROOT a build needs: the go command and its
// tools, the standard library's sources, and what they read. The tests,
// documentation and API lists stay out (a third of the tree).
var goRootParts = []string{"bin", "pkg/tool", "pkg/include", "src", "lib", "go.env", "VERSION"}

// PushGoImage pushes an image with this machine's Go toolchain (the one
// that runs the tests: no public registry is reachable for a golang image)
// at /usr/local/go, on the busybox rootfs of PushBaseImage, with the host's
// CA bundle so that the go command reaches the module proxy.
func (s *Stack) PushGoImage(ctx context.Context, d *Daemon, ref string) (string, error) {
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return "", errors.Wrap(err, "go env GOROOT")
	}
	src := strings.TrimSpace(string(goroot))
	sum := sha256.Sum256([]byte(ref))
	rootfs := filepath.Join(s.Dir, "goimage-"+hex.EncodeToString(sum[:4]))
	if err := makeBusyboxRootfs(rootfs, "/bin/busybox"); err != nil {
		return "", err
	}
	dst := filepath.Join(rootfs, "usr/local/go")
	for _, part := range goRootParts {
		from, to := filepath.Join(src, part), filepath.Join(dst, part)
		if _, err := os.Stat(from); os.IsNotExist(err) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return "", err
		}
		if out, err := exec.CommandContext(ctx, "cp", "-a", from, to).CombinedOutput(); err != nil {
			return "", errors.Wrapf(err, "copying %s: %s", from, out)
		}
	}
	if err := finishRootfs(rootfs); err != nil {
		return "", err
	}
	version, err := os.ReadFile(filepath.Join(src, "VERSION"))
	if err != nil {
		return "", err
	}
	img := dockerspec.DockerOCIImage{}
	img.Created = &baseTime
	img.Architecture, img.OS = runtime.GOARCH, "linux"
	img.Config.Env = []string{
		"PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"GOTOOLCHAIN=local", "HOME=/root",
	}
	img.Config.Cmd = []string{"sh"}
	first, _, _ := strings.Cut(string(version), "\n")
	img.History = []ocispecs.History{{Created: &baseTime, CreatedBy: first + " from this machine's GOROOT, busybox-static"}}
	return s.pushRootfs(ctx, d, ref, rootfs, img)
}

// PushScannerImage pushes the tests' SBOM generator (internal/testscanner)
// as an image whose entrypoint runs it, as BuildKit runs a generator
// (attest:sbom's generator=).
func (s *Stack) PushScannerImage(ctx context.Context, d *Daemon, repoRoot, ref string) (string, error) {
	return s.pushBinaryImage(ctx, d, ref, "scannerimage", "/bin/testscanner", "internal/testscanner", func(dst string) error {
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dst, "./internal/testscanner")
		build.Dir = repoRoot
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := build.CombinedOutput(); err != nil {
			return errors.Wrapf(err, "go build ./internal/testscanner: %s", out)
		}
		return nil
	})
}

// PushFrontendAt pushes the frontend's binary (as BuildFrontendImage built
// it, for this machine's platform) at binPath in an image of its own whose
// entrypoint names it: a frontend image laid out otherwise than the
// repository's Dockerfile lays it out.
func (s *Stack) PushFrontendAt(ctx context.Context, d *Daemon, repoRoot, ref, binPath string) (string, error) {
	return s.pushBinaryImage(ctx, d, ref, "frontend-at", binPath, "the frontend at "+binPath, func(dst string) error {
		src := filepath.Join(repoRoot, "bin", "linux-"+runtime.GOARCH, "patchfile-frontend")
		if out, err := exec.CommandContext(ctx, "cp", src, dst).CombinedOutput(); err != nil {
			return errors.Wrapf(err, "copying %s: %s", src, out)
		}
		return nil
	})
}

// pushBinaryImage pushes an image of one static binary at binPath, its
// entrypoint, which place writes (at the path it is given) into a rootfs
// made afresh in the stack's directory under name.
func (s *Stack) pushBinaryImage(ctx context.Context, d *Daemon, ref, name, binPath, createdBy string, place func(dst string) error) (string, error) {
	rootfs := filepath.Join(s.Dir, name)
	if err := os.RemoveAll(rootfs); err != nil {
		return "", err
	}
	dst := filepath.Join(rootfs, filepath.FromSlash(binPath))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if err := place(dst); err != nil {
		return "", err
	}
	img := dockerspec.DockerOCIImage{}
	img.Created = &baseTime
	img.Architecture, img.OS = runtime.GOARCH, "linux"
	img.Config.Entrypoint = []string{binPath}
	img.History = []ocispecs.History{{Created: &baseTime, CreatedBy: createdBy}}
	return s.pushRootfs(ctx, d, ref, rootfs, img)
}
