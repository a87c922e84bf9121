package decide

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/stretchr/testify/require"
)

// The rules of the decision, each on its own and with no builder: releases
// are configs made here, candidates are resolved from a map.

var (
	amd64    = ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	identity = Identity{Base: digest.FromString("base"), Deps: digest.FromString("deps"), App: digest.FromString("app")}
)

func file(p, content string) filelist.Entry {
	return filelist.Entry{Path: p, Type: filelist.TypeFile, Mode: 0o644, Size: int64(len(content)), Digest: sha256.Sum256([]byte(content))}
}

// tree is an app tree of ten 100-byte files, with file 0 holding first.
func tree(first string) *filelist.List {
	l := &filelist.List{}
	for i := range 10 {
		content := fmt.Sprintf("%0100d", i)
		if i == 0 {
			content = first
		}
		l.Entries = append(l.Entries, file(fmt.Sprintf("f%d.js", i), content))
	}
	return l
}

// config is a release's image config: labels edited by edit, the file
// list of files (none when nil).
func config(t *testing.T, arch string, files *filelist.List, edit func(map[string]string)) []byte {
	t.Helper()
	labels := identity.Labels()
	if edit != nil {
		edit(labels)
	}
	cfg := map[string]any{"architecture": arch, "os": "linux", "config": map[string]any{"Labels": labels}}
	if files != nil {
		enc, err := files.Encode()
		require.NoError(t, err)
		cfg[filelist.ConfigField] = enc
	}
	dt, err := json.Marshal(cfg)
	require.NoError(t, err)
	return dt
}

// registry resolves candidates from configs by reference, and counts the
// candidates it was asked for.
type registry struct {
	configs map[string][]byte
	asked   []string
}

func (r *registry) resolve(t *testing.T) Resolve {
	return func(ref string) (*Release, *Reason) {
		r.asked = append(r.asked, ref)
		dt, ok := r.configs[ref]
		if !ok {
			return nil, Because(NotYetReleased, ref)
		}
		rel, err := ParseConfig(ref, digest.FromBytes(dt), dt)
		if err != nil {
			return nil, Because(ConfigNotRead, ref, err)
		}
		return rel, nil
	}
}

func TestDecide(t *testing.T) {
	released := tree(fmt.Sprintf("%0100d", 0))
	changed := tree(fmt.Sprintf("%0100d", 42))
	good := func(t *testing.T) []byte { return config(t, "amd64", released, nil) }
	label := func(k, v string) func(map[string]string) { return func(l map[string]string) { l[k] = v } }
	for _, tc := range []struct {
		name    string
		build   func(b *Build)
		configs func(t *testing.T) map[string][]byte
		// patch: the candidate patched; else kinds are the reasons' kinds.
		patch    string
		kinds    []Kind
		warns    bool
		depsFrom string
		asked    int
	}{
		{name: "a matching release is patched", configs: func(t *testing.T) map[string][]byte { return map[string][]byte{"web:1": good(t)} },
			patch: "web:1", asked: 1},
		{name: "the first match wins: later candidates are not read",
			build:   func(b *Build) { b.PatchRefs = []string{"web:0", "web:1", "web:2"} },
			configs: func(t *testing.T) map[string][]byte { return map[string][]byte{"web:1": good(t), "web:2": good(t)} },
			patch:   "web:1", asked: 2},
		{name: "PATCH= turns patching off", build: func(b *Build) { b.PatchDisabled = true },
			kinds: []Kind{PatchDisabled}},
		{name: "no candidate", build: func(b *Build) { b.PatchRefs = nil }, kinds: []Kind{NoCandidate}},
		{name: "nothing there yet does not warn", configs: func(t *testing.T) map[string][]byte { return nil },
			kinds: []Kind{NotYetReleased}, asked: 1},
		{name: "a config not read warns", configs: func(t *testing.T) map[string][]byte { return map[string][]byte{"web:1": []byte(`{"os":`)} },
			kinds: []Kind{ConfigNotRead}, warns: true, asked: 1},
		{name: "another platform", configs: func(t *testing.T) map[string][]byte {
			return map[string][]byte{"web:1": config(t, "arm64", released, nil)}
		}, kinds: []Kind{OtherPlatform}, asked: 1},
		{name: "another base", configs: func(t *testing.T) map[string][]byte {
			return map[string][]byte{"web:1": config(t, "amd64", released, label(LabelBase, "sha256:0"))}
		}, kinds: []Kind{BaseChanged}, asked: 1},
		{name: "other dependencies", configs: func(t *testing.T) map[string][]byte {
			return map[string][]byte{"web:1": config(t, "amd64", released, label(LabelDeps, "sha256:0"))}
		}, kinds: []Kind{DepsChanged}, asked: 1},
		{name: "another APP spec: its dependency stage is still reused", configs: func(t *testing.T) map[string][]byte {
			return map[string][]byte{"web:1": config(t, "amd64", released, label(LabelApp, "sha256:0"))}
		}, kinds: []Kind{AppSpecChanged}, depsFrom: "web:1", asked: 1},
		{name: "no file list", configs: func(t *testing.T) map[string][]byte {
			return map[string][]byte{"web:1": config(t, "amd64", nil, nil)}
		}, kinds: []Kind{NoFileList}, depsFrom: "web:1", asked: 1},
		{name: "PATCH_MAX_SHARE=0 asks for a new release", build: func(b *Build) { b.MaxShare = 0 },
			configs: func(t *testing.T) map[string][]byte { return map[string][]byte{"web:1": good(t)} },
			kinds:   []Kind{NewReleaseAsked}, depsFrom: "web:1", asked: 1},
		{name: "a change over PATCH_MAX_SHARE is a new release", build: func(b *Build) { b.MaxShare = 5 },
			configs: func(t *testing.T) map[string][]byte { return map[string][]byte{"web:1": good(t)} },
			kinds:   []Kind{ChangeTooLarge}, depsFrom: "web:1", asked: 1},
		{name: "an APP that cannot be patched still finds its dependency stage",
			build:   func(b *Build) { b.App, b.AppUnpatchable = nil, "APP copies a file" },
			configs: func(t *testing.T) map[string][]byte { return map[string][]byte{"web:1": good(t)} },
			kinds:   []Kind{AppUnpatchable}, depsFrom: "web:1", asked: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Build{Identity: identity, Platform: amd64, PatchRefs: []string{"web:1"}, App: changed, MaxShare: 50}
			if tc.build != nil {
				tc.build(&b)
			}
			reg := &registry{}
			if tc.configs != nil {
				reg.configs = tc.configs(t)
			}
			d := Decide(b, reg.resolve(t))
			require.Len(t, reg.asked, tc.asked, "candidates read")
			if tc.patch != "" {
				require.NotNil(t, d.Release, d.Summary())
				require.Equal(t, digest.FromBytes(reg.configs[tc.patch]), d.Release.Digest)
				require.Equal(t, []string{"f0.js"}, []string{d.Changes.Changed[0].Path})
				require.Contains(t, d.Summary(), PatchPrefix+d.Release.Digest.String()+": 1 changed, 0 deleted, 0.1 KiB")
				return
			}
			require.Nil(t, d.Release)
			var kinds []Kind
			for _, r := range d.Reasons {
				kinds = append(kinds, r.Kind)
			}
			require.Equal(t, tc.kinds, kinds, d.Summary())
			require.Equal(t, tc.warns, d.Warns(), d.Summary())
			require.Contains(t, d.Summary(), FullBuildPrefix+d.Reasons[0].Message)
			if tc.depsFrom == "" {
				require.Nil(t, d.DepsFrom)
				return
			}
			require.NotNil(t, d.DepsFrom, d.Summary())
			require.Equal(t, digest.FromBytes(reg.configs[tc.depsFrom]), d.DepsFrom.Digest)
			require.Contains(t, d.Summary(), "release "+d.DepsFrom.Digest.String()+" has the same dependency stage but no inline build cache")
		})
	}
}

// TestDecideNamesAFewReasons: a long PATCH list makes a short line; the
// detail has every reason.
func TestDecideNamesAFewReasons(t *testing.T) {
	b := Build{Identity: identity, Platform: amd64, App: tree("x"), MaxShare: 50}
	for i := range 5 {
		b.PatchRefs = append(b.PatchRefs, fmt.Sprintf("web:%d", i))
	}
	d := Decide(b, (&registry{}).resolve(t))
	require.Equal(t, FullBuildPrefix+"no release at web:0 yet; no release at web:1 yet; no release at web:2 yet; and 2 more candidates", d.Summary())
	require.Len(t, d.Detail(), 5)
	require.Equal(t, "no release at web:4 yet", d.Detail()[4])

	b.PatchRefs = b.PatchRefs[:3]
	require.Nil(t, Decide(b, (&registry{}).resolve(t)).Detail(), "every reason is on the line")
}

// TestMightPatch: before the app files are read, a candidate of this
// build's identity means "maybe"; otherwise the first release with the
// same dependency stage is named.
func TestMightPatch(t *testing.T) {
	other := func(l map[string]string) { l[LabelApp] = "sha256:0" }
	reg := &registry{configs: map[string][]byte{
		"web:other": config(t, "amd64", nil, other),
		"web:1":     config(t, "amd64", nil, nil),
	}}
	b := Build{Identity: identity, Platform: amd64, PatchRefs: []string{"web:0", "web:other", "web:1"}}
	maybe, depsFrom := MightPatch(b, reg.resolve(t))
	require.True(t, maybe, "web:1 has this build's identity")
	require.Nil(t, depsFrom)

	b.PatchRefs = []string{"web:0", "web:other"}
	maybe, depsFrom = MightPatch(b, reg.resolve(t))
	require.False(t, maybe)
	require.Equal(t, digest.FromBytes(reg.configs["web:other"]), depsFrom.Digest)

	b.PatchDisabled = true
	maybe, depsFrom = MightPatch(b, reg.resolve(t))
	require.False(t, maybe)
	require.Nil(t, depsFrom)
}

// TestPatchOf: a patch points to its release; a malformed pointer is a
// reason, not a guess.
func TestPatchOf(t *testing.T) {
	rel, err := ParseConfig("web:1", digest.FromString("x"), config(t, "amd64", nil, func(l map[string]string) { l[LabelRelease] = "sha256:nope" }))
	require.NoError(t, err)
	require.True(t, rel.IsPatch())
	_, ok, why := rel.PatchOf("web:1")
	require.False(t, ok)
	require.Equal(t, MalformedReleaseLabel, why.Kind)
	require.True(t, why.Warns())

	want := digest.FromString("release")
	rel, err = ParseConfig("web:1", digest.FromString("x"), config(t, "amd64", nil, func(l map[string]string) { l[LabelRelease] = want.String() }))
	require.NoError(t, err)
	got, ok, why := rel.PatchOf("web:1")
	require.True(t, ok)
	require.Nil(t, why)
	require.Equal(t, want, got)
	require.Equal(t, "docker.io/library/web@"+digest.FromString("x").String(), rel.Ref)
}

// TestMaxShare reads PATCH_MAX_SHARE.
func TestMaxShare(t *testing.T) {
	for v, want := range map[string]int{"": 50, "0": 0, "25%": 25, "100": 100} {
		n, err := MaxShare(map[string]string{KeyPatchMaxShare: v})
		require.NoError(t, err, v)
		require.Equal(t, want, n, v)
	}
	for _, v := range []string{"-1", "101", "half"} {
		_, err := MaxShare(map[string]string{KeyPatchMaxShare: v})
		require.ErrorContains(t, err, "is not a percentage from 0 to 100", v)
	}
}

// TestIsRelease: a full build is a release by intent when it is the first
// (nothing at the candidate yet), asked for (PATCH_MAX_SHARE=0, PATCH=, no
// PATCH), and a deploy otherwise (a change too large, changed
// dependencies); a patch is never one.
func TestIsRelease(t *testing.T) {
	full := func(kinds ...Kind) *Decision {
		d := &Decision{}
		for _, k := range kinds {
			d.Reasons = append(d.Reasons, &Reason{Kind: k})
		}
		return d
	}
	for _, k := range []Kind{PatchDisabled, NoCandidate, NotYetReleased, NewReleaseAsked} {
		require.True(t, full(k).IsRelease(), "kind %d", k)
	}
	for _, k := range []Kind{ChangeTooLarge, DepsChanged, BaseChanged, AppSpecChanged, Unreachable, NotBuiltByPatchfile, AppUnpatchable} {
		require.False(t, full(k).IsRelease(), "kind %d", k)
	}
	require.True(t, full(DepsChanged, NotYetReleased).IsRelease(), "a candidate with nothing there yet")
	require.False(t, (&Decision{Release: &Release{}}).IsRelease(), "a patch")
}
