package buildcontext

import (
	"crypto/sha256"
	"os"
)

// File is one entry of the build context: a regular file, a
// symlink or a directory.
type File struct {
	Path     string // slash-separated, relative to the context root
	Mode     os.FileMode
	UID, GID uint32
	Linkname string // a symlink's target
	// Size and SHA256 describe a regular file's content. Reading the
	// context streams each file through the hash; contents are not kept.
	Size   int64
	SHA256 [sha256.Size]byte
}

// NewFile describes a regular file from its content (for sources
// that hold files in memory).
func NewFile(p string, mode os.FileMode, data []byte) File {
	return File{Path: p, Mode: mode, Size: int64(len(data)), SHA256: sha256.Sum256(data)}
}

// NotUTF8 says why a file name that is not UTF-8 stops a build, and the
// way out; both ways of reading the context (Walk in the builder, the
// gateway's reads) end their message with it.
const NotUTF8 = "is not valid UTF-8, which BuildKit's gateway cannot carry: rename it, or leave it out with .dockerignore (the Dockerfile frontend copies such names; Patchfile must read them)"
