package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/opencontainers/go-digest"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/stretchr/testify/require"
)

// releaseResolver serves release configs by reference, and the base config
// for anything else.
type releaseResolver struct {
	releases map[string][]byte
}

func (r *releaseResolver) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	for name, cfg := range r.releases {
		if strings.HasPrefix(ref, name) {
			return ref, digest.FromBytes(cfg), cfg, nil
		}
	}
	if strings.Contains(ref, "shop/locked") {
		return "", "", nil, fmt.Errorf("failed to authorize: 401 Unauthorized")
	}
	if strings.Contains(ref, "shop/") {
		// containerd's resolver's words for a tag that is not there.
		return "", "", nil, fmt.Errorf("%s: not found", ref)
	}
	return (&fake.Resolver{}).ResolveImageConfig(ctx, ref, opt)
}

// releaseConfig is the config a full build of res would push, with labels
// edited by edit, and BuildKit's inline cache when withCache.
func releaseConfig(t *testing.T, res *convert.Result, withCache bool, edit func(labels map[string]string)) []byte {
	t.Helper()
	labels := maps.Clone(res.Image.Config.Labels)
	if edit != nil {
		edit(labels)
	}
	cfg := map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": labels},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{ // base, dependency step, app
			"sha256:" + strings.Repeat("1", 64), "sha256:" + strings.Repeat("2", 64), "sha256:" + strings.Repeat("3", 64)}},
	}
	if res.AppList != nil {
		enc, err := res.AppList.Encode()
		require.NoError(t, err)
		cfg[filelist.ConfigField] = enc
	}
	if withCache {
		cfg["moby.buildkit.cache.v0"] = "W3siZGlnZXN0Ijoic2hhMjU2OmFiYyJ9XQ=="
	}
	dt, err := json.Marshal(cfg)
	require.NoError(t, err)
	return dt
}

const decidePatchfile = fake.PinnedFrom + `WORKDIR /app
DEPS package.json package-lock.json
RUN npm ci
APP . /app
PATCH shop/web:release shop/web:older
`

func TestDecideReusesTheDependencyStage(t *testing.T) {
	released, _, err := convertText(t, decidePatchfile, fake.Shop(), nil)
	require.NoError(t, err)
	changed := fake.Shop()
	changed["src/server.js"] = `console.log("ho")`
	rewritten := fake.Shop()
	rewritten["src/server.js"] = `console.log("a much longer line than before, to weigh more than half the app")`
	otherApp := func(l map[string]string) { l[decide.LabelApp] = "sha256:" + strings.Repeat("a", 64) }
	otherDeps := func(l map[string]string) { l[decide.LabelDeps] = "sha256:" + strings.Repeat("d", 64) }

	cases := []struct {
		name     string
		releases map[string][]byte
		args     map[string]string
		files    fake.Context
		patch    bool   // a patch build
		depsFrom string // the release DepsFrom names ("" for none)
		cache    bool   // the build imports its cache
		warn     bool
		stops    bool // the build stops (PATCH_ON_UNREACHABLE): summary is the error's
		summary  string
	}{
		{name: "patch", releases: map[string][]byte{"docker.io/shop/web:release": releaseConfig(t, released, true, nil)},
			files: changed, patch: true, summary: "patch of release"},
		{name: "re-release rule takes the dependency stage from the release's cache",
			releases: map[string][]byte{"docker.io/shop/web:release": releaseConfig(t, released, true, nil)},
			files:    rewritten, depsFrom: "docker.io/shop/web:release", cache: true, summary: "more than PATCH_MAX_SHARE=50%"},
		{name: "re-release takes the dependency stage from the release's cache",
			releases: map[string][]byte{"docker.io/shop/web:release": releaseConfig(t, released, true, nil)},
			args:     map[string]string{decide.KeyPatchMaxShare: "0"}, files: changed,
			depsFrom: "docker.io/shop/web:release", cache: true, summary: "PATCH_MAX_SHARE=0: a new release instead of patching release"},
		{name: "no change with PATCH_MAX_SHARE=0 is the release itself",
			releases: map[string][]byte{"docker.io/shop/web:release": releaseConfig(t, released, true, nil)},
			args:     map[string]string{decide.KeyPatchMaxShare: "0"}, files: fake.Shop(), patch: true, summary: "no change, the release itself"},
		{name: "release without inline cache: say how to get one",
			releases: map[string][]byte{"docker.io/shop/web:release": releaseConfig(t, released, false, nil)},
			args:     map[string]string{decide.KeyPatchMaxShare: "0"}, files: changed,
			depsFrom: "docker.io/shop/web:release", summary: "no inline build cache to take it from (build releases with --cache-to type=inline)"},
		{name: "APP spec changed: full build, dependency stage reused",
			releases: map[string][]byte{
				"docker.io/shop/web:release": releaseConfig(t, released, true, otherApp),
				"docker.io/shop/web:older":   releaseConfig(t, released, false, otherDeps),
			},
			files: changed, depsFrom: "docker.io/shop/web:release", cache: true, summary: "APP destination, --chown or --chmod changed"},
		{name: "dependencies changed: nothing to reuse, no warning",
			releases: map[string][]byte{
				"docker.io/shop/web:release": releaseConfig(t, released, true, otherDeps),
				"docker.io/shop/web:older":   releaseConfig(t, released, true, otherDeps),
			},
			files: changed, summary: "dependencies changed since release"},
		{name: "an unreachable candidate is skipped, the next one patches",
			releases: map[string][]byte{"docker.io/shop/web:older": releaseConfig(t, released, true, nil)},
			files:    changed, patch: true, summary: "patch of release"},
		{name: "the second candidate holds the dependency stage",
			releases: map[string][]byte{
				"docker.io/shop/web:release": releaseConfig(t, released, true, otherDeps),
				"docker.io/shop/web:older":   releaseConfig(t, released, true, otherApp),
			},
			files: changed, depsFrom: "docker.io/shop/web:older", cache: true, summary: "APP destination, --chown or --chmod changed"},
		{name: "no release yet: a full build, no warning", releases: map[string][]byte{}, files: changed,
			summary: "full build: no release at shop/web:release yet; no release at shop/web:older yet"},
		{name: "no release yet with PATCH_MAX_SHARE=0: no warning", releases: map[string][]byte{}, files: changed,
			args: map[string]string{decide.KeyPatchMaxShare: "0"}, summary: "no release at shop/web:release yet"},
		{name: "a config that would decode to far more than its size is not read",
			releases: map[string][]byte{
				"docker.io/shop/web:release": []byte(`{"architecture":"amd64","os":"linux","history":[{}` + strings.Repeat(`,{}`, 100_000/2) + `]}`),
			},
			files: changed, warn: true, summary: "candidate shop/web:release has an image config that is not read (it holds more than 100000 JSON values)"},
		{name: "a config over the size bound is not read", releases: map[string][]byte{
			"docker.io/shop/web:release": []byte(`{"architecture":"amd64","os":"linux","x":"` + strings.Repeat("a", 16<<20) + `"}`)},
			files: changed, warn: true, summary: "candidate shop/web:release has an image config that is not read (it is 16777260 bytes, more than the 16 MiB a release's can be)"},
		{name: "a config that is not JSON is not read", releases: map[string][]byte{"docker.io/shop/web:release": []byte(`{"os":`)},
			files: changed, warn: true, summary: "candidate shop/web:release has an image config that is not read (unexpected end of JSON input)"},
		{name: "an unreachable candidate warns, with PATCH_ON_UNREACHABLE=full", releases: map[string][]byte{}, files: changed,
			args: map[string]string{"PATCH": "shop/locked:release shop/web:release", decide.KeyOnUnreachable: "full"}, warn: true,
			summary: "candidate shop/locked:release unreachable (failed to authorize: 401 Unauthorized); no release at shop/web:release yet"},
		{name: "an unreachable candidate stops the build by default", releases: map[string][]byte{}, files: changed,
			args: map[string]string{"PATCH": "shop/locked:release shop/web:release"}, stops: true,
			summary: "PATCH: candidate shop/locked:release unreachable (failed to authorize: 401 Unauthorized): the deploy stops rather than build in full"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := convertText(t, decidePatchfile, tc.files, tc.args)
			require.NoError(t, err)
			resolver := &releaseResolver{releases: tc.releases}
			opt := convert.Opt{TargetPlatform: &amd64, MetaResolver: resolver}
			opt.BuildArgs = tc.args
			d, err := decision(context.Background(), res, opt, newCandidateReader(opt))
			if tc.stops {
				var stop *stopError
				require.ErrorAs(t, err, &stop)
				require.ErrorContains(t, err, tc.summary)
				require.ErrorContains(t, err, "--build-arg PATCH_ON_UNREACHABLE=full")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.patch, d.Release != nil, d.Summary())
			if !tc.patch {
				// Tools and tests tell the paths apart by these words.
				require.NotContains(t, d.Summary(), "patch of release")
			}
			require.Contains(t, d.Summary(), tc.summary)
			require.Equal(t, tc.warn, d.Warns(), d.Summary())
			out, err := outputOf(context.Background(), res, opt, newCandidateReader(opt))
			require.NoError(t, err)
			if tc.depsFrom == "" {
				require.Nil(t, d.DepsFrom, d.Summary())
				require.Empty(t, out.cacheFrom)
				return
			}
			require.NotNil(t, d.DepsFrom, d.Summary())
			want := digest.FromBytes(tc.releases[tc.depsFrom])
			require.Equal(t, want, d.DepsFrom.Digest)
			if !tc.cache {
				require.Empty(t, out.cacheFrom)
				require.Len(t, out.cacheImports(nil), 0)
				return
			}
			require.Equal(t, "docker.io/shop/web@"+want.String(), out.cacheFrom)
			imports := out.cacheImports(nil)
			require.Len(t, imports, 1)
			require.Equal(t, "registry", imports[0].Type)
			require.Equal(t, out.cacheFrom, imports[0].Attrs["ref"])
			require.Contains(t, d.Summary(), "dependency stage from release "+want.String())
			// The exporter sees the release's base and dependency layers as the base.
			require.Equal(t, d.DepsFrom.Image.RootFS.DiffIDs[:2], out.baseImage.RootFS.DiffIDs)
		})
	}
}

// TestDecideCapsTheReasons: 500 unusable candidates make a progress line
// that names three and counts the rest; the warning's detail has them all.
func TestDecideCapsTheReasons(t *testing.T) {
	var refs []string
	for i := range 500 {
		refs = append(refs, fmt.Sprintf("shop/locked%d:release", i))
	}
	args := map[string]string{"PATCH": strings.Join(refs, " "), decide.KeyOnUnreachable: decide.OnUnreachableFull}
	res, _, err := convertText(t, decidePatchfile, fake.Shop(), args)
	require.NoError(t, err)
	resolver := &releaseResolver{}
	opt := convert.Opt{TargetPlatform: &amd64, MetaResolver: resolver}
	opt.BuildArgs = args
	out, err := outputOf(context.Background(), res, opt, newCandidateReader(opt))
	require.NoError(t, err)
	require.Contains(t, out.warn, "candidate shop/locked2:release unreachable (failed to authorize: 401 Unauthorized); and 497 more candidates; building in full")
	require.NotContains(t, out.warn, "shop/locked3:")
	require.Less(t, len(out.warn), 400)
	require.Len(t, out.warnDetail, 500)
	require.Contains(t, out.warnDetail[499], "candidate shop/locked499:release unreachable")
}

// TestDecideAppShapes: the APP forms a patch cannot take build in full and
// say why; every other form is patched.
func TestDecideAppShapes(t *testing.T) {
	for _, tc := range []struct {
		app, reason string
	}{
		{app: "APP src/server.js /app/server.js", reason: "patch builds need APP to copy into a directory: end its destination with /"},
		{app: "APP --exclude=*.md src static /app/"},
		{app: "APP --exclude=*.md s* README.md /app/"},
		{app: "APP package.json src static *.md /app/"},
		{app: "APP --chmod=0644 --chown=1:1 --exclude=*.md . /app"},
		{app: "APP src/server.js /app/"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			pf := fake.PinnedFrom + "WORKDIR /app\nDEPS package.json package-lock.json\nRUN npm ci\n" + tc.app + "\nPATCH shop/web:release\n"
			released, _, err := convertText(t, pf, fake.Shop(), nil)
			require.NoError(t, err)
			changed := fake.Shop()
			changed["src/server.js"] = `console.log("ho")`
			res, _, err := convertText(t, pf, changed, nil)
			require.NoError(t, err)
			resolver := &releaseResolver{releases: map[string][]byte{"docker.io/shop/web:release": releaseConfig(t, released, true, nil)}}
			opt := convert.Opt{TargetPlatform: &amd64, MetaResolver: resolver}
			opt.BuildArgs = map[string]string{decide.KeyPatchMaxShare: "100"}
			d, err := decision(context.Background(), res, opt, newCandidateReader(opt))
			require.NoError(t, err)
			if tc.reason != "" {
				require.Nil(t, d.Release)
				require.Contains(t, d.Summary(), "full build: "+tc.reason)
				return
			}
			require.NotNil(t, d.Release, d.Summary())
			require.Contains(t, d.Summary(), ": 1 changed, 0 deleted")
		})
	}
}

// TestTransient: a read that may pass is tried again; an answer is not.
func TestTransient(t *testing.T) {
	const ref = "registry.example/app:release"
	for msg, want := range map[string]bool{
		"dial tcp 127.0.0.1:5000: connect: connection refused":        true,
		"unexpected status from GET request: 503 Service Unavailable": true,
		"no answer in 15s":                             true,
		ref + ": not found":                            false,
		"no match for platform in manifest: not found": false,
		"failed to authorize: failed to fetch anonymous token: 401 Unauthorized":     false,
		"pull access denied, repository does not exist or may require authorization": false,
	} {
		require.Equal(t, want, transient(errors.New(msg), ref), msg)
	}
}
