package integration

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// patchPatchfile is a small app whose dependency stage writes under the APP
// destination (/app/node_modules), which patches must leave alone.
const patchPatchfile = `ARG BASE
ARG RELEASE
FROM ${BASE}
WORKDIR /app
DEPS deps.txt
RUN mkdir -p node_modules/dep && cp deps.txt node_modules/dep/deps.txt && date +%s%N > node_modules/dep/built-at
APP . /app
PATCH ${RELEASE}
ENV MODE=patched
CMD ["sh"]
`

// file is one entry to lay out in a test context.
type file struct {
	content string
	mode    os.FileMode // 0 means 0644 (0755 for directories)
	link    string      // a symlink target
	dir     bool
}

func writeTree(t *testing.T, dir string, files map[string]file) {
	t.Helper()
	for name, f := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch {
		case f.dir:
			require.NoError(t, os.MkdirAll(p, 0o755))
		case f.link != "":
			require.NoError(t, os.Symlink(f.link, p))
		default:
			mode := f.mode
			if mode == 0 {
				mode = 0o644
			}
			require.NoError(t, os.WriteFile(p, []byte(f.content), mode))
			require.NoError(t, os.Chmod(p, mode))
		}
	}
}

func releaseTree() map[string]file {
	return map[string]file{
		"Patchfile":                  {content: patchPatchfile},
		".dockerignore":              {content: "*.log\n"},
		"debug.log":                  {content: "ignored"},
		"deps.txt":                   {content: "dep==1.0\n"},
		"src/a.js":                   {content: "console.log('a');\n"},
		"src/b.js":                   {content: "console.log('b');\n"},
		"src/keep.txt":               {content: "unchanged\n"},
		"src/link":                   {link: "a.js"},
		"bin/run.sh":                 {content: "#!/bin/sh\necho run\n", mode: 0o755},
		"lib/old-name.js":            {content: "module.exports = 1;\n"},
		"lib/same.js":                {content: "module.exports = 2;\n"},
		"data/dir-to-delete/x.txt":   {content: "x\n"},
		"data/dir-to-delete/y/z.txt": {content: "z\n"},
		"data/stays.txt":             {content: "stays\n"},
		"has space/ünï [code].js":    {content: "weird name\n"},
	}
}

// applyChangeSet edits a release tree with every kind of change.
func applyChangeSet(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src/a.js"), []byte("console.log('A');\n"), 0o644)) // same size
	require.NoError(t, os.Remove(filepath.Join(dir, "src/b.js")))
	require.NoError(t, os.Chmod(filepath.Join(dir, "bin/run.sh"), 0o700))
	require.NoError(t, os.Remove(filepath.Join(dir, "src/link")))
	require.NoError(t, os.Symlink("keep.txt", filepath.Join(dir, "src/link")))
	require.NoError(t, os.Rename(filepath.Join(dir, "lib/old-name.js"), filepath.Join(dir, "lib/new-name.js")))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "data/dir-to-delete")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "empty"), 0o755))
	writeTree(t, dir, map[string]file{"src/new/deep/c.js": {content: "console.log('c');\n"}})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "has space/ünï [code].js"), []byte("weird NAME\n"), 0o644))
}

// changeSetLayer is what a patch of applyChangeSet's changes to
// releaseTree holds: the changes, whiteouts and their parents.
var changeSetLayer = []string{
	"app",
	"app/bin", "app/bin/run.sh",
	"app/data", "app/data/.wh.dir-to-delete",
	"app/empty",
	"app/has space", "app/has space/ünï [code].js",
	"app/lib", "app/lib/.wh.old-name.js", "app/lib/new-name.js",
	"app/src", "app/src/.wh.b.js", "app/src/a.js", "app/src/link",
	"app/src/new", "app/src/new/deep", "app/src/new/deep/c.js",
}

func patchArgs(release string) map[string]string {
	return map[string]string{"BASE": env.base, "RELEASE": release}
}

func fullArgs() map[string]string {
	return map[string]string{"BASE": env.base, "PATCH": ""}
}

// TestPatchBuild: release, change set, patch; the top layer holds exactly
// the change, and the patched filesystem equals a full build's.
func TestPatchBuild(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	repo := "patch/app"
	releaseRef := env.stack.Ref(repo, "release")

	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.FullBuildPrefix+"PATCH disabled by --build-arg PATCH=")
	release := pullImage(t, releaseRef+"@"+res.digest)
	releaseLayers := layers(t, release)
	releaseDigest := res.digest
	cfg := configOf(t, release)
	require.NotContains(t, cfg.Config.Labels, decide.LabelRelease)

	applyChangeSet(t, dir)
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(releaseRef), output: env.stack.Ref(repo, "patch1")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": 9 changed, 3 deleted")
	patched := pullImage(t, env.stack.Ref(repo, "patch1")+"@"+res.digest)
	top := requireChangeSetPatch(t, releaseLayers, patched)
	require.Equal(t, int64(0o700), top["app/bin/run.sh"].Mode&0o7777)
	require.Equal(t, byte(tar.TypeSymlink), top["app/src/link"].Type)
	require.Equal(t, "keep.txt", top["app/src/link"].Linkname)

	pcfg := configOf(t, patched)
	require.Equal(t, releaseDigest, pcfg.Config.Labels[decide.LabelRelease])
	require.Contains(t, pcfg.Config.Env, "MODE=patched")
	require.Less(t, len(rawConfig(t, patched)), len(rawConfig(t, release)), "the file list stays in the release")

	// The same inputs built in full give the same filesystem, entry by entry.
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref(repo, "full1")})
	require.NoError(t, err)
	full := pullImage(t, env.stack.Ref(repo, "full1")+"@"+res.digest)
	requireSameFilesystem(t, filesystem(t, full), filesystem(t, patched))

	// Patch of a patch: still the release plus one layer.
	writeTree(t, dir, map[string]file{"src/later.js": {content: "later\n"}})
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(env.stack.Ref(repo, "patch1")), output: env.stack.Ref(repo, "patch2")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": 10 changed, 3 deleted")
	patch2 := pullImage(t, env.stack.Ref(repo, "patch2")+"@"+res.digest)
	require.Len(t, layers(t, patch2), len(releaseLayers)+1)
	require.Equal(t, releaseDigest, configOf(t, patch2).Config.Labels[decide.LabelRelease])

	// No change against the release: the release's layers, no extra one.
	noop := t.TempDir()
	writeTree(t, noop, releaseTree())
	res, err = buildInProcess(t, build{dir: noop, args: patchArgs(releaseRef), output: env.stack.Ref(repo, "noop")})
	require.NoError(t, err)
	require.Contains(t, res.output, "no change, the release itself")
	noopImg := pullImage(t, env.stack.Ref(repo, "noop")+"@"+res.digest)
	require.Len(t, layers(t, noopImg), len(releaseLayers))
	require.Len(t, configOf(t, noopImg).History, len(configOf(t, release).History), "no history entry for a layer that is not there")

	// A 6 MiB file edited past the first 4 MiB read chunk is seen as changed.
	big := filepath.Join(noop, "assets/big.bin")
	require.NoError(t, os.MkdirAll(filepath.Dir(big), 0o755))
	require.NoError(t, os.WriteFile(big, bigContent(0), 0o644))
	res, err = buildInProcess(t, build{dir: noop, args: fullArgs(), output: env.stack.Ref(repo, "big-release")})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(big, bigContent(5<<20), 0o644))
	args := patchArgs(env.stack.Ref(repo, "big-release"))
	args["PATCH_MAX_SHARE"] = "100"
	res, err = buildInProcess(t, build{dir: noop, args: args, output: env.stack.Ref(repo, "big-patch")})
	require.NoError(t, err)
	require.Contains(t, res.output, ": 1 changed, 0 deleted, 6144.0 KiB")
	bigImg := pullImage(t, env.stack.Ref(repo, "big-patch")+"@"+res.digest)
	bigLayers := layers(t, bigImg)
	require.Equal(t, string(bigContent(5<<20)), layerEntries(t, bigLayers[len(bigLayers)-1])["app/assets/big.bin"].Content)

	// A dependency file changed: full build, the dependency stage runs again.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "deps.txt"), []byte("dep==2.0\n"), 0o644))
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(releaseRef), output: env.stack.Ref(repo, "deps")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.FullBuildPrefix+"dependencies changed since release "+releaseDigest)
	depsImg := pullImage(t, env.stack.Ref(repo, "deps")+"@"+res.digest)
	require.Len(t, layers(t, depsImg), len(releaseLayers))
	require.Equal(t, "dep==2.0\n", filesystem(t, depsImg)["app/node_modules/dep/deps.txt"].Content)
	require.NotContains(t, configOf(t, depsImg).Config.Labels, decide.LabelRelease)
}

// requireSameFilesystem compares two flattened filesystems entry by entry:
// type, mode, owner, size, content, link target and mtime.
func requireSameFilesystem(t *testing.T, want, got map[string]entry) {
	t.Helper()
	require.Equal(t, names(want), names(got))
	for n, w := range want {
		g := got[n]
		if strings.HasPrefix(n, "app/") || n == "app" {
			require.Equal(t, w, g, "entry %s", n)
		} else {
			w.ModTime, g.ModTime = 0, 0 // outside the app tree: base and dependency layers
			require.Equal(t, w, g, "entry %s", n)
		}
	}
}

func rawConfig(t *testing.T, img interface{ RawConfigFile() ([]byte, error) }) []byte {
	t.Helper()
	dt, err := img.RawConfigFile()
	require.NoError(t, err)
	return dt
}

// bigContent is 6 MiB of deterministic bytes, with one byte flipped at
// offset flip (0 flips none).
func bigContent(flip int) []byte {
	dt := make([]byte, 6<<20)
	for i := range dt {
		dt[i] = byte(i * 7 % 251)
	}
	if flip > 0 {
		dt[flip] ^= 0xff
	}
	return dt
}

// TestPatchTypeChanges: a directory replaced by a file, and a file by a
// directory, patch to the same filesystem as a full build.
func TestPatchTypeChanges(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile":        {content: patchPatchfile},
		"deps.txt":         {content: "dep\n"},
		"x/c.txt":          {content: "c\n"},
		"x/d/e.txt":        {content: "e\n"},
		"y":                {content: "a file\n"},
		"z/keep.txt":       {content: "keep\n"},
		"z/link-to-dir":    {link: "../x"},
		"plain/file.txt":   {content: "plain\n"},
		"plain/other.html": {content: "<p>\n"},
	})
	repo := "types/app"
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref(repo, "release")})
	require.NoError(t, err)
	releaseLayers := len(layers(t, pullImage(t, env.stack.Ref(repo, "release")+"@"+res.digest)))

	require.NoError(t, os.RemoveAll(filepath.Join(dir, "x")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x"), []byte("x is a file now\n"), 0o644))
	require.NoError(t, os.Remove(filepath.Join(dir, "y")))
	writeTree(t, dir, map[string]file{"y/inside.txt": {content: "y is a directory now\n"}})

	args := patchArgs(env.stack.Ref(repo, "release"))
	args["PATCH_MAX_SHARE"] = "100"
	res, err = buildInProcess(t, build{dir: dir, args: args, output: env.stack.Ref(repo, "patch")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix)
	patched := pullImage(t, env.stack.Ref(repo, "patch")+"@"+res.digest)
	require.Len(t, layers(t, patched), releaseLayers+1)

	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref(repo, "full")})
	require.NoError(t, err)
	requireSameFilesystem(t, filesystem(t, pullImage(t, env.stack.Ref(repo, "full")+"@"+res.digest)), filesystem(t, patched))
}

// requireChangeSetPatch checks that patched is the release's layers, each
// the release's own, plus exactly one layer that holds applyChangeSet's
// changes (changeSetLayer) and nothing else, and returns that layer's
// entries.
func requireChangeSetPatch(t *testing.T, releaseLayers []v1.Layer, patched v1.Image) map[string]entry {
	t.Helper()
	patchedLayers := layers(t, patched)
	require.Len(t, patchedLayers, len(releaseLayers)+1, "release layers plus exactly one")
	for i := range releaseLayers {
		d1, _ := releaseLayers[i].Digest()
		d2, _ := patchedLayers[i].Digest()
		require.Equal(t, d1, d2, "layer %d is the release's own", i)
	}
	top := layerEntries(t, patchedLayers[len(patchedLayers)-1])
	require.Equal(t, changeSetLayer, names(top), "the patch layer holds the changes, whiteouts and their parents, nothing else")
	require.Equal(t, "console.log('A');\n", top["app/src/a.js"].Content)
	return top
}
