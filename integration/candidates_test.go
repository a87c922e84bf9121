package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/stretchr/testify/require"
)

// TestPatchCandidates covers how a release is chosen: missing (quietly),
// foreign and password-protected candidates fall back to a full build
// with the reason (a login from docker login patches), the
// first usable candidate wins, --build-arg PATCH overrides the Patchfile,
// and a change too large for a patch makes a new release.
func TestPatchCandidates(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	releaseRef := env.stack.Ref("cand/app", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef})
	require.NoError(t, err)
	releaseDigest := res.digest
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src/a.js"), []byte("console.log('A');\n"), 0o644))

	missing := env.stack.Ref("cand/none", "release")
	// The release again, on a registry that wants a password the build
	// does not have.
	private, err := env.stack.StartAuthRegistry(context.Background(), "cand", "deployer", "s3cret")
	require.NoError(t, err)
	defer private.Stop()
	privateRef := private.Addr + "/cand/app:release"
	pushWithAuth(t, releaseRef+"@"+releaseDigest, privateRef, &authn.Basic{Username: private.User, Password: private.Password})
	cases := []struct {
		name    string
		args    map[string]string
		outputs []string
		// quiet: the build does not warn (the first release).
		quiet bool
		patch bool
	}{{
		name:    "foreign image",
		args:    map[string]string{"BASE": env.base, "RELEASE": env.base},
		outputs: []string{decide.FullBuildPrefix + "candidate " + env.base + " was not built by Patchfile", "warning PATCH: candidate"},
	}, {
		name:    "no release yet",
		args:    map[string]string{"BASE": env.base, "RELEASE": missing},
		outputs: []string{decide.FullBuildPrefix + "no release at " + missing + " yet"},
		quiet:   true,
	}, {
		name:    "needs credentials, PATCH_ON_UNREACHABLE=full",
		args:    map[string]string{"BASE": env.base, "RELEASE": privateRef, "PATCH_ON_UNREACHABLE": "full"},
		outputs: []string{decide.FullBuildPrefix + "candidate " + privateRef + " unreachable", "401 Unauthorized", "warning PATCH: candidate " + privateRef},
	}, {
		name:    "first usable of several",
		args:    map[string]string{"BASE": env.base, "PATCH": missing + " " + env.base + " " + releaseRef},
		outputs: []string{decide.PatchPrefix + releaseDigest + ": 1 changed, 0 deleted"},
		patch:   true,
	}, {
		name:    "PATCH build arg overrides the Patchfile",
		args:    map[string]string{"BASE": env.base, "RELEASE": missing, "PATCH": releaseRef},
		outputs: []string{decide.PatchPrefix + releaseDigest},
		patch:   true,
	}, {
		name:    "re-release rule",
		args:    map[string]string{"BASE": env.base, "RELEASE": releaseRef, "PATCH_MAX_SHARE": "1"},
		outputs: []string{"more than PATCH_MAX_SHARE=1%", "a new release is smaller to ship than patching release " + releaseDigest},
	}}
	t.Run("credentials from docker login", func(t *testing.T) {
		out := env.stack.Ref("cand/app", "logged-in")
		// buildx rewrites the Patchfile's syntax line: in this tiny app,
		// the Patchfile and src/a.js are most of the bytes.
		args := map[string]string{"BASE": env.base, "RELEASE": privateRef, "PATCH_MAX_SHARE": "100"}
		res, err := buildWithBuildx(t, build{dir: dir, args: args, output: out,
			logins: map[string]string{private.Addr: private.User + ":" + private.Password}})
		require.NoError(t, err)
		require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": 2 changed, 0 deleted")
		require.Equal(t, releaseDigest, configOf(t, pullImage(t, out+"@"+res.digest)).Config.Labels[decide.LabelRelease])
	})
	t.Run("needs credentials: the deploy stops", func(t *testing.T) {
		res, err := buildInProcess(t, build{dir: dir, args: map[string]string{"BASE": env.base, "RELEASE": privateRef}, output: env.stack.Ref("cand/app", "stopped")})
		require.Error(t, err)
		require.Contains(t, err.Error(), "PATCH: candidate "+privateRef+" unreachable (")
		require.Contains(t, err.Error(), "401 Unauthorized")
		require.Contains(t, err.Error(), "give the builder access to it (docker login), or pass --build-arg PATCH_ON_UNREACHABLE=full")
		require.NotContains(t, res.output, "(attempt 2 of 3)", "refused credentials are not tried again")
	})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := env.stack.Ref("cand/app", "case"+string(rune('a'+i)))
			res, err := buildInProcess(t, build{dir: dir, args: tc.args, output: out})
			require.NoError(t, err, "an unusable candidate that was read (or one unreachable, with PATCH_ON_UNREACHABLE=full) never fails the build")
			for _, want := range tc.outputs {
				require.Contains(t, res.output, want)
			}
			if tc.quiet {
				require.NotContains(t, res.output, "warning PATCH")
			}
			img := pullImage(t, out+"@"+res.digest)
			labels := configOf(t, img).Config.Labels
			if tc.patch {
				require.Equal(t, releaseDigest, labels[decide.LabelRelease])
			} else {
				require.NotContains(t, labels, decide.LabelRelease)
				require.True(t, strings.HasPrefix(labels[decide.LabelDeps], "sha256:"))
			}
			require.Equal(t, "console.log('A');\n", filesystem(t, img)["app/src/a.js"].Content, "either way, the image has the new file")
		})
	}
}

// pushWithAuth copies an image to a registry that needs credentials.
func pushWithAuth(t *testing.T, src, dst string, auth authn.Authenticator) {
	t.Helper()
	copyImage(t, src, dst, remote.WithAuth(auth))
	ref, err := name.ParseReference(dst, name.Insecure)
	require.NoError(t, err)
	_, err = remote.Get(ref)
	require.Error(t, err, "the registry refuses anonymous reads")
}
