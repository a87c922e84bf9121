package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/patchfile/patchfile/frontend"
	"github.com/stretchr/testify/require"
	"github.com/tonistiigi/fsutil"
)

// TestFullBuildStartsDependenciesEarly checks that a build that cannot be
// a patch (here PATCH=) runs its dependency step and copies its app files
// while the frontend hashes the app files, instead of after: both have
// started before the hashing step has completed. Without the early start
// neither could begin before the frontend had read the hashing step's
// list. And the app files' upload, of literal paths, starts before the
// dependency manifests are hashed (Prefetch).
func TestFullBuildStartsDependenciesEarly(t *testing.T) {
	dir := t.TempDir()
	files := map[string]file{
		"Patchfile": {content: reusePatchfile},
		// A new token: the step must run, not come from the cache.
		"deps.txt": {content: fmt.Sprintf("%s %d\n", t.Name(), time.Now().UnixNano())},
	}
	// 10,000 files take the frontend about a second to read and hash.
	for i := range 10000 {
		files[fmt.Sprintf("src/m%03d/f%03d.js", i/100, i%100)] = file{content: fmt.Sprintf("module.exports = %d;\n", i)}
	}
	writeTree(t, dir, files)

	c, err := env.warm.Client(context.Background())
	require.NoError(t, err)
	defer c.Close()
	fs, err := fsutil.NewFS(dir)
	require.NoError(t, err)
	ch := make(chan *client.SolveStatus)
	vertexes := map[string]*client.Vertex{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st := range ch {
			for _, v := range st.Vertexes {
				vertexes[v.Digest.String()] = v
			}
		}
	}()
	_, err = c.Build(context.Background(), client.SolveOpt{
		FrontendAttrs: map[string]string{"filename": "Patchfile", "build-arg:BASE": env.base, "build-arg:PATCH": "",
			// The frontend's image, so that it hashes in a step of its own,
			// whatever the size of the tree.
			"source": env.frontendImage, "build-arg:PATCH_HASH_STEP": "always"},
		LocalMounts: map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports: []client.ExportEntry{{Type: client.ExporterImage, Attrs: map[string]string{
			"name": env.stack.Ref("early/web", "release"), "push": "true"}}},
	}, "", frontend.Build, ch)
	<-done
	require.NoError(t, err)

	find := func(prefix string) *client.Vertex {
		for _, v := range vertexes {
			if strings.HasPrefix(v.Name, prefix) && v.Started != nil && v.Completed != nil {
				return v
			}
		}
		var names []string
		for _, v := range vertexes {
			names = append(names, v.Name)
		}
		t.Fatalf("no vertex %q among %q", prefix, names)
		return nil
	}
	run := find("[deps 3/3] RUN")
	copyApp := find("[app] copy the application files to /app/")
	hash := find("[internal] hash application files")
	t.Logf("RUN from %s, app copy from %s, hashing until %s", run.Started.Format(time.StampMilli), copyApp.Started.Format(time.StampMilli), hash.Completed.Format(time.StampMilli))
	for _, v := range []*client.Vertex{run, copyApp} {
		require.True(t, v.Started.Before(*hash.Completed),
			"%s started at %s, after the app files were hashed (%s)", v.Name, v.Started.Format(time.StampMilli), hash.Completed.Format(time.StampMilli))
	}
	// APP's sources are literal: their upload starts with the build, not
	// once the dependency manifests are hashed.
	load := find("[internal] load application files")
	manifests := find("[internal] hash dependency manifests")
	require.True(t, load.Started.Before(*manifests.Completed),
		"the app files' upload started at %s, after the dependency manifests were hashed (%s)", load.Started.Format(time.StampMilli), manifests.Completed.Format(time.StampMilli))
}

// TestEarlyDependenciesAreNotRestarted: the dependency step a full build
// starts early runs once. The app files hash quickly here, so the build's
// own (lazy) solve returns before the step is done; the frontend waits for
// it rather than return, which ended its request and killed the step
// (exit 137), for the export to run it again from the start.
func TestEarlyDependenciesAreNotRestarted(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile": {content: `ARG BASE
FROM ${BASE}
WORKDIR /app
DEPS deps.txt
RUN sleep 3 && cp deps.txt installed.txt
APP src /app/src
`},
		// A new token: the step must run, not come from the cache.
		"deps.txt":    {content: fmt.Sprintf("%s %d\n", t.Name(), time.Now().UnixNano())},
		"src/main.js": {content: "main\n"},
	})
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref("depsearly/restart", "x"), hashInBuilder: true})
	require.NoError(t, err)
	require.NotContains(t, res.output, "ERROR [deps 3/3] RUN", "the early step was killed: %s", res.output)
}
