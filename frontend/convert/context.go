package convert

import (
	"context"

	"github.com/moby/buildkit/client/llb"
	"github.com/patchfile/patchfile/frontend/buildcontext"
)

// ContextSource gives a conversion access to the build context. In a build
// it is the gateway; tests give it files from memory.
type ContextSource interface {
	// Main returns the build context with .dockerignore applied, plus opts.
	Main(ctx context.Context, opts ...llb.LocalOption) (*llb.State, error)
	// Load returns the state of the context files matching patterns
	// (.dockerignore applied), without reading them: the very state Files
	// returns for the same name and patterns, so that a step built on it
	// early is the step a later definition holds.
	Load(ctx context.Context, name string, patterns []string) (llb.State, error)
	// Files loads the context files matching patterns (.dockerignore
	// applied): the state holding exactly them, so that what is copied is
	// what was hashed, and the files sorted by path.
	Files(ctx context.Context, name string, patterns []string) (llb.State, []buildcontext.File, error)
	// Outputs solves st, a tree the build makes (the outputs of a build
	// stage), and lists and hashes every entry of it, sorted by path, as
	// Files does for context files. An error of the solve is the build's.
	// The solve imports the client's cache imports and the registry
	// caches at buildCaches (BuildCacheRefs).
	Outputs(ctx context.Context, st llb.State, name string, buildCaches []string) ([]buildcontext.File, error)
}
