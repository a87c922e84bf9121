package convert

import (
	"strings"
	"testing"

	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/stretchr/testify/require"
)

// identityPatchfile is the Patchfile the identity tests vary.
const identityPatchfile = `FROM node:20@` + fake.TestDigest + `
ARG NPM_TAG=latest
ENV NODE_ENV=production
WORKDIR /app
DEPS package.json package-lock.json
RUN npm ci --tag $NPM_TAG
APP --chown=1000:1000 . /app
PATCH registry.example.com/shop/web:release
EXPOSE 8080
CMD ["node", "src/server.js"]
`

// identityOf converts a Patchfile and returns the identity it records.
func identityOf(t *testing.T, patchfile string, files fake.Context, args map[string]string) decide.Identity {
	t.Helper()
	res, _, err := convert(t, patchfile, files, args)
	require.NoError(t, err)
	require.Equal(t, res.Identity.Labels()[decide.LabelDeps], res.Image.Config.Labels[decide.LabelDeps])
	return res.Identity
}

// replace returns the identity Patchfile with old replaced by new, failing
// if old is not in it (so a case cannot silently test nothing).
func replace(t *testing.T, old, new string) string {
	t.Helper()
	require.Contains(t, identityPatchfile, old)
	return strings.Replace(identityPatchfile, old, new, 1)
}

func TestIdentityIsStable(t *testing.T) {
	a := identityOf(t, identityPatchfile, fake.Shop(), nil)
	b := identityOf(t, identityPatchfile, fake.Shop(), nil)
	require.Equal(t, a, b)
	require.Equal(t, fake.TestDigest, a.Base.String())
	require.NoError(t, a.Deps.Validate())
	require.NoError(t, a.App.Validate())
}

func TestIdentityChanges(t *testing.T) {
	base := identityOf(t, identityPatchfile, fake.Shop(), nil)
	otherDigest := "sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		name      string
		patchfile func(t *testing.T) string
		files     func(fake.Context)
		args      map[string]string
		deps, app bool // whether Identity.Deps and Identity.App must change
	}{
		{name: "DEPS file content", files: func(fc fake.Context) { fc["package-lock.json"] = `{"lockfileVersion": 2}` }, deps: true},
		{name: "DEPS file list", patchfile: func(t *testing.T) string {
			return replace(t, "DEPS package.json package-lock.json", "DEPS package.json")
		}, deps: true},
		{name: "DEPS owner", patchfile: func(t *testing.T) string {
			return replace(t, "DEPS package.json", "DEPS --chown=1000 package.json")
		}, deps: true},
		{name: "RUN line", patchfile: func(t *testing.T) string {
			return replace(t, "RUN npm ci --tag $NPM_TAG", "RUN npm ci --omit=dev --tag $NPM_TAG")
		}, deps: true},
		{name: "extra RUN", patchfile: func(t *testing.T) string {
			return replace(t, "APP --chown", "RUN npm prune\nAPP --chown")
		}, deps: true},
		{name: "ENV before APP", patchfile: func(t *testing.T) string {
			return replace(t, "ENV NODE_ENV=production", "ENV NODE_ENV=development")
		}, deps: true},
		{name: "WORKDIR before APP", patchfile: func(t *testing.T) string {
			return replace(t, "WORKDIR /app", "WORKDIR /srv")
		}, deps: true},
		{name: "ARG default", patchfile: func(t *testing.T) string {
			return replace(t, "ARG NPM_TAG=latest", "ARG NPM_TAG=next")
		}, deps: true},
		{name: "build arg", args: map[string]string{"NPM_TAG": "next"}, deps: true},
		{name: "base digest", patchfile: func(t *testing.T) string {
			return replace(t, "node:20@"+fake.TestDigest, "node:20@"+otherDigest)
		}, deps: true},
		{name: "app file content", files: func(fc fake.Context) { fc["src/server.js"] = `console.log("changed")` }},
		{name: "app file added and removed", files: func(fc fake.Context) {
			fc["src/new.js"] = "new"
			delete(fc, "README.md")
		}},
		{name: "CMD after APP", patchfile: func(t *testing.T) string {
			return replace(t, `CMD ["node", "src/server.js"]`, `CMD ["node", "src/main.js"]`)
		}},
		{name: "EXPOSE after APP", patchfile: func(t *testing.T) string {
			return replace(t, "EXPOSE 8080", "EXPOSE 9090")
		}},
		{name: "ENV after APP", patchfile: func(t *testing.T) string {
			return replace(t, "EXPOSE 8080", "ENV PORT=8080")
		}},
		{name: "PATCH candidates", patchfile: func(t *testing.T) string {
			return replace(t, "shop/web:release", "shop/web:previous")
		}},
		{name: "build arg not used", args: map[string]string{"UNUSED": "1"}},
		{name: "APP --chown", patchfile: func(t *testing.T) string {
			return replace(t, "APP --chown=1000:1000", "APP --chown=1001:1001")
		}, app: true},
		{name: "APP --chmod", patchfile: func(t *testing.T) string {
			return replace(t, "APP --chown=1000:1000", "APP --chown=1000:1000 --chmod=0644")
		}, app: true},
		{name: "APP dest", patchfile: func(t *testing.T) string {
			return replace(t, "APP --chown=1000:1000 . /app", "APP --chown=1000:1000 . /srv/app")
		}, app: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			patchfile := identityPatchfile
			if tc.patchfile != nil {
				patchfile = tc.patchfile(t)
			}
			files := fake.Shop()
			if tc.files != nil {
				tc.files(files)
			}
			got := identityOf(t, patchfile, files, tc.args)
			if tc.deps {
				require.NotEqual(t, base.Deps, got.Deps, "Identity.Deps must change")
			} else {
				require.Equal(t, base.Deps, got.Deps, "Identity.Deps must not change")
			}
			if tc.app {
				require.NotEqual(t, base.App, got.App, "Identity.App must change")
			} else {
				require.Equal(t, base.App, got.App, "Identity.App must not change")
			}
		})
	}
}

func TestIdentityPlatform(t *testing.T) {
	amd := identityOf(t, identityPatchfile, fake.Shop(), nil)
	arm := identityOf(t, strings.Replace(identityPatchfile, "FROM ", "FROM --platform=linux/arm64 ", 1), fake.Shop(), nil)
	require.Equal(t, amd.Base, arm.Base, "one index digest for both platforms")
	require.NotEqual(t, amd.Deps, arm.Deps)
	require.Equal(t, amd.App, arm.App)
}
