package stack

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
)

// ReadBlob returns a blob (manifest, config or layer) of the registry by
// digest ("sha256:<hex>"), read from its storage rather than over HTTP, so
// that inspecting what a build pushed adds nothing to the registry log that
// RegistryRequests reads.
func (s *Stack) ReadBlob(dgst string) ([]byte, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// blobPath is where the filesystem driver keeps a blob:
// docker/registry/v2/blobs/<algorithm>/<first two hex>/<hex>/data.
func (s *Stack) blobPath(dgst string) (string, error) {
	algo, hex, ok := strings.Cut(dgst, ":")
	if !ok || len(hex) < 2 || strings.ContainsAny(dgst, "/.") {
		return "", errors.Errorf("malformed digest %q", dgst)
	}
	return filepath.Join(s.Dir, "registry", "data", "docker", "registry", "v2", "blobs", algo, hex[:2], hex, "data"), nil
}
