package integration

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/sbom"
	"github.com/stretchr/testify/require"
)

var scannerOnce struct {
	sync.Once
	ref string
	err error
}

// sbomScanner is the tests' SBOM generator (internal/testscanner) in the
// test registry, by tag, as users name one in --attest type=sbom,generator=.
func sbomScanner(t *testing.T) string {
	t.Helper()
	scannerOnce.Do(func() {
		ref := env.stack.Ref("testscanner", "test")
		_, scannerOnce.err = env.stack.PushScannerImage(context.Background(), env.warm, env.repoRoot, ref)
		scannerOnce.ref = ref
	})
	require.NoError(t, scannerOnce.err)
	return scannerOnce.ref
}

// sbomApp is an app whose image holds npm packages: two the dependency
// stage installs, the app's own manifest and a vendored library.
const sbomPatchfile = `ARG BASE
ARG RELEASE
FROM ${BASE}
WORKDIR /app
DEPS package.json
RUN for p in left-pad@1.3.0 lodash@4.17.21; do \
      mkdir -p node_modules/${p%@*} && \
      echo "{\"name\":\"${p%@*}\",\"version\":\"${p#*@}\"}" > node_modules/${p%@*}/package.json; \
    done
APP . /app
PATCH ${RELEASE}
`

// sbomFlags ask each CLI for an SBOM from the tests' generator and a
// mode=max provenance, as `--sbom=true --provenance=mode=max` does with
// BuildKit's default generator.
func sbomFlags(epName, scanner string) []string {
	if epName == "buildx" {
		return []string{"--attest", "type=sbom,generator=" + scanner, "--provenance=mode=max"}
	}
	return []string{"--opt", "attest:sbom=generator=" + scanner, "--opt", "attest:provenance=mode=max"}
}

// TestSBOMOfAPatch releases an app with an SBOM and a provenance through
// buildctl and buildx, then deploys a change that adds, edits and deletes
// files (a vendored package among them) on a cold builder. The patch's
// SBOM is the release's plus a scan of the patch's files: it lists what a
// full build's scan of the same inputs lists, no release layer is pulled,
// and the exporter places the new package's file in the patch layer. A
// change to a file the release's SBOM names is scanned whole, and says so.
func TestSBOMOfAPatch(t *testing.T) {
	scanner := sbomScanner(t)
	for _, ep := range entryPoints[1:] { // the CLIs: attestations are their flags
		t.Run(ep.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]file{
				"Patchfile":               {content: sbomPatchfile},
				"package.json":            {content: `{"name":"shop","version":"1.0.0"}`},
				"src/index.js":            {content: "module.exports = 1;\n"},
				"src/old.js":              {content: "module.exports = 'old';\n"},
				"vendor/old/package.json": {content: `{"name":"old-lib","version":"0.9.0"}`},
				"vendor/old/index.js":     {content: "module.exports = 'old-lib';\n"},
			})
			releaseRef := env.stack.Ref("sbom/"+ep.name, "release")
			args := map[string]string{"BASE": env.base, "RELEASE": releaseRef}
			flags := sbomFlags(ep.name, scanner)
			res, err := ep.build(t, build{dir: dir, args: args, output: releaseRef, flags: flags})
			require.NoError(t, err, res.output)
			require.Contains(t, res.output, "scanning the image with "+scanner[:strings.LastIndex(scanner, ":")]+"@sha256:")
			relDigest := res.digest
			require.Equal(t, []string{"left-pad@1.3.0", "lodash@4.17.21", "old-lib@0.9.0", "shop@1.0.0"},
				imageSBOM(t, releaseRef+"@"+relDigest).Packages())
			releaseImage := platformImage(t, releaseRef+"@"+relDigest)

			// Adds a file and a package, edits a file, deletes a file.
			writeTree(t, dir, map[string]file{
				"src/index.js":             {content: "module.exports = 2;\n"},
				"vendor/tiny/package.json": {content: `{"name":"tiny","version":"0.1.0"}`},
				"vendor/tiny/index.js":     {content: "module.exports = 'tiny';\n"},
			})
			require.NoError(t, os.Remove(filepath.Join(dir, "src/old.js")))

			cold, err := env.stack.NewDaemon(context.Background(), "sbom-cold-"+ep.name)
			require.NoError(t, err)
			defer cold.Stop()
			logAt := env.stack.LogSize()
			patchRef := env.stack.Ref("sbom/"+ep.name, "patch")
			res, err = ep.build(t, build{dir: dir, args: args, output: patchRef, flags: flags, daemon: cold})
			require.NoError(t, err, res.output)
			served, err := env.stack.RegistryRequests(logAt)
			require.NoError(t, err)
			require.Contains(t, res.output, decide.PatchPrefix+relDigest+": 4 changed, 1 deleted")
			require.Contains(t, res.output, "scanning the patch's 3 changed files; the release's SBOM lists the rest")
			require.NotContains(t, res.output, "scanning the whole image")
			require.Empty(t, classifyPulls(t, served, releaseImage).releaseLayerDigests,
				"a patch with an SBOM pulls no release layer")

			patchSBOM := imageSBOM(t, patchRef+"@"+res.digest)
			require.Equal(t, []string{"left-pad@1.3.0", "lodash@4.17.21", "old-lib@0.9.0", "shop@1.0.0", "tiny@0.1.0"}, patchSBOM.Packages())
			patched := platformImage(t, patchRef+"@"+res.digest)
			ls := layers(t, patched)
			require.Len(t, ls, len(layers(t, releaseImage))+1, "the patch is the release plus one layer")
			top, err := ls[len(ls)-1].Digest()
			require.NoError(t, err)
			require.Equal(t, "layerID: "+top.String(), sbomFileComment(t, patchSBOM, "/app/vendor/tiny/package.json"),
				"the exporter places the patch's package in the patch layer")
			repo := strings.Replace(releaseRef[:strings.LastIndex(releaseRef, ":")], ":", "%3A", 1)
			require.Contains(t, provenanceMaterials(t, patchRef+"@"+res.digest), "pkg:docker/"+repo+"?digest="+relDigest+"&",
				"the mode=max provenance of a patch names its release")

			// The same inputs built in full: the same packages.
			fullRef := env.stack.Ref("sbom/"+ep.name, "full")
			res, err = ep.build(t, build{dir: dir, args: withArgs(args, map[string]string{"PATCH": ""}), output: fullRef, flags: flags})
			require.NoError(t, err, res.output)
			require.Equal(t, imageSBOM(t, fullRef+"@"+res.digest).Packages(), patchSBOM.Packages(),
				"a patch's SBOM lists what a full build's does")

			// A change to a package the release's SBOM names: the whole
			// image is scanned, and the step says why.
			writeTree(t, dir, map[string]file{"vendor/old/package.json": {content: `{"name":"old-lib","version":"0.9.1"}`}})
			res, err = ep.build(t, build{dir: dir, args: args, output: patchRef, flags: flags})
			require.NoError(t, err, res.output)
			require.Contains(t, res.output, decide.PatchPrefix+relDigest)
			require.Contains(t, res.output, "scanning the whole image, as the release's SBOM names app/vendor/old/package.json, which the patch replaces or deletes")
			require.Equal(t, []string{"left-pad@1.3.0", "lodash@4.17.21", "old-lib@0.9.1", "shop@1.0.0", "tiny@0.1.0"},
				imageSBOM(t, patchRef+"@"+res.digest).Packages())
		})
	}
}

// attestationIndex reads an image index and returns it with the digest of
// its linux image manifest and of that manifest's attestation manifest.
func attestationIndex(t *testing.T, ref string) (v1.ImageIndex, v1.Hash, v1.Hash) {
	t.Helper()
	idx, im := remoteIndex(t, ref)
	var image, att v1.Hash
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" {
			image = d.Digest
		}
	}
	for _, d := range im.Manifests {
		if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" && d.Annotations["vnd.docker.reference.digest"] == image.String() {
			att = d.Digest
		}
	}
	require.NotEmpty(t, image.Hex, "%s has a linux image", ref)
	require.NotEmpty(t, att.Hex, "%s has an attestation manifest for its image", ref)
	return idx, image, att
}

// platformImage is the linux image of an index.
func platformImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	idx, image, _ := attestationIndex(t, ref)
	img, err := idx.Image(image)
	require.NoError(t, err)
	return img
}

// imageSBOM is the SPDX document attached to an index's linux image.
func imageSBOM(t *testing.T, ref string) *sbom.Document {
	t.Helper()
	idx, _, attDigest := attestationIndex(t, ref)
	att, err := idx.Image(attDigest)
	require.NoError(t, err)
	m, err := att.Manifest()
	require.NoError(t, err)
	var found []*sbom.Document
	for _, l := range m.Layers {
		if l.Annotations["in-toto.io/predicate-type"] != sbom.PredicateSPDX {
			continue
		}
		layer, err := att.LayerByDigest(l.Digest)
		require.NoError(t, err)
		rc, err := layer.Uncompressed()
		require.NoError(t, err)
		dt, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		doc, err := sbom.ReadStatement(dt)
		require.NoError(t, err)
		found = append(found, doc)
	}
	require.Len(t, found, 1, "%s has one SBOM", ref)
	return found[0]
}

// sbomFileComment is the comment of the file an SPDX document lists by name.
func sbomFileComment(t *testing.T, doc *sbom.Document, fileName string) string {
	t.Helper()
	st, err := doc.Statement()
	require.NoError(t, err)
	var s struct {
		Predicate struct {
			Files []struct {
				Name    string `json:"fileName"`
				Comment string `json:"comment"`
			} `json:"files"`
		} `json:"predicate"`
	}
	require.NoError(t, json.Unmarshal(st, &s))
	for _, f := range s.Predicate.Files {
		if f.Name == fileName {
			return f.Comment
		}
	}
	t.Fatalf("the SBOM lists no file %s", fileName)
	return ""
}
