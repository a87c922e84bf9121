package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// TestDefaultAttestations releases and patches examples/Patchfile with
// buildx's default attestations, as users build: each image is an index
// with the platform's manifest and a provenance attestation manifest; the
// patch reads the release through it, is the release plus one layer, and
// carries its own attestation.
func TestDefaultAttestations(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	dir = withSyntaxLine(t, dir, "Patchfile", env.frontendTag)
	release := env.stack.Ref("attest/app", "release")
	cli := newBuildxCLI(t, env.warm, nil)
	build := func(output string, args map[string]string) (string, string) {
		meta := filepath.Join(t.TempDir(), "metadata.json")
		cmdArgs := []string{"buildx", "build", "--builder", cli.builder, "--progress=plain", "-f", filepath.Join(dir, "Patchfile"),
			"--output", "type=image,name=" + output + ",push=true", "--metadata-file", meta}
		for k, v := range args {
			cmdArgs = append(cmdArgs, "--build-arg", k+"="+v)
		}
		out, err := cli.command(append(cmdArgs, dir)...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out), metadataDigest(t, meta)
	}
	_, relDigest := build(release, withArgs(exampleArgs(), map[string]string{"RELEASE": release, "PATCH": ""}))
	// The release carries buildx's provenance attestation.
	_, relImage, _ := attestationIndex(t, release+"@"+relDigest)

	writeTree(t, dir, map[string]file{"src/routes.js": {content: "module.exports = ['/', '/attested'];\n"}})
	patch := env.stack.Ref("attest/app", "patch")
	out, patchDigest := build(patch, withArgs(exampleArgs(), map[string]string{"RELEASE": release}))
	repo := strings.Replace(release[:strings.LastIndex(release, ":")], ":", "%3A", 1)
	require.Contains(t, provenanceMaterials(t, patch+"@"+patchDigest), "pkg:docker/"+repo+"?digest="+relDigest+"&",
		"the provenance of a patch names the release it patched, by its digest")
	require.Contains(t, out, decide.PatchPrefix+relDigest+": 1 changed, 0 deleted", "the release is named by its index digest")
	// The patch carries its own attestation.
	_, patchImage, _ := attestationIndex(t, patch+"@"+patchDigest)
	requirePatchOf(t, pullImage(t, release+"@"+relImage.String()), relDigest, pullImage(t, patch+"@"+patchImage.String()), []string{"app", "app/src", "app/src/routes.js"})
}

// provenanceMaterials returns the URIs of what the provenance attestation
// of an image index says the build used (SLSA v0.2 materials or v1
// resolved dependencies).
func provenanceMaterials(t *testing.T, ref string) string {
	t.Helper()
	idx, im := remoteIndex(t, ref)
	var uris []string
	for _, d := range im.Manifests {
		if d.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			continue
		}
		att, err := idx.Image(d.Digest)
		require.NoError(t, err)
		ls, err := att.Layers()
		require.NoError(t, err)
		for _, l := range ls {
			rc, err := l.Uncompressed()
			require.NoError(t, err)
			var st struct {
				Predicate struct {
					Materials []struct {
						URI string `json:"uri"`
					} `json:"materials"`
					BuildDefinition struct {
						ResolvedDependencies []struct {
							URI string `json:"uri"`
						} `json:"resolvedDependencies"`
					} `json:"buildDefinition"`
				} `json:"predicate"`
			}
			err = json.NewDecoder(rc).Decode(&st)
			rc.Close()
			require.NoError(t, err)
			for _, m := range st.Predicate.Materials {
				uris = append(uris, m.URI)
			}
			for _, m := range st.Predicate.BuildDefinition.ResolvedDependencies {
				uris = append(uris, m.URI)
			}
		}
	}
	return strings.Join(uris, "\n")
}
