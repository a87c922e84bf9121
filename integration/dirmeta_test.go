package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// TestDirectoryMetadataPatch: directories whose mode changed since the
// release, alone (bin), with a file added inside (src), with a deletion
// inside (data), and nested in one that changed too (data/dir-to-delete's
// parent), patch on both layer plans: the release's layers plus one layer
// that holds the changed directories with their new modes, the new file
// and the whiteout, and the same filesystem as a full build.
func TestDirectoryMetadataPatch(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	releaseRef := env.stack.Ref("dirmeta/app", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef})
	require.NoError(t, err)
	releaseDigest := res.digest
	releaseLayers := layers(t, pullImage(t, releaseRef+"@"+releaseDigest))

	require.NoError(t, os.Chmod(filepath.Join(dir, "bin"), 0o700))
	require.NoError(t, os.Chmod(filepath.Join(dir, "src"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "new.js"), []byte("new\n"), 0o644))
	require.NoError(t, os.Chmod(filepath.Join(dir, "data"), 0o775))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "data", "dir-to-delete")))

	fullRef := env.stack.Ref("dirmeta/app", "full")
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: fullRef})
	require.NoError(t, err)
	full := filesystem(t, pullImage(t, fullRef+"@"+res.digest))
	require.EqualValues(t, 0o700, full["app/bin"].Mode&0o7777)

	for _, plan := range propPlans {
		t.Run(plan, func(t *testing.T) {
			patchRef := env.stack.Ref("dirmeta/app", plan)
			res, err := buildInProcess(t, build{dir: dir, args: withPlan(patchArgs(releaseRef), plan), output: patchRef})
			require.NoError(t, err)
			require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": 4 changed, 1 deleted")
			img := pullImage(t, patchRef+"@"+res.digest)
			ls := layers(t, img)
			require.Len(t, ls, len(releaseLayers)+1)
			top := layerEntries(t, ls[len(ls)-1])
			require.Equal(t, []string{"app", "app/bin", "app/data", "app/data/.wh.dir-to-delete", "app/src", "app/src/new.js"}, names(top))
			for name, mode := range map[string]int64{"app/bin": 0o700, "app/src": 0o750, "app/data": 0o775} {
				require.EqualValues(t, mode, top[name].Mode&0o7777, name)
			}
			requireSameFilesystem(t, full, filesystem(t, img))
		})
	}
}

// TestHashStepSeesDirectoryModes: a directory whose mode alone changed,
// nested, is a change for the build step that hashes the context as much
// as for the gateway's reading, on a builder that already hashed the
// same files with the old mode.
func TestHashStepSeesDirectoryModes(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "src", "deep", "er"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "deep", "er", "x.js"), []byte("x\n"), 0o644))
	releaseRef := env.stack.Ref("hashdirmode/app", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef, hashInBuilder: true})
	require.NoError(t, err)
	releaseDigest := res.digest
	releaseLayers := len(layers(t, pullImage(t, releaseRef+"@"+releaseDigest)))

	for i, mode := range []os.FileMode{0o700, 0o750, 0o755} {
		require.NoError(t, os.Chmod(filepath.Join(dir, "src", "deep", "er"), mode))
		res, err := buildInProcess(t, build{dir: dir, args: patchArgs(releaseRef), output: env.stack.Ref("hashdirmode/app", fmt.Sprint(i)), hashInBuilder: true})
		require.NoError(t, err)
		if mode == 0o755 {
			require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": no change, the release itself")
			continue
		}
		require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": 1 changed, 0 deleted", "chmod %o", mode)
		top := layerEntries(t, layers(t, pullImage(t, env.stack.Ref("hashdirmode/app", fmt.Sprint(i))+"@"+res.digest))[releaseLayers])
		require.EqualValues(t, mode, top["app/src/deep/er"].Mode&0o7777)
	}
}

// keyedCopy is the progress line of a full build's app copy made after
// the files were read, with the directory key (see
// TestEarlyTreeSeesDirectoryModes); the copy made while they are read is
// "copy the application files to".
var keyedCopy = regexp.MustCompile(`\[app\] copy [0-9,]+ files to /app/`)

// TestEarlyTreeSeesDirectoryModes: a full build that cannot be a patch
// copies the app files while they are hashed, and keeps that copy when its
// directories are what the file list says. On a builder whose cache holds
// the same files with a directory's old mode, it copies them again rather
// than ship the old mode.
func TestEarlyTreeSeesDirectoryModes(t *testing.T) {
	dir := t.TempDir()
	tree := releaseTree()
	// Files no other test has: the builder's cache holds no copy of them.
	tree["src/deep/unique.txt"] = file{content: t.Name() + " " + time.Now().String()}
	writeTree(t, dir, tree)

	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref("earlytree/app", "first")})
	require.NoError(t, err)
	require.Contains(t, res.output, "[app] copy the application files to /app/")
	require.NotRegexp(t, keyedCopy, res.output, "the early copy was not kept")
	first := filesystem(t, pullImage(t, env.stack.Ref("earlytree/app", "first")+"@"+res.digest))
	require.EqualValues(t, 0o755, first["app/src/deep"].Mode&0o7777)

	require.NoError(t, os.Chmod(filepath.Join(dir, "src", "deep"), 0o700))
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref("earlytree/app", "chmod")})
	require.NoError(t, err)
	img := filesystem(t, pullImage(t, env.stack.Ref("earlytree/app", "chmod")+"@"+res.digest))
	require.EqualValues(t, 0o700, img["app/src/deep"].Mode&0o7777)
	require.Regexp(t, keyedCopy, res.output)
}
