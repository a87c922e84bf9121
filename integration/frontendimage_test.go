package integration

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/patchfile/patchfile/internal/stack"
)

// TestFrontendImageMultiArch builds the frontend image from the project's
// Dockerfile for linux/amd64 and linux/arm64, checks each holds a static
// binary for its own architecture, the labels BuildKit's capability
// checks read and the OCI version labels, runs each binary (the arm64 one
// under qemu) and checks `patchfile-frontend version` says what the labels
// say, and builds the example with the index as the frontend (the daemon
// picks its own platform).
func TestFrontendImageMultiArch(t *testing.T) {
	ref := env.stack.Ref("patchfile", "multiarch")
	pinned, err := env.stack.BuildFrontendImage(context.Background(), env.warm, env.repoRoot, ref, "linux/amd64", "linux/arm64")
	require.NoError(t, err)
	version, revision := stack.FrontendVersion(context.Background(), env.repoRoot)
	require.NotEmpty(t, version)
	if head, err := exec.Command("git", "-C", env.repoRoot, "rev-parse", "HEAD").Output(); err == nil {
		require.Equal(t, strings.TrimSpace(string(head)), revision, "the revision is the repository's HEAD")
	}
	images := pullIndex(t, pinned)
	require.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, keysOf(images))
	machine := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	for p, img := range images {
		cfg := configOf(t, img)
		require.Equal(t, []string{"/bin/patchfile-frontend"}, cfg.Config.Entrypoint, p)
		caps := strings.Split(cfg.Config.Labels["moby.buildkit.frontend.caps"], ",")
		require.Subset(t, caps, []string{"moby.buildkit.frontend.inputs", "moby.buildkit.frontend.subrequests", "moby.buildkit.frontend.contexts"}, p)
		require.Equal(t, "true", cfg.Config.Labels["moby.buildkit.frontend.network.none"], p)
		require.Equal(t, version, cfg.Config.Labels["org.opencontainers.image.version"], p)
		require.Equal(t, revision, cfg.Config.Labels["org.opencontainers.image.revision"], p)
		require.Equal(t, "https://github.com/patchfile/patchfile", cfg.Config.Labels["org.opencontainers.image.source"], p)
		ls := layers(t, img)
		require.Len(t, ls, 1, "%s: one layer, the binary", p)
		size, err := ls[0].Size()
		require.NoError(t, err)
		bin := layerEntries(t, ls[0])["bin/patchfile-frontend"]
		path := filepath.Join(t.TempDir(), "patchfile-frontend")
		require.NoError(t, os.WriteFile(path, []byte(bin.Content), 0o755))
		f, err := elf.Open(path)
		require.NoError(t, err)
		require.Equal(t, machine[p], f.Machine, "%s: the binary is built for its platform", p)
		require.Nil(t, f.Section(".interp"), "%s: a static binary", p)
		f.Close()
		t.Logf("%s: binary %.1f MiB, compressed layer %.1f MiB", p, float64(len(bin.Content))/(1<<20), float64(size)/(1<<20))

		if p == "linux/arm64" {
			if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil {
				t.Log("qemu-aarch64 is not registered: the arm64 binary is not run")
				continue
			}
		}
		out, err := exec.Command(path, "version").CombinedOutput()
		require.NoError(t, err, "%s: %s", p, out)
		// "patchfile-frontend <version> <revision>": what the labels say.
		fields := strings.Fields(string(out))
		require.NotEmpty(t, fields, "%s: no output", p)
		require.Equal(t, "patchfile-frontend", fields[0], "%s: %s", p, out)
		labels := []string{cfg.Config.Labels["org.opencontainers.image.version"]}
		if rev := cfg.Config.Labels["org.opencontainers.image.revision"]; rev != "" {
			labels = append(labels, rev)
		}
		require.Equal(t, labels, fields[1:], "%s: the binary's version and revision are the labels'", p)
	}

	dir := filepath.Join(t.TempDir(), "app")
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	res, err := buildWithBuildctl(t, build{dir: dir, args: map[string]string{"BASE": env.base, "PATCH": ""}, output: env.stack.Ref("frontend-multiarch/web", "full"), frontendImage: pinned})
	require.NoError(t, err)
	fs := filesystem(t, pullImage(t, env.stack.Ref("frontend-multiarch/web", "full")+"@"+res.digest))
	require.Equal(t, readFile(t, filepath.Join(dir, "src/routes.js")), fs["app/src/routes.js"].Content)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	dt, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(dt)
}
