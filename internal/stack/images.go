package stack

import (
	"context"
	"encoding/json"
	"fmt"
	pllb "github.com/patchfile/patchfile/llb"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/tonistiigi/fsutil"
)

// baseTime pins every timestamp of the base image, so it has one digest:
// the time the frontend pins too.
var baseTime = pllb.PinnedTime

// PushBaseImage makes a small base image from Debian's busybox-static
// (/bin/busybox with its applets as symlinks, /etc/passwd with root and
// app:1000, /tmp) and pushes it as ref. It returns ref pinned by digest.
func (s *Stack) PushBaseImage(ctx context.Context, d *Daemon, ref string) (string, error) {
	return s.pushBusybox(ctx, d, ref, nil)
}

// PushBaseIndex pushes the same busybox base for linux/amd64 and
// linux/arm64 as one image index (arm64's busybox comes from
// hack/install-tools.sh) and returns ref pinned by the index digest, as
// users pin multi-platform bases.
func (s *Stack) PushBaseIndex(ctx context.Context, d *Daemon, ref string) (string, error) {
	return s.pushBusybox(ctx, d, ref, []ocispecs.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64"},
	})
}

// busyboxFor is where each platform's busybox binary is.
var busyboxFor = map[string]string{
	"amd64": "/bin/busybox",
	"arm64": filepath.Join(ToolsDir(), "busybox-arm64"),
}

// pushBusybox pushes the busybox base for each platform, as one manifest
// when platforms is nil (linux/amd64) and as an index otherwise.
func (s *Stack) pushBusybox(ctx context.Context, d *Daemon, ref string, plats []ocispecs.Platform) (string, error) {
	index := plats != nil
	if !index {
		plats = []ocispecs.Platform{{OS: "linux", Architecture: "amd64"}}
	}
	mounts := map[string]fsutil.FS{}
	for _, p := range plats {
		rootfs := filepath.Join(s.Dir, "base-rootfs-"+p.Architecture)
		if err := makeBusyboxRootfs(rootfs, busyboxFor[p.Architecture]); err != nil {
			return "", err
		}
		fs, err := fsutil.NewFS(rootfs)
		if err != nil {
			return "", err
		}
		mounts["rootfs-"+p.Architecture] = fs
	}
	c, err := d.Client(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	t := baseTime
	resp, err := c.Build(ctx, client.SolveOpt{
		LocalMounts: mounts,
		Exports: []client.ExportEntry{{Type: client.ExporterImage, Attrs: map[string]string{
			"name": ref, "push": "true",
		}}},
	}, "", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		res := gateway.NewResult()
		var exp exptypes.Platforms
		for _, p := range plats {
			src := llb.Local("rootfs-" + p.Architecture)
			st := llb.Scratch().File(llb.Copy(src, "/", "/", &llb.CopyInfo{CopyDirContentsOnly: true, CreatedTime: &t}))
			def, err := st.Marshal(ctx, llb.Platform(p))
			if err != nil {
				return nil, err
			}
			r, err := gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
			if err != nil {
				return nil, err
			}
			img := dockerspec.DockerOCIImage{}
			img.Created = &t
			img.Architecture, img.OS = p.Architecture, p.OS
			img.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
			img.Config.Cmd = []string{"sh"}
			img.History = []ocispecs.History{{Created: &t, CreatedBy: "busybox-static from Debian", Comment: "patchfile test stack"}}
			dt, err := json.Marshal(img)
			if err != nil {
				return nil, err
			}
			if !index {
				res.SetRef(r.Ref)
				res.AddMeta(exptypes.ExporterImageConfigKey, dt)
				return res, nil
			}
			id := platforms.FormatAll(p)
			res.AddRef(id, r.Ref)
			res.AddMeta(exptypes.ExporterImageConfigKey+"/"+id, dt)
			exp.Platforms = append(exp.Platforms, exptypes.Platform{ID: id, Platform: p})
		}
		dt, err := json.Marshal(exp)
		if err != nil {
			return nil, err
		}
		res.AddMeta(exptypes.ExporterPlatformsKey, dt)
		return res, nil
	}, nil)
	if err != nil {
		return "", errors.Wrap(err, "building the base image")
	}
	return pinned(ref, resp)
}

func pinned(ref string, resp *client.SolveResponse) (string, error) {
	dgst := resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if dgst == "" {
		return "", errors.New("the exporter returned no digest")
	}
	name, _, _ := strings.Cut(ref, "@")
	return name + "@" + dgst, nil
}

// makeBusyboxRootfs lays out a busybox root filesystem in dir, with the
// busybox binary at path (the applet list comes from the host's busybox).
func makeBusyboxRootfs(dir, path string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, d := range []string{"bin", "etc", "tmp", "root", "usr/bin", "var"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	busybox, err := os.ReadFile(path)
	if err != nil {
		return errors.Wrapf(err, "%s: busybox-static is not installed (hack/install-tools.sh installs it)", path)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), busybox, 0o755); err != nil {
		return err
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return errors.Wrap(err, "listing busybox applets")
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// FrontendVersion is the version and revision the test stack's frontend
// image is built with, from the repository's git: `git describe --tags
// --always --dirty` (a tag, or a short commit, marked when the tree has
// changes) and `git rev-parse HEAD`. Without git or a repository it is
// "dev" and no revision, as a plain `go build` gives.
func FrontendVersion(ctx context.Context, repoRoot string) (version, revision string) {
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repoRoot
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	version, revision = git("describe", "--tags", "--always", "--dirty"), git("rev-parse", "HEAD")
	if version == "" {
		version = "dev"
	}
	return version, revision
}

// FrontendGCFlags are the compiler flags of the frontend binary, the same
// as the Dockerfile's build stage gives it (TestDockerfileBuildsAsTheStack
// checks). Every cold builder pulls the frontend image before it can start
// a build, so its size counts: the dependencies (BuildKit's client, gRPC,
// protobuf, containerd, OpenTelemetry) are compiled without inlining, which
// takes the compressed image from 6.8 to 6.3 MiB on amd64. They are most of
// the binary but off the hot paths: the standard library and the
// frontend's own packages, which walk, hash and compare the files, keep
// inlining. Converting and planning (BenchmarkParseConvert,
// BenchmarkPlanPatch) take about 1.5 ms longer per build, less than the
// pull saves on any real network. The last matching -gcflags wins, so
// "std=" and the module's "...=" lift the "all=-l" for those packages.
var FrontendGCFlags = []string{"-gcflags=all=-l", "-gcflags=std=", "-gcflags=github.com/patchfile/patchfile/...="}

// BuildFrontendImage compiles the frontend and pushes its image as ref,
// using the project's Dockerfile with BuildKit's own Dockerfile frontend
// (the prebuilt-binary variant: no Go toolchain image is reachable here).
// With platforms ("linux/arm64", ...) it cross-compiles for each and pushes
// an index; without, it builds for this machine. The binary and the image's
// labels get FrontendVersion's version and revision, as the Dockerfile's
// VERSION and REVISION build args give them. It returns ref pinned by
// digest.
func (s *Stack) BuildFrontendImage(ctx context.Context, d *Daemon, repoRoot, ref string, plats ...string) (string, error) {
	if len(plats) == 0 {
		plats = []string{"linux/" + runtime.GOARCH}
	}
	version, revision := FrontendVersion(ctx, repoRoot)
	const pkg = "github.com/patchfile/patchfile/version"
	ldflags := fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Revision=%s", pkg, version, pkg, revision)
	args := append(append([]string{"build", "-trimpath"}, FrontendGCFlags...), "-ldflags="+ldflags)
	for _, p := range plats {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			return "", errors.Errorf("platform %q is not os/arch", p)
		}
		// The Dockerfile's prebuilt stage copies bin/$TARGETOS-$TARGETARCH.
		bin := filepath.Join(repoRoot, "bin", goos+"-"+goarch, "patchfile-frontend")
		build := exec.CommandContext(ctx, "go", append(args, "-o", bin, "./cmd/frontend")...)
		build.Dir = repoRoot
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		if out, err := build.CombinedOutput(); err != nil {
			return "", errors.Wrapf(err, "go build ./cmd/frontend for %s: %s", p, out)
		}
	}
	c, err := d.Client(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	fs, err := fsutil.NewFS(repoRoot)
	if err != nil {
		return "", err
	}
	resp, err := c.Solve(ctx, nil, client.SolveOpt{
		Frontend: "dockerfile.v0",
		FrontendAttrs: map[string]string{
			"filename":           "Dockerfile",
			"build-arg:BINARY":   "prebuilt",
			"build-arg:VERSION":  version,
			"build-arg:REVISION": revision,
			"platform":           strings.Join(plats, ","),
		},
		LocalMounts: map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports:     []client.ExportEntry{{Type: client.ExporterImage, Attrs: frontendExport(ref)}},
	}, nil)
	if err != nil {
		return "", errors.Wrap(err, "building the frontend image")
	}
	return pinned(ref, resp)
}

// Ref returns a reference to repo:tag in the stack's registry.
func (s *Stack) Ref(repo, tag string) string {
	return fmt.Sprintf("%s/%s:%s", s.Registry, repo, tag)
}

// FrontendImageCompression is how the frontend image's layer is
// compressed, as the release workflow pushes it (its `outputs:` line has
// these attributes; TestReleaseWorkflowCompressesAsTheStack checks):
// zstd at its best level. Every cold builder pulls the image before
// anything else, so its bytes and its unpacking are on the path of every
// deploy: against gzip, the layer is 11% smaller (6.05 MB against 6.77 MB)
// and a cold builder pulled and unpacked it in 0.24 s against 0.29 s
// (medians of 6 alternating rounds on loopback). Pulling a zstd layer
// needs BuildKit 0.10 or Docker Engine 23 and later.
var FrontendImageCompression = map[string]string{
	"compression": "zstd", "compression-level": "19", "force-compression": "true", "oci-mediatypes": "true",
}

// frontendExport is the image exporter's attributes for the frontend
// image at ref.
func frontendExport(ref string) map[string]string {
	a := map[string]string{"name": ref, "push": "true"}
	maps.Copy(a, FrontendImageCompression)
	return a
}
