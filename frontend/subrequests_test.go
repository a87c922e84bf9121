package frontend

import (
	"testing"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/stretchr/testify/require"
)

// TestOutlineMounts: --call=outline lists the secrets, SSH sockets and
// cache mounts the RUN steps ask for, their ids read as the build reads
// them (source= wins; the target's base name without one), targets
// written with an ARG included, and ids naming a platform ARG expanded for
// the build's target platform.
func TestOutlineMounts(t *testing.T) {
	src, pf, _ := checkInputs(t, "ARG NPMRC=/root/.npmrc\n"+fake.PinnedFrom+`ARG NPMRC
ARG TARGETARCH
DEPS package.json
RUN --mount=type=secret,source=npm-token,target=$NPMRC \
    --mount=type=secret,target=/run/secrets/pip.conf \
    --mount=type=ssh \
    --mount=type=cache,target=/root/.npm \
    --mount=type=cache,id=go-$TARGETARCH,target=/root/.cache/go-build \
    npm ci
APP . /app
`, fake.Shop(), nil)
	// As a subrequest gets it: --platform in the build's config, no
	// TargetPlatform (a build sets that for each platform it builds).
	opt := convert.Opt{}
	opt.BuildPlatforms = []ocispecs.Platform{{OS: "linux", Architecture: "amd64"}}
	opt.TargetPlatforms = []ocispecs.Platform{{OS: "linux", Architecture: "arm64"}}
	o := patchfileOutline(src, pf, opt)
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
	require.Equal(t, []string{"/root/.npm", "go-arm64"}, caches)
}
