package frontend

import (
	"context"
	"sync"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
)

// earlyStart owns one platform's background solves: the dependency stage
// and the copy of the app files, started before the app files are hashed
// when no candidate could be patched (start), which convert.Convert asks
// for through Opt.DepsReady once it knows the stage. The platform's build
// waits for them before it returns its result (wait), and on an error
// stops and waits for them (stop): a solve still in flight when the
// frontend returns its error can end the build with "context canceled"
// instead of that error.
type earlyStart struct {
	c       client.Client
	cands   *candidateReader
	imports []client.CacheOptionsEntry // the client's --cache-from
	args    map[string]string          // the build args
	// done is closed when the started solves end; nil when none started.
	done <-chan struct{}
}

// depsReady is convert.Opt.DepsReady.
func (s *earlyStart) depsReady(ctx context.Context, e *convert.BeforeApp) {
	s.done = s.start(ctx, e)
}

// wait waits for the started solves, or for ctx to end.
func (s *earlyStart) wait(ctx context.Context) error {
	if s.done == nil {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// stop waits for the started solves to return, once their context has
// been canceled.
func (s *earlyStart) stop() {
	if s.done != nil {
		<-s.done
	}
}

// start starts solving the dependency stage, in the background, when
// the build cannot be a patch whatever the app files hold: no candidate,
// or none of this build's platform, base, dependency stage and APP spec.
// Its steps then run while the app files are uploaded and hashed, instead
// of after, and so does the copy of the app files (BeforeApp.AppTree,
// checked by keepTree). When a candidate could be patched it does
// nothing: a patch must not run the stage at all.
//
// It returns a channel closed when that solve ends (nil if it started
// none): the build waits for it before it returns its result. A result is
// lazy, so the platform's own solve returns at once; if the frontend
// returned while the stage ran, its request would end and the export run
// the stage again from the start (TestEarlyDependenciesAreNotRestarted).
// Errors are the final solve's to report.
func (s *earlyStart) start(ctx context.Context, e *convert.BeforeApp) <-chan struct{} {
	c, cands, fromClient := s.c, s.cands, s.imports
	b, err := decideBuild(e, s.args)
	if err != nil {
		return nil // the decision reports it
	}
	maybe, depsFrom := decide.MightPatch(b, cands.resolve(ctx, e.Platform))
	if maybe {
		return nil // the app files decide
	}
	def, err := e.Deps.Marshal(ctx)
	if err != nil {
		return nil
	}
	imports := withReleaseCache(fromClient, depsFrom.CacheRef())
	var tree *llb.Definition
	if e.AppTree != nil {
		if tree, err = e.AppTree.Marshal(ctx); err == nil {
			e.AppTreeStarted = true
		}
	}
	var solves sync.WaitGroup
	for _, def := range []*llb.Definition{def, tree} {
		if def == nil {
			continue
		}
		solves.Go(func() {
			// Evaluate: a gateway solve is lazy otherwise, and runs nothing.
			_, _ = c.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), CacheImports: imports, Evaluate: true})
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		solves.Wait()
	}()
	return done
}

// keepTree checks the app tree a full build solved early (start)
// against the file list, directory by directory, and makes the build copy
// the files again, with the directory key, if any differs: a warm
// builder's cache can hold the early tree with a directory's old mode or
// owner (convert.Result.EarlyTree). Files cannot differ: a changed file
// changes the tree's cache key.
func (s *earlyStart) keepTree(ctx context.Context, res *convert.Result) error {
	c := s.c
	if !res.EarlyTree {
		return nil
	}
	ref, err := solveRef(ctx, c, &res.AppTree, "the early copy of the application files")
	if err != nil {
		return err
	}
	dirs := res.TreeDirs()
	paths := make([]string, len(dirs))
	for i, d := range dirs {
		paths[i] = d.Path
	}
	stats, err := statPaths(ctx, ref, paths)
	// A directory missing or unreadable is a difference too: copying
	// again is always right.
	stale := err != nil
	for i := 0; i < len(dirs) && !stale; i++ {
		stale = !sameDirMeta(dirs[i], stats[i])
	}
	if stale {
		res.UseKeyedTree()
	}
	return nil
}
