package integration

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSecretsStayOut: what RUN --mount=type=secret mounts is used by the
// step but lands in no layer, label or history entry of the image.
func TestSecretsStayOut(t *testing.T) {
	const secret = "npm-token-7f3a9c1e5b"
	dir := t.TempDir()
	writeTree(t, dir, map[string]file{
		"Patchfile": {content: `ARG BASE
FROM ${BASE}
WORKDIR /app
DEPS deps.txt
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc \
    --mount=type=secret,id=token,env=TOKEN \
    echo "installed with an .npmrc of $(wc -c < /root/.npmrc) bytes and a token of ${#TOKEN} characters" > installed.txt
APP . /app
LABEL stage=secrets
`},
		"deps.txt":   {content: "dep\n"},
		"index.html": {content: "hi\n"},
	})
	ref := env.stack.Ref("secrets/app", "latest")
	res, err := buildInProcess(t, build{dir: dir, args: map[string]string{"BASE": env.base}, output: ref,
		secrets: map[string][]byte{"npmrc": []byte("//registry/:_authToken=" + secret), "token": []byte(secret)}})
	require.NoError(t, err)
	img := pullImage(t, ref+"@"+res.digest)

	require.Equal(t, "installed with an .npmrc of 43 bytes and a token of 20 characters\n", filesystem(t, img)["app/installed.txt"].Content, "the step saw the secrets")
	for i, l := range layers(t, img) {
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			require.NotContains(t, h.Name, ".npmrc", "layer %d holds the secret's mount point", i)
			dt, err := io.ReadAll(tr)
			require.NoError(t, err)
			require.False(t, bytes.Contains(dt, []byte(secret)), "layer %d, %s holds the secret", i, h.Name)
		}
		rc.Close()
	}
	require.False(t, strings.Contains(string(rawConfig(t, img)), secret), "the config (labels, history) holds the secret")
}
