package frontend

import (
	"context"
	"crypto/sha256"
	"os"

	"github.com/moby/buildkit/client/llb"
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
	List(ctx context.Context, withIgnored bool) ([]ContextFile, error)
	// IgnorePatterns returns the .dockerignore (or Patchfile.dockerignore) patterns.
	IgnorePatterns(ctx context.Context) ([]string, error)
}

// ContextFiles are files read from the build context.
type ContextFiles struct {
	// State holds exactly the files read, so what is copied is what was hashed.
	State llb.State
	Files []ContextFile
}

// ContextFile is one entry of the build context: a regular file, a
// symlink or a directory.
type ContextFile struct {
	Path     string // slash-separated, relative to the context root
	Mode     os.FileMode
	UID, GID uint32
	Linkname string // a symlink's target
	// Size and SHA256 describe a regular file's content. Reading the
	// context streams each file through the hash; contents are not kept.
	Size   int64
	SHA256 [sha256.Size]byte
}

// NewContextFile describes a regular file from its content (for sources
// that hold files in memory).
func NewContextFile(p string, mode os.FileMode, data []byte) ContextFile {
	return ContextFile{Path: p, Mode: mode, Size: int64(len(data)), SHA256: sha256.Sum256(data)}
}
