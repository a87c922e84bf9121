package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// bakeDepsStep is in the progress of a build that runs examples/Patchfile's
// dependency step.
const bakeDepsStep = "mkdir -p node_modules/$dep"

// TestBake builds examples/docker-bake.hcl's targets with `docker buildx
// bake` on a remote builder, in a copy of examples/, its variables set from
// the environment as users set them (the frontend through FRONTEND, the
// Patchfile's `# syntax=` line left as written), with buildx's default
// attestations on, which the file turns off. The release target pushes a
// full build with its inline cache; after one app file changed, the deploy
// target pushes a patch of it: the release's layers plus one layer holding
// that file, the dependency step not run.
func TestBake(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "examples")
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	cli := newBuildxCLI(t, env.warm, nil)
	bake := func(target string) (output string, digest string) {
		t.Helper()
		meta := filepath.Join(t.TempDir(), "metadata.json")
		cmd := cli.command("buildx", "bake", "--builder", cli.builder, "--progress=plain", "--metadata-file", meta, target)
		cmd.Dir = dir // bake's context "." is the working directory
		cmd.Env = append(cmd.Env, "BUILDX_NO_DEFAULT_ATTESTATIONS=0",
			"REGISTRY="+env.stack.Registry, "FRONTEND="+env.frontendTag, "BASE="+env.base, "TAG=v2")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "docker buildx bake %s: %s", target, out)
		dt, err := os.ReadFile(meta)
		require.NoError(t, err)
		var md map[string]struct {
			Digest     string `json:"containerimage.digest"`
			Descriptor struct {
				MediaType types.MediaType `json:"mediaType"`
			} `json:"containerimage.descriptor"`
		}
		require.NoError(t, json.Unmarshal(dt, &md), "%s", dt)
		res := md[target]
		require.NotEmpty(t, res.Digest, "bake's metadata names the %s image: %s", target, dt)
		require.True(t, res.Descriptor.MediaType.IsImage(), "an image manifest, no attestation index: %s", res.Descriptor.MediaType)
		return string(out), res.Digest
	}

	releaseRef := env.stack.Ref("shop/web", "release")
	out, releaseDigest := bake("release")
	require.Contains(t, out, decide.FullBuildPrefix)
	require.Contains(t, out, bakeDepsStep)
	release := pullImage(t, releaseRef)
	require.Equal(t, releaseDigest, digestOf(t, release), "the release tag is what bake built")
	require.Contains(t, configFields(t, release), "moby.buildkit.cache.v0", "the release carries its inline cache")
	require.Contains(t, filesystem(t, release)["app/src/routes.js"].Content, "module.exports")

	routes := "module.exports = { '/': 'edited by TestBake' };\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "routes.js"), []byte(routes), 0o644))
	out, deployDigest := bake("deploy")
	require.Contains(t, out, decide.PatchPrefix+releaseDigest+": 1 changed, 0 deleted")
	require.NotContains(t, out, bakeDepsStep, "the patch did not run the dependency stage")
	deploy := pullImage(t, env.stack.Ref("shop/web", "v2"))
	require.Equal(t, deployDigest, digestOf(t, deploy), "the deploy is pushed as ${IMAGE}:${TAG}")
	requirePatchOf(t, release, releaseDigest, deploy, []string{"app", "app/src", "app/src/routes.js"})
	require.Equal(t, routes, filesystem(t, deploy)["app/src/routes.js"].Content)
}

// TestCompose builds examples/compose.yaml's service with `docker compose
// build --push`, which runs `docker buildx bake` on the remote builder (no
// Docker Engine is needed), its build args taken from the environment and
// left out when unset: a release (PATCH_MAX_SHARE=0, PATCH unset), then,
// after one app file changed, a deploy with PATCH=<the release>: the
// release's layers plus one layer holding that file, pushed as a plain
// manifest (the file turns attestations off).
func TestCompose(t *testing.T) {
	require.FileExists(t, filepath.Join(env.stack.ToolsDir, "docker-compose"), "run hack/install-tools.sh")
	dir := filepath.Join(t.TempDir(), "examples")
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples"))))
	cli := newBuildxCLI(t, env.warm, nil)
	image := env.stack.Registry + "/compose/web"
	compose := func(vars ...string) string {
		t.Helper()
		cmd := cli.command("compose", "--progress=plain", "build", "--builder", cli.builder, "--push")
		cmd.Dir = dir
		cmd.Env = append(cmd.Env, "BUILDX_NO_DEFAULT_ATTESTATIONS=0",
			"IMAGE="+image, "BUILDKIT_SYNTAX="+env.frontendTag, "BASE="+env.base)
		cmd.Env = append(cmd.Env, vars...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "docker compose build: %s", out)
		return string(out)
	}

	out := compose("TAG=release", "PATCH_MAX_SHARE=0")
	require.Contains(t, out, decide.FullBuildPrefix)
	require.NotContains(t, out, "PATCH disabled", "PATCH unset is not PATCH=")
	require.Contains(t, out, bakeDepsStep)
	release := pullImage(t, image+":release")
	releaseDigest := digestOf(t, release)

	routes := "module.exports = { '/': 'edited by TestCompose' };\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "routes.js"), []byte(routes), 0o644))
	out = compose("TAG=v2", "PATCH="+image+":release")
	require.Contains(t, out, decide.PatchPrefix+releaseDigest+": 1 changed, 0 deleted")
	require.NotContains(t, out, bakeDepsStep, "the patch did not run the dependency stage")
	deploy := pullImage(t, image+":v2")
	requirePatchOf(t, release, releaseDigest, deploy, []string{"app", "app/src", "app/src/routes.js"})
	require.Equal(t, routes, filesystem(t, deploy)["app/src/routes.js"].Content)
	require.NotEmpty(t, configOf(t, deploy).Config.Labels["com.docker.compose.project"], "Compose's labels land on the image, as with a Dockerfile")
	ref, err := name.ParseReference(image+":v2", name.Insecure)
	require.NoError(t, err)
	desc, err := remote.Head(ref)
	require.NoError(t, err)
	require.True(t, desc.MediaType.IsImage(), "an image manifest, no attestation index: %s", desc.MediaType)
}
