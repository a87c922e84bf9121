package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// gitServer serves the repositories under dir over git:// on loopback
// (git daemon, started and stopped by PID), as a Git build context
// (`docker buildx build git://...`) reaches BuildKit.
func gitServer(t *testing.T, dir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+dir, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "git daemon did not listen on %s", addr)
	return "git://" + addr
}

// git runs git in dir.
func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %s: %s", strings.Join(args, " "), out)
}

// TestGitContext builds from a Git repository (`docker buildx build
// git://...`): DEPS sees only the files it names, not the whole
// repository (dockerui returns a remote context unfiltered), so a commit
// that changes only app files deploys as a patch instead of rebuilding
// the dependency stage.
func TestGitContext(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "app.git")
	release := env.stack.Ref("git-context", "release")
	writeTree(t, repo, map[string]file{
		"Patchfile": {content: "# syntax=" + env.frontendTag + "\nFROM " + env.base + "\nWORKDIR /app\nDEPS deps.txt\n" +
			"RUN find /app -type f | sort > /deps-saw.txt\nAPP app /app/\nPATCH " + release + "\n"},
		"deps.txt":     {content: "left-pad 1.3.0\n"},
		"app/index.js": {content: "console.log('v1')\n"},
		"app/lib.js":   {content: strings.Repeat("// the rest of the app\n", 100)},
		"docs/a.md":    {content: "docs\n"},
	})
	git(t, repo, "init", "-q")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "v1")
	url := gitServer(t, root) + "/app.git"

	cli := newBuildxCLI(t, env.warm, nil)
	build := func(output string, extra ...string) string {
		args := append([]string{"buildx", "build", "--builder", cli.builder, "--progress=plain", "-f", "Patchfile",
			"--output", "type=image,name=" + output + ",push=true"}, extra...)
		out, err := cli.command(append(args, url)...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	build(release, "--build-arg", "PATCH=")
	img := pullImage(t, release+"@"+tagDigest(t, release))
	require.Equal(t, "/app/deps.txt\n", filesystem(t, img)["deps-saw.txt"].Content, "the dependency steps see the DEPS files, not the repository")
	require.Contains(t, filesystem(t, img), "app/index.js")
	require.NotContains(t, filesystem(t, img), "app/docs/a.md")

	// A commit that changes app files and others, not deps.txt: a patch.
	writeTree(t, repo, map[string]file{"app/index.js": {content: "console.log('v2')\n"}, "docs/a.md": {content: "more docs\n"}})
	git(t, repo, "commit", "-q", "-am", "v2")
	patch := env.stack.Ref("git-context", "patch")
	out := build(patch)
	require.Contains(t, out, decide.PatchPrefix+tagDigest(t, release)+": 1 changed, 0 deleted", "a commit that leaves deps.txt alone keeps the dependency stage")
	require.Equal(t, "console.log('v2')\n", filesystem(t, pullImage(t, patch+"@"+tagDigest(t, patch)))["app/index.js"].Content)
}
