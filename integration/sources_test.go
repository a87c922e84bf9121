package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// TestSeveralSourcesPatch: APP with files, two directories whose trees
// overlap, a wildcard and --exclude (which leaves out paths inside
// directory sources, never a file source) patches on both layer plans: each change lands
// where the full build puts it (a later source's file over an earlier
// one's, a directory's metadata from the last copy of it), deletions,
// wildcard matches that appear and .dockerignore changes included, and the filesystem equals a full
// build's. On a cold builder (Merge/Diff) it pulls no layer of the release.
func TestSeveralSourcesPatch(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile": {content: `ARG BASE
ARG RELEASE
FROM ${BASE}
WORKDIR /app
DEPS deps.txt
RUN mkdir -p node_modules/dep && cp deps.txt node_modules/dep/deps.txt
APP --exclude=*.tmp package.json dist/ public *.md notes.tmp /app/
PATCH ${RELEASE}
`},
		"deps.txt":               {content: "dep==1.0\n"},
		"package.json":           {content: "{}\n"},
		"README.md":              {content: "readme\n"},
		"dist/index.html":        {content: "dist index\n"},
		"dist/assets/app.js":     {content: "app\n"},
		"dist/assets/old.js":     {content: "old\n"},
		"public/index.html":      {content: "public index\n"},
		"public/assets/logo.png": {content: "png\n"},
		"src/not-shipped.js":     {content: "src\n"},
		".dockerignore":          {content: "dist/*.log\n"},
		"dist/cache.tmp":         {content: "excluded\n"},
		"notes.tmp":              {content: "a file source: never excluded\n"},
		"dist/debug.log":         {content: "ignored, then shipped\n"},
		"public/extra.txt":       {content: "shipped, then ignored\n"},
	})
	releaseRef := env.stack.Ref("sources/app", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef})
	require.NoError(t, err)
	releaseDigest := res.digest
	releaseLayers := layers(t, pullImage(t, releaseRef+"@"+releaseDigest))

	write := func(p, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644))
	}
	write("dist/index.html", "dist index, edited: public's lands over it\n")
	write("dist/assets/app.js", "app v2\n")
	require.NoError(t, os.Remove(filepath.Join(dir, "dist/assets/old.js")))
	write("public/assets/new.png", "new png\n")
	require.NoError(t, os.Chmod(filepath.Join(dir, "public/assets"), 0o750))
	write("CHANGES.md", "changes\n")
	write("package.json", "{\"v\": 2}\n")
	write("src/not-shipped.js", "src v2\n")
	write("dist/cache.tmp", "excluded, changed: nothing to ship\n")
	// .dockerignore changes: a file it stops ignoring is added, one it
	// starts ignoring is deleted.
	write(".dockerignore", "public/extra.txt\n")

	fullRef := env.stack.Ref("sources/app", "full")
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: fullRef})
	require.NoError(t, err)
	full := filesystem(t, pullImage(t, fullRef+"@"+res.digest))
	require.Equal(t, "public index\n", full["app/index.html"].Content)
	require.Contains(t, full, "app/notes.tmp")
	require.NotContains(t, full, "app/cache.tmp")
	require.EqualValues(t, 0o750, full["app/assets"].Mode&0o7777)

	for _, plan := range append(propPlans, "cold") {
		t.Run(plan, func(t *testing.T) {
			patchRef := env.stack.Ref("sources/app", plan)
			args := patchArgs(releaseRef)
			args["PATCH_MAX_SHARE"] = "100" // a tiny app: the change is most of it
			b := build{dir: dir, args: args, output: patchRef}
			if plan == "cold" {
				// A builder with nothing cached: it must not pull a layer
				// of the release (base and dependency stage included).
				cold, err := env.stack.NewDaemon(context.Background(), "sources-cold")
				require.NoError(t, err)
				defer cold.Stop()
				b.daemon = cold
			} else {
				withPlan(args, plan)
			}
			logAt := env.stack.LogSize()
			res, err := buildInProcess(t, b)
			require.NoError(t, err)
			served, err := env.stack.RegistryRequests(logAt)
			require.NoError(t, err)
			if plan == "cold" {
				released := layerDigests(t, pullImage(t, releaseRef+"@"+releaseDigest))
				for _, s := range served {
					require.False(t, s.Method == "GET" && released[s.Digest], "%s: the patch pulled release layer %s", plan, s.Digest)
				}
			}
			require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": 6 changed, 2 deleted")
			img := pullImage(t, patchRef+"@"+res.digest)
			ls := layers(t, img)
			require.Len(t, ls, len(releaseLayers)+1)
			top := layerEntries(t, ls[len(ls)-1])
			require.Equal(t, []string{"app", "app/.wh.extra.txt", "app/CHANGES.md", "app/assets", "app/assets/.wh.old.js", "app/assets/app.js", "app/assets/new.png", "app/debug.log", "app/package.json"}, names(top))
			requireSameFilesystem(t, full, filesystem(t, img))
		})
	}
}

// TestOneFileSourcePatch: APP with one file source into a directory. The
// file list once held nothing for it (it read the source as a directory),
// so a changed file gave "no change, the release itself": the old file.
func TestOneFileSourcePatch(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile":  {content: "ARG BASE\nARG RELEASE\nFROM ${BASE}\nAPP index.html /app/\nPATCH ${RELEASE}\n"},
		"index.html": {content: "v1\n"},
		"other.txt":  {content: "not shipped\n"},
	})
	releaseRef := env.stack.Ref("onefile/app", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef})
	require.NoError(t, err)
	releaseDigest := res.digest
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("v2\n"), 0o644))
	args := patchArgs(releaseRef)
	args["PATCH_MAX_SHARE"] = "100"
	res, err = buildInProcess(t, build{dir: dir, args: args, output: env.stack.Ref("onefile/app", "patch")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": 1 changed, 0 deleted")
	require.Equal(t, "v2\n", filesystem(t, pullImage(t, env.stack.Ref("onefile/app", "patch")+"@"+res.digest))["app/index.html"].Content)
}
