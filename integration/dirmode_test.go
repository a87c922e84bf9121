package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/stretchr/testify/require"
)

// TestDirModeOnWarmBuilder: a directory whose mode changed, and nothing
// else, lands with its new mode on a warm builder, in full builds and in
// patches (of the directory alone, or of a change below it) whose copies a
// previous build already ran. BuildKit's checksum of
// the synced context misses such a change (moby/buildkit#7176), so copies
// came from the cache with the old mode, while the release's file list
// recorded the new one: a wrong image, and a file list that lies.
func TestDirModeOnWarmBuilder(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile": {content: patchPatchfile},
		"deps.txt":  {content: "dep==1.0\n"},
		"d/x.txt":   {content: "x0\n"},
		"d/y.txt":   {content: "y\n"},
	})
	repo := "dirmode/app"
	ref := func(tag string) string { return env.stack.Ref(repo, tag) }
	args := patchArgs(ref("release"))
	args["PATCH_MAX_SHARE"] = "100"
	mode := func(res result, tag string) int64 {
		t.Helper()
		return filesystem(t, pullImage(t, ref(tag)+"@"+res.digest))["app/d"].Mode & 0o7777
	}

	_, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("release")})
	require.NoError(t, err)
	// A patch that copies d as the parent of a change: its lower tree is
	// the one the last patch below makes again.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "d/x.txt"), []byte("x1\n"), 0o644))
	res, err := buildInProcess(t, build{dir: dir, args: args, output: ref("patch1")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix)
	require.EqualValues(t, 0o755, mode(res, "patch1"))

	// Back to the release's files, d's mode changed: a patch of d alone,
	// whose copy of d ran before with the old mode.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "d/x.txt"), []byte("x0\n"), 0o644))
	require.NoError(t, os.Chmod(filepath.Join(dir, "d"), 0o750))
	res, err = buildInProcess(t, build{dir: dir, args: args, output: ref("patch-d")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix)
	require.Contains(t, res.output, ": 1 changed, 0 deleted")
	require.EqualValues(t, 0o750, mode(res, "patch-d"), "the patch has the new mode")

	// A new release of the same files: the full build's copy of the app
	// tree has the first release's checksum.
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("release2")})
	require.NoError(t, err)
	require.EqualValues(t, 0o750, mode(res, "release2"), "the new release has the new mode")
	var cfg struct {
		Files string `json:"dev.patchfile.files"`
	}
	require.NoError(t, json.Unmarshal(rawConfig(t, pullImage(t, ref("release2")+"@"+res.digest)), &cfg))
	list, err := filelist.Decode(cfg.Files)
	require.NoError(t, err)
	for _, e := range list.Entries {
		if e.Path == "d" {
			require.EqualValues(t, 0o750, e.Mode, "the file list agrees with the image")
		}
	}
	// The same change as patch1, against the new release.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "d/x.txt"), []byte("x2\n"), 0o644))
	args["RELEASE"] = ref("release2")
	res, err = buildInProcess(t, build{dir: dir, args: args, output: ref("patch2")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix)
	require.EqualValues(t, 0o750, mode(res, "patch2"))

	// And back: the mode of the first release again.
	require.NoError(t, os.Chmod(filepath.Join(dir, "d"), 0o755))
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("full")})
	require.NoError(t, err)
	require.EqualValues(t, 0o755, mode(res, "full"))
}
