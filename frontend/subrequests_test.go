package frontend

import (
	"testing"

	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/stretchr/testify/require"
)

// TestOutlineMounts: --call=outline lists the secrets, SSH sockets and
// cache mounts the RUN steps ask for, their ids read as the build reads
// them (source= wins; the target's base name without one), targets
// written with an ARG included.
func TestOutlineMounts(t *testing.T) {
	src, pf, _ := checkInputs(t, "ARG NPMRC=/root/.npmrc\n"+fake.PinnedFrom+`ARG NPMRC
DEPS package.json
RUN --mount=type=secret,source=npm-token,target=$NPMRC \
    --mount=type=secret,target=/run/secrets/pip.conf \
    --mount=type=ssh \
    --mount=type=cache,target=/root/.npm \
    npm ci
APP . /app
`, fake.Shop(), nil)
	o := patchfileOutline(src, pf, nil)
	var secrets, ssh, caches []string
	for _, s := range o.Secrets {
		secrets = append(secrets, s.Name)
	}
	for _, s := range o.SSH {
		ssh = append(ssh, s.Name)
	}
	for _, c := range o.Cache {
		caches = append(caches, c.ID)
	}
	require.Equal(t, []string{"npm-token", "pip.conf"}, secrets)
	require.Equal(t, []string{"default"}, ssh)
	require.Equal(t, []string{"/root/.npm"}, caches)
}
