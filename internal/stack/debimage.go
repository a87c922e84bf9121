package stack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/tonistiigi/fsutil"
)

// DebianImage describes a base image made from Debian packages of this
// machine's apt sources: the packages and their dependency closure (no
// Recommends), each extracted with dpkg-deb -x (no maintainer scripts), on
// top of the busybox rootfs of PushBaseImage (which gives /bin/sh).
type DebianImage struct {
	// Packages are installed with their dependencies, as apt would on an
	// empty system.
	Packages []string
	// Skip names packages of the closure that are left out: those only
	// their maintainer scripts need (dpkg, debconf, ...).
	Skip []string
	// Env is added to the config after PATH.
	Env []string
	// Tarballs are extracted into the rootfs after the packages.
	Tarballs []Tarball
	// CreatedBy is the base layer's history entry.
	CreatedBy string
}

// Tarball is a gzipped tar from a registry, pinned by its integrity, like
// the npm CLI's own package.
type Tarball struct {
	URL string
	// Integrity is the registry's "sha512-<base64>" of the file.
	Integrity string
	// Dir is where its contents go in the rootfs; StripPrefix is removed
	// from every entry first ("package/" for npm packages).
	Dir, StripPrefix string
	// Links are symlinks to create (path in the rootfs -> target).
	Links map[string]string
}

// NodeBase is Node.js from Debian (bookworm's nodejs 18 and libnode; the
// nodesource nodejs 20 installed on some machines has no apt source to
// download it from) with npm 10 from the npm registry, which Debian splits
// into ~400 packages and a compiler toolchain. Debian's nodejs runs npm 10
// (engines: ^18.17.0).
var NodeBase = DebianImage{
	Packages: []string{"nodejs"},
	Env: []string{
		// This machine's TLS trust (PushDebianImage copies the host's CA
		// bundle into the image), as ca-certificates' own script would
		// generate it here: npm ci reaches the registry through it.
		"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
	},
	Tarballs: []Tarball{{
		URL:         "https://registry.npmjs.org/npm/-/npm-10.9.2.tgz",
		Integrity:   "sha512-iriPEPIkoMYUy3F6f3wwSZAU93E0Eg6cHwIR6jzzOXWSy+SD/rOODEs74cVONHKSx2obXtuUoyidVEhISrisgQ==",
		Dir:         "usr/lib/node_modules/npm",
		StripPrefix: "package/",
		Links: map[string]string{
			"usr/bin/npm": "../lib/node_modules/npm/bin/npm-cli.js",
			"usr/bin/npx": "../lib/node_modules/npm/bin/npx-cli.js",
		},
	}},
	CreatedBy: "nodejs from Debian, npm 10.9.2 from the npm registry, busybox-static",
}

// PythonBase is Python 3 and pip from Debian.
var PythonBase = DebianImage{
	Packages:  []string{"python3", "python3-pip"},
	Skip:      []string{"dpkg", "tar", "debconf", "openssl", "ca-certificates"},
	Env:       []string{"PYTHONDONTWRITEBYTECODE=1"},
	CreatedBy: "python3 and python3-pip from Debian, busybox-static",
}

// debCacheDir is where downloaded packages are kept between runs, next to
// the tools: keyed by name, version and architecture, so a warm machine
// needs neither apt nor the network.
func debCacheDir() string {
	return filepath.Join(filepath.Dir(ToolsDir()), "debs")
}

// debPackage is one package of a closure.
type debPackage struct {
	Name, Version, Arch string
}

// file is the package's name in the cache (apt-get download's own naming,
// with the epoch's colon escaped).
func (p debPackage) file() string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// PushDebianImage builds the rootfs that spec describes and pushes it as
// ref (linux/amd64), returning ref pinned by digest. Every file carries the
// same pinned time, so the same packages give the same digest.
func (s *Stack) PushDebianImage(ctx context.Context, d *Daemon, ref string, spec DebianImage) (string, error) {
	pkgs, err := debClosure(ctx, spec.Packages, spec.Skip)
	if err != nil {
		return "", err
	}
	debs, err := fetchDebs(ctx, pkgs)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(ref))
	rootfs := filepath.Join(s.Dir, "debimage-"+hex.EncodeToString(sum[:4]))
	if err := makeBusyboxRootfs(rootfs, "/bin/busybox"); err != nil {
		return "", err
	}
	for _, deb := range debs {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, rootfs).CombinedOutput(); err != nil {
			return "", errors.Wrapf(err, "dpkg-deb -x %s: %s", deb, out)
		}
	}
	for _, tb := range spec.Tarballs {
		if err := extractTarball(ctx, tb, rootfs); err != nil {
			return "", err
		}
	}
	if err := finishRootfs(rootfs); err != nil {
		return "", err
	}
	img := dockerspec.DockerOCIImage{}
	img.Created = &baseTime
	img.Architecture, img.OS = "amd64", "linux"
	img.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, spec.Env...)
	img.Config.Cmd = []string{"sh"}
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name+"="+p.Version)
	}
	img.History = []ocispecs.History{{Created: &baseTime, CreatedBy: spec.CreatedBy,
		Comment: "patchfile test stack: " + strings.Join(names, " ")}}
	return s.pushRootfs(ctx, d, ref, rootfs, img)
}

// finishRootfs removes what an image needs not (documentation, manual
// pages, translations) and adds what the packages' maintainer scripts or
// essential packages would have: /usr/bin/env for #! lines, and the host's
// CA bundle.
func finishRootfs(rootfs string) error {
	for _, dir := range []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
		"usr/share/lintian", "usr/share/bug", "usr/share/doc-base", "usr/share/bash-completion"} {
		if err := os.RemoveAll(filepath.Join(rootfs, dir)); err != nil {
			return err
		}
	}
	env := filepath.Join(rootfs, "usr/bin/env")
	if _, err := os.Lstat(env); os.IsNotExist(err) {
		if err := os.MkdirAll(filepath.Dir(env), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("/bin/busybox", env); err != nil {
			return err
		}
	}
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		dst := filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, ca, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// debClosure lists the packages apt would install on an empty system for
// names, without Recommends, minus skip. apt-get computes it in simulation
// against an empty dpkg status, so packages installed on this machine
// (from sources that may be gone) play no part. The answer is kept in the
// cache: a warm machine pins the same versions, offline.
func debClosure(ctx context.Context, names, skip []string) ([]debPackage, error) {
	dir := debCacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	key := sha256.Sum256([]byte(strings.Join(names, " ") + "\x00" + strings.Join(skip, " ")))
	cached := filepath.Join(dir, "closure-"+hex.EncodeToString(key[:8])+".json")
	var pkgs []debPackage
	if dt, err := os.ReadFile(cached); err == nil && json.Unmarshal(dt, &pkgs) == nil && len(pkgs) > 0 {
		return pkgs, nil
	}
	status := filepath.Join(dir, "empty-status")
	if err := os.WriteFile(status, nil, 0o644); err != nil {
		return nil, err
	}
	args := []string{"-q", "-s", "-o", "Dir::State::Status=" + status, "-o", "Debug::NoLocking=1",
		"-o", "APT::Install-Recommends=false", "-o", "APT::Install-Suggests=false", "install"}
	out, err := exec.CommandContext(ctx, "apt-get", append(args, names...)...).CombinedOutput()
	if err != nil {
		return nil, errors.Wrapf(err, "apt-get -s install %s: %s", strings.Join(names, " "), out)
	}
	// Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != "Inst" || !strings.HasPrefix(f[2], "(") {
			continue
		}
		p := debPackage{Name: f[1], Version: strings.TrimPrefix(f[2], "(")}
		for _, w := range f[3:] {
			if strings.HasPrefix(w, "[") {
				p.Arch = strings.Trim(w, "[])")
				break
			}
		}
		if p.Arch == "" || slices.Contains(skip, p.Name) {
			continue
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		return nil, errors.Errorf("apt-get -s install %s listed no package: %s", strings.Join(names, " "), out)
	}
	dt, err := json.MarshalIndent(pkgs, "", "  ")
	if err != nil {
		return nil, err
	}
	return pkgs, writeFileAtomic(cached, dt)
}

// writeFileAtomic writes a cache file so that a concurrent run reads either
// nothing or all of it.
func writeFileAtomic(path string, dt []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(dt); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// fetchDebs returns the cached .deb of every package, downloading the
// missing ones with one apt-get download.
func fetchDebs(ctx context.Context, pkgs []debPackage) ([]string, error) {
	dir := debCacheDir()
	var paths, missing []string
	for _, p := range pkgs {
		path := filepath.Join(dir, p.file())
		paths = append(paths, path)
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, p.Name+":"+p.Arch+"="+p.Version)
		}
	}
	if len(missing) == 0 {
		return paths, nil
	}
	tmp, err := os.MkdirTemp(dir, "download-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-q", "download"}, missing...)...)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, errors.Wrapf(err, "apt-get download (cache %s): %s", dir, out)
	}
	for _, p := range pkgs {
		dst := filepath.Join(dir, p.file())
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		// "all" packages are named _all.deb whatever arch apt was asked for.
		got, _ := filepath.Glob(filepath.Join(tmp, p.Name+"_*.deb"))
		if len(got) != 1 {
			return nil, errors.Errorf("apt-get download gave %v for %s", got, p.Name)
		}
		if err := os.Rename(got[0], dst); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// extractTarball fetches tb (or takes it from the cache), checks its
// integrity and unpacks it into the rootfs.
func extractTarball(ctx context.Context, tb Tarball, rootfs string) error {
	dir := debCacheDir()
	path := filepath.Join(dir, filepath.Base(tb.URL))
	dt, err := os.ReadFile(path)
	if err != nil || checkIntegrity(dt, tb.Integrity) != nil {
		if dt, err = download(ctx, tb.URL); err != nil {
			return err
		}
		if err := checkIntegrity(dt, tb.Integrity); err != nil {
			return errors.Wrap(err, tb.URL)
		}
		if err := writeFileAtomic(path, dt); err != nil {
			return err
		}
	}
	dst := filepath.Join(rootfs, tb.Dir)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	args := []string{"-xzf", path, "-C", dst, "--no-same-owner"}
	if n := strings.Count(strings.Trim(tb.StripPrefix, "/"), "/"); tb.StripPrefix != "" {
		args = append(args, fmt.Sprintf("--strip-components=%d", n+1))
	}
	if out, err := exec.CommandContext(ctx, "tar", args...).CombinedOutput(); err != nil {
		return errors.Wrapf(err, "tar %v: %s", args, out)
	}
	for link, target := range tb.Links {
		p := filepath.Join(rootfs, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		_ = os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	return nil
}

func checkIntegrity(dt []byte, integrity string) error {
	sum := sha512.Sum512(dt)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != integrity {
		return errors.Errorf("integrity %s, want %s", got, integrity)
	}
	return nil
}

func download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, errors.Wrapf(err, "fetching %s", url)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.Errorf("fetching %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// pushRootfs pushes rootfs as a one-layer linux/amd64 image with config
// img, every entry at the pinned base time.
func (s *Stack) pushRootfs(ctx context.Context, d *Daemon, ref, rootfs string, img dockerspec.DockerOCIImage) (string, error) {
	fs, err := fsutil.NewFS(rootfs)
	if err != nil {
		return "", err
	}
	cfg, err := json.Marshal(img)
	if err != nil {
		return "", err
	}
	c, err := d.Client(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	t := baseTime
	resp, err := c.Build(ctx, client.SolveOpt{
		LocalMounts: map[string]fsutil.FS{"rootfs": fs},
		Exports: []client.ExportEntry{{Type: client.ExporterImage, Attrs: map[string]string{
			"name": ref, "push": "true",
		}}},
	}, "", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		st := llb.Scratch().File(llb.Copy(llb.Local("rootfs"), "/", "/", &llb.CopyInfo{CopyDirContentsOnly: true, CreatedTime: &t}))
		def, err := st.Marshal(ctx, llb.LinuxAmd64)
		if err != nil {
			return nil, err
		}
		r, err := gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return nil, err
		}
		res := gateway.NewResult()
		res.SetRef(r.Ref)
		res.AddMeta(exptypes.ExporterImageConfigKey, cfg)
		return res, nil
	}, nil)
	if err != nil {
		return "", errors.Wrapf(err, "building the image %s", ref)
	}
	return pinned(ref, resp)
}
