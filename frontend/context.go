package frontend

import (
	"context"

	"github.com/moby/buildkit/client/llb"
	"github.com/patchfile/patchfile/frontend/buildcontext"
)

// ContextSource gives a conversion access to the build context. In a build
// it is the gateway (see gatewayContext); tests give it files from memory.
type ContextSource interface {
	// Main returns the build context with .dockerignore applied, plus opts.
	Main(ctx context.Context, opts ...llb.LocalOption) (*llb.State, error)
	// Files loads the context files matching patterns (.dockerignore
	// applied) and returns them sorted by path, with the state holding them.
	Files(ctx context.Context, name string, patterns []string) (*ContextFiles, error)
	// List lists the whole context without reading file contents;
	// withIgnored includes what .dockerignore excludes. It serves checks,
	// which must not cost a build.
	List(ctx context.Context, withIgnored bool) ([]buildcontext.File, error)
	// IgnorePatterns returns the .dockerignore (or Patchfile.dockerignore) patterns.
	IgnorePatterns(ctx context.Context) ([]string, error)
}

// ContextFiles are files read from the build context.
type ContextFiles struct {
	// State holds exactly the files read, so what is copied is what was hashed.
	State llb.State
	Files []buildcontext.File
}
