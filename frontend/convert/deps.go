package convert

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"path"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/patchfile"
	pllb "github.com/patchfile/patchfile/llb"
	"github.com/pkg/errors"
)

// depsHasher computes the dependency hash: the identity of the dependency
// stage. It covers the pinned base, the platform's manifest, the platform,
// and the resolved text of every stage instruction with the paths, modes
// and contents of the DEPS files. Equal hashes mean equal stages.
type depsHasher struct {
	base digest.Digest
	h    hash.Hash
}

func newDepsHasher(base, manifest digest.Digest, platform ocispecs.Platform) *depsHasher {
	d := &depsHasher{base: base, h: sha256.New()}
	fmt.Fprintf(d.h, "patchfile deps v1\nFROM %s %s %s\n", base, manifest, platforms.FormatAll(platform))
	return d
}

// add records one resolved instruction; a nil hasher ignores it, which is
// what instructions after APP want.
func (d *depsHasher) add(kind, text string) {
	if d == nil {
		return
	}
	fmt.Fprintf(d.h, "%s %q\n", kind, text)
}

// Sum returns the dependency hash.
func (d *depsHasher) Sum() digest.Digest {
	return digest.NewDigestFromBytes(digest.SHA256, d.h.Sum(nil))
}

// convertDeps copies dependency manifests into the working directory,
// keeping their paths relative to the context (DEPS web/package.json lands
// at <workdir>/web/package.json), and hashes them.
func (c *converter) convertDeps(ctx context.Context, inst *patchfile.DepsInstruction) error {
	patterns := make([]string, 0, len(inst.Sources))
	for _, src := range inst.Sources {
		p, err := depsPattern(src, c.expand)
		if err != nil {
			return err
		}
		patterns = append(patterns, p)
	}
	depsCtx, files, err := c.opt.Context.Files(ctx, "dependency manifests", patterns)
	if err != nil {
		return err
	}
	for _, p := range patterns {
		if !AnyMatch(p, files) {
			return errors.Errorf("DEPS %s matches no file in the build context: check the path (relative to the context root) and that .dockerignore does not exclude it", p)
		}
	}
	chown, chmod, err := c.copyOwnership(inst.Chown, inst.Chmod, true)
	if err != nil {
		return err
	}
	workdir := c.image.Config.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	var action *llb.FileAction
	for _, f := range files {
		if f.Mode.IsDir() || specialKind(f.Mode) != "" {
			continue // DEPS copies files and symlinks; a directory source brings its files
		}
		info := pllb.PinnedCopy()
		info.CreateDestPath = true
		info.ChownOpt, info.Mode = chown, chmod
		dest := path.Join(workdir, f.Path)
		action = action.Copy(depsCtx, "/"+f.Path, dest, info) // a nil action starts the chain
		c.deps.add("DEPS", fmt.Sprintf("%s %o %s %s", dest, f.Mode, digest.NewDigestFromBytes(digest.SHA256, f.SHA256[:]), f.Linkname))
	}
	c.deps.add("DEPS-OPTS", inst.Chown+" "+inst.Chmod)
	c.step++
	c.state = c.state.File(action, llb.WithCustomName(c.stepName("DEPS "+strings.Join(patterns, " "))), c.location(inst))
	c.addHistory("DEPS "+strings.Join(patterns, " "), true)
	return nil
}

// depsPattern is the context path a DEPS source names, expanded.
func depsPattern(src string, expand func(string) (string, error)) (string, error) {
	p, err := expand(src)
	if err != nil {
		return "", err
	}
	p, err = ContextPath(p)
	return p, errors.Wrap(err, "DEPS")
}

// ContextPath cleans a source path and keeps it inside the build context.
func ContextPath(p string) (string, error) {
	clean := path.Clean("/" + p)[1:]
	if c := path.Clean(p); c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.Errorf("%s is outside the build context: sources are paths inside the context directory", p)
	}
	if clean == "" {
		clean = "."
	}
	return clean, nil
}

// AnyMatch tells whether a pattern (as .dockerignore writes them) matches a file.
func AnyMatch(pattern string, files []buildcontext.File) bool {
	pm, err := patternmatcher.New([]string{pattern})
	if err != nil {
		return false
	}
	for _, f := range files {
		if ok, _ := pm.MatchesOrParentMatches(f.Path); ok {
			return true
		}
	}
	return false
}
