package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	dockerfile "github.com/moby/buildkit/frontend/dockerfile/builder"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/patchfile/patchfile/frontend"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/stretchr/testify/require"
	"github.com/tonistiigi/fsutil"
)

// build describes one build of a Patchfile in a context directory.
type build struct {
	dir    string            // the context, holding the Patchfile
	file   string            // the Patchfile's name in dir; "Patchfile" if empty
	args   map[string]string // build args
	output string            // the image to push
	daemon *stack.Daemon     // the builder; env.warm if nil
	// exporterAttrs are extra image exporter attributes.
	exporterAttrs map[string]string
	// secrets are given to RUN --mount=type=secret (in-process builds).
	secrets map[string][]byte
	// keepSyntax leaves the Patchfile's `# syntax=` line as written
	// (buildx builds otherwise point it at the test registry's frontend).
	keepSyntax bool
	// platforms is the --platform list ("linux/amd64,linux/arm64"); empty
	// builds the daemon's own platform.
	platforms string
	// frontendImage is the frontend buildctl runs, and the image an
	// in-process build with hashInBuilder hashes with; env.frontendImage
	// if "".
	frontendImage string
	// hashInBuilder gives an in-process build the frontend image (as the
	// gateway gives it to the frontend it runs) and PATCH_HASH_STEP=always,
	// so that it hashes the context in a build step, as buildctl and buildx
	// builds do for trees over the small-tree bound, instead of through the
	// gateway.
	hashInBuilder bool
	// flags are extra flags of the CLI entry points, as that CLI spells
	// them (buildctl --export-cache, buildx --cache-to).
	flags []string
	// logins are registry credentials (host -> user:password) that buildx
	// finds in its DOCKER_CONFIG, as after `docker login`.
	logins map[string]string
	// dockerfileFrontend runs BuildKit's Dockerfile frontend in process
	// instead of the Patchfile's, on file (a Dockerfile), for comparisons.
	dockerfileFrontend bool
	// requestID makes an in-process build a subrequest (--call): it
	// exports nothing, and its result's metadata is result.meta.
	requestID string
	// noDefaultAttestations turns off buildx's default provenance, for a
	// buildx build whose test is about a single-manifest image (and says
	// so); buildx builds otherwise push what users get, an index.
	noDefaultAttestations bool
}

// result is what a build produced.
type result struct {
	digest string // the pushed manifest's digest
	output string // combined progress output, when the entry point gives one
	// meta is a subrequest's result metadata (build.requestID).
	meta map[string][]byte
}

// entryPoint is one of the ways users run the frontend.
type entryPoint struct {
	name  string
	build func(t *testing.T, b build) (result, error)
}

var entryPoints = []entryPoint{
	{"client", buildInProcess},
	{"buildctl", buildWithBuildctl},
	{"buildx", buildWithBuildx},
}

func (b build) withDefaults() build {
	if b.file == "" {
		b.file = "Patchfile"
	}
	if b.daemon == nil {
		b.daemon = env.warm
	}
	if b.frontendImage == "" {
		b.frontendImage = env.frontendImage
	}
	return b
}

func (b build) exportAttrs() map[string]string {
	attrs := map[string]string{"name": b.output, "push": "true"}
	maps.Copy(attrs, b.exporterAttrs)
	return attrs
}

// outputFlag is the image exporter as the CLIs' --output flag takes it.
func (b build) outputFlag() string {
	var attrs []string
	for k, v := range b.exportAttrs() {
		attrs = append(attrs, k+"="+v)
	}
	slices.Sort(attrs)
	return "type=image," + strings.Join(attrs, ",")
}

// buildInProcess runs frontend.Build in this process through client.Build.
func buildInProcess(t *testing.T, b build) (result, error) {
	b = b.withDefaults()
	ctx := context.Background()
	c, err := b.daemon.Client(ctx)
	require.NoError(t, err)
	defer c.Close()
	fs, err := fsutil.NewFS(b.dir)
	require.NoError(t, err)
	attrs := map[string]string{"filename": b.file}
	if b.hashInBuilder {
		attrs["source"] = b.frontendImage
		attrs["build-arg:PATCH_HASH_STEP"] = "always"
	}
	if b.platforms != "" {
		attrs["platform"] = b.platforms
	}
	for k, v := range b.args {
		attrs["build-arg:"+k] = v
	}
	var out bytes.Buffer
	ch := make(chan *client.SolveStatus)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st := range ch {
			for _, v := range st.Vertexes {
				fmt.Fprintf(&out, "vertex %s\n", v.Name)
				if v.Error != "" {
					fmt.Fprintf(&out, "ERROR %s: %s\n", v.Name, v.Error)
				}
			}
			for _, w := range st.Warnings {
				fmt.Fprintf(&out, "warning %s\n", w.Short)
			}
			for _, l := range st.Logs {
				out.Write(l.Data)
			}
		}
	}()
	var attachables []session.Attachable
	if b.secrets != nil {
		attachables = append(attachables, secretsprovider.FromMap(b.secrets))
	}
	exports := []client.ExportEntry{{Type: client.ExporterImage, Attrs: b.exportAttrs()}}
	buildFunc := frontend.Build
	if b.dockerfileFrontend {
		buildFunc = dockerfile.Build
	}
	var meta map[string][]byte
	if b.requestID != "" {
		attrs["requestid"], exports = b.requestID, nil
		buildFunc = func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
			res, err := frontend.Build(ctx, c)
			if res != nil {
				meta = res.Metadata
			}
			return res, err
		}
	}
	resp, err := c.Build(ctx, client.SolveOpt{
		Session:       attachables,
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports:       exports,
	}, "", buildFunc, ch)
	<-done
	if err != nil {
		return result{output: out.String()}, err
	}
	return result{digest: resp.ExporterResponse[exptypes.ExporterImageDigestKey], output: out.String(), meta: meta}, nil
}

// buildWithBuildctl runs the frontend image as gateway.v0 with buildctl.
func buildWithBuildctl(t *testing.T, b build) (result, error) {
	b = b.withDefaults()
	meta := filepath.Join(t.TempDir(), "metadata.json")
	args := []string{"--addr", b.daemon.Addr, "build",
		"--progress=plain",
		"--frontend", "gateway.v0", "--opt", "source=" + b.frontendImage,
		"--local", "context=" + b.dir, "--local", "dockerfile=" + b.dir,
		"--opt", "filename=" + b.file,
		"--output", b.outputFlag(),
		"--metadata-file", meta}
	args = append(args, b.flags...)
	if b.platforms != "" {
		args = append(args, "--opt", "platform="+b.platforms)
	}
	for k, v := range b.args {
		args = append(args, "--opt", "build-arg:"+k+"="+v)
	}
	out, err := exec.Command(filepath.Join(env.stack.ToolsDir, "buildctl"), args...).CombinedOutput()
	if err != nil {
		return result{output: string(out)}, fmt.Errorf("buildctl: %w\n%s", err, out)
	}
	return result{digest: metadataDigest(t, meta), output: string(out)}, nil
}

var builderSeq atomic.Int32

// buildWithBuildx runs `docker buildx build -f Patchfile .` on a remote
// builder, the frontend chosen by the Patchfile's `# syntax=` line.
func buildWithBuildx(t *testing.T, b build) (result, error) {
	b = b.withDefaults()
	meta := filepath.Join(t.TempDir(), "metadata.json")
	out, err := runBuildx(t, b, append([]string{"--output", b.outputFlag(), "--metadata-file", meta}, b.flags...)...)
	if err != nil {
		return result{output: string(out)}, err
	}
	return result{digest: metadataDigest(t, meta), output: string(out)}, nil
}

// runBuildx runs `docker buildx build` with extra flags on a fresh remote
// builder for b's daemon, with b's context and build args.
func runBuildx(t *testing.T, b build, flags ...string) ([]byte, error) {
	b = b.withDefaults()
	ctxDir := b.dir
	if !b.keepSyntax {
		ctxDir = withSyntaxLine(t, b.dir, b.file, env.frontendTag)
	}
	cli := newBuildxCLI(t, b.daemon, b.logins)
	cli.noDefaultAttestations = b.noDefaultAttestations
	args := append([]string{"buildx", "build", "--builder", cli.builder, "--progress=plain", "-f", filepath.Join(ctxDir, b.file)}, flags...)
	for k, v := range b.args {
		args = append(args, "--build-arg", k+"="+v)
	}
	if b.platforms != "" {
		args = append(args, "--platform", b.platforms)
	}
	out, err := cli.command(append(args, ctxDir)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("docker buildx build: %w\n%s", err, out)
	}
	return out, nil
}

// buildxCLI is the docker CLI with a DOCKER_CONFIG of its own, holding the
// buildx (and compose) plugins and a remote buildx builder for one daemon.
type buildxCLI struct {
	config  string // DOCKER_CONFIG
	builder string // the builder's name, for --builder
	// noDefaultAttestations turns off buildx's default attestations (a
	// provenance attestation, mode=min, making the image an index), for a
	// test that must say why.
	noDefaultAttestations bool
}

// newBuildxCLI creates the builder for d, with logins (host -> user:password)
// in the config as after `docker login`; it is removed when the test ends.
func newBuildxCLI(t *testing.T, d *stack.Daemon, logins map[string]string) *buildxCLI {
	t.Helper()
	cli := &buildxCLI{config: buildxConfig(t), builder: fmt.Sprintf("pf-%d-%d", os.Getpid(), builderSeq.Add(1))}
	if len(logins) > 0 {
		auths := map[string]any{}
		for host, userPass := range logins {
			auths[host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(userPass))}
		}
		dt, err := json.Marshal(map[string]any{"auths": auths})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(cli.config, "config.json"), dt, 0o600))
	}
	if out, err := cli.command("buildx", "create", "--name", cli.builder, "--driver", "remote", d.Addr).CombinedOutput(); err != nil {
		t.Fatalf("docker buildx create: %v\n%s", err, out)
	}
	t.Cleanup(func() { cli.command("buildx", "rm", cli.builder).Run() }) //nolint:errcheck
	return cli
}

// command is the docker CLI the tools built (whatever docker this machine
// has) with the config's plugins and builders, and buildx's default
// attestations, as users have them.
func (c *buildxCLI) command(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(env.stack.ToolsDir, "docker"), args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+c.config)
	if c.noDefaultAttestations {
		cmd.Env = append(cmd.Env, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
	}
	return cmd
}

// buildxConfig gives each test its own DOCKER_CONFIG with the buildx plugin,
// and the compose plugin when the tools have it (TestCompose requires it).
func buildxConfig(t *testing.T) string {
	dir := t.TempDir()
	plugins := filepath.Join(dir, "cli-plugins")
	require.NoError(t, os.MkdirAll(plugins, 0o755))
	require.NoError(t, os.Symlink(filepath.Join(env.stack.ToolsDir, "docker-buildx"), filepath.Join(plugins, "docker-buildx")))
	if compose := filepath.Join(env.stack.ToolsDir, "docker-compose"); fileExists(compose) {
		require.NoError(t, os.Symlink(compose, filepath.Join(plugins, "docker-compose")))
	}
	return dir
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var syntaxLine = regexp.MustCompile(`(?m)\A# syntax=.*$`)

// withSyntaxLine copies a context and points its Patchfile's `# syntax=`
// line at the test registry's frontend image.
func withSyntaxLine(t *testing.T, dir, file, image string) string {
	out := filepath.Join(t.TempDir(), "ctx")
	require.NoError(t, os.CopyFS(out, os.DirFS(dir)))
	p := filepath.Join(out, file)
	dt, err := os.ReadFile(p)
	require.NoError(t, err)
	line := "# syntax=" + image
	if syntaxLine.Match(dt) {
		dt = syntaxLine.ReplaceAll(dt, []byte(line))
	} else {
		dt = append([]byte(line+"\n"), dt...)
	}
	require.NoError(t, os.WriteFile(p, dt, 0o644))
	return out
}

func metadataDigest(t *testing.T, path string) string {
	dt, err := os.ReadFile(path)
	require.NoError(t, err)
	var meta map[string]any
	require.NoError(t, json.Unmarshal(dt, &meta))
	d, _ := meta[exptypes.ExporterImageDigestKey].(string)
	require.NotEmpty(t, d, "metadata without a digest: %s", dt)
	return d
}
