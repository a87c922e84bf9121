package integration

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/stretchr/testify/require"
)

// TestBadSources: APP sources that reach out of the context fail with a
// message at the APP line, or stay inside it. Whatever the build does, the
// image never holds a file from outside the context: symlinks are copied as
// links, never followed out, and absolute sources are context paths.
func TestBadSources(t *testing.T) {
	base := t.TempDir()
	const secret = "OUTSIDE-THE-CONTEXT-7d1f"
	outside := filepath.Join(base, "outside")
	writeTree(t, outside, map[string]file{"secret.txt": {content: secret}, "hostname": {content: secret}})
	cases := []struct {
		name, lines string
		err         string            // the error; "" for a build that succeeds
		line        int               // the error's line; the last one if 0
		links       map[string]string // symlinks the image must hold as links
		files       map[string]string // files the image must hold, with their content
	}{{
		name:  "parent directory",
		lines: "APP ../ /app",
		err:   "APP: ../ is outside the build context: sources are paths inside the context directory",
	}, {
		name:  "parent through a subdirectory",
		lines: "APP sub/../../outside /app/",
		err:   "APP: sub/../../outside is outside the build context",
	}, {
		name:  "absolute path missing from the context",
		lines: "APP /usr /app/",
		err:   "APP usr matches no file in the build context: check the path (relative to the context root, also when it starts with /)",
	}, {
		name:  "absolute path is a context path",
		lines: "APP /etc /app/",
		files: map[string]string{"app/hostname": "the context's own\n"},
	}, {
		name:  "symlink out of the context as the source",
		lines: "APP escape /app/",
		links: map[string]string{"app/escape": "../outside"},
	}, {
		name:  "absolute symlink as the source",
		lines: "APP abs /app/",
		links: map[string]string{"app/abs": outside},
	}, {
		name:  "a path through a symlink out",
		lines: "APP escape/secret.txt /app/",
		err:   "APP escape/secret.txt matches no file in the build context",
	}, {
		name:  "DEPS through a symlink out",
		lines: "DEPS escape/secret.txt\nAPP . /app",
		err:   "DEPS escape/secret.txt matches no file in the build context",
		line:  3,
	}, {
		name:  "the whole context, symlinks out included",
		lines: "APP . /app",
		links: map[string]string{"app/escape": "../outside", "app/abs": outside, "app/etc/passwd": "/etc/passwd"},
		files: map[string]string{"app/etc/hostname": "the context's own\n"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ctx")
			pf := "ARG BASE\nFROM ${BASE}\n" + tc.lines + "\n"
			writeTree(t, dir, map[string]file{
				"Patchfile":     {content: pf},
				"sub/index.js":  {content: "hi\n"},
				"etc/hostname":  {content: "the context's own\n"},
				"etc/passwd":    {link: "/etc/passwd"},
				"escape":        {link: "../outside"},
				"abs":           {link: outside},
				"outside-named": {content: "inside\n"},
			})
			out := env.stack.Ref("badinput/src", "x")
			res, err := buildInProcess(t, build{dir: dir, args: map[string]string{"BASE": env.base}, output: out})
			if tc.err != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.err)
				srcs := errdefs.Sources(err)
				require.NotEmpty(t, srcs, "the error points at the Patchfile")
				line := tc.line
				if line == 0 {
					line = strings.Count(pf, "\n")
				}
				require.EqualValues(t, line, srcs[0].Ranges[0].Start.Line)
				return
			}
			require.NoError(t, err)
			img := pullImage(t, out+"@"+res.digest)
			for i, l := range layers(t, img) {
				for n, e := range layerEntries(t, l) {
					require.NotContains(t, e.Content, secret, "layer %d, %s holds a file from outside the context", i, n)
					require.NotEqual(t, "secret.txt", filepath.Base(n), "layer %d", i)
				}
			}
			fs := filesystem(t, img)
			for n, target := range tc.links {
				require.Equal(t, byte('2'), fs[n].Type, "%s is a symlink", n)
				require.Equal(t, target, fs[n].Linkname)
			}
			for n, content := range tc.files {
				require.Equal(t, content, fs[n].Content, n)
			}
		})
	}
}

// TestHugePatchfile: a Patchfile of megabytes fails at once, located at
// line 1 below BuildKit's own 16 MiB limit on what a frontend reads.
func TestHugePatchfile(t *testing.T) {
	for _, tc := range []struct {
		size    int
		message string
		located bool
	}{
		{2 << 20, "the Patchfile is larger than 1048576 bytes: a Patchfile lists instructions, keep application files in the build context", true},
		{20 << 20, "Patchfile exceeds maximum allowed size of 16777216 bytes", false},
	} {
		dir := t.TempDir()
		var b strings.Builder
		b.WriteString("ARG BASE\nFROM ${BASE}\nAPP . /app\n")
		for b.Len() < tc.size {
			b.WriteString("# " + strings.Repeat("x", 97) + "\n")
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "Patchfile"), []byte(b.String()), 0o644))
		eps := entryPoints
		if !tc.located {
			eps = eps[:1]
		}
		for _, ep := range eps {
			_, err := ep.build(t, build{dir: dir, args: map[string]string{"BASE": env.base}, output: env.stack.Ref("badinput/huge", "x")})
			require.Error(t, err, "%d bytes through %s", tc.size, ep.name)
			require.Contains(t, err.Error(), tc.message, ep.name)
			switch {
			case ep.name == "client" && tc.located:
				srcs := errdefs.Sources(err)
				require.NotEmpty(t, srcs)
				require.EqualValues(t, 1, srcs[0].Ranges[0].Start.Line)
			case ep.name != "client":
				require.Regexp(t, `1 \| >>> (ARG BASE|# syntax=)`, err.Error(), "the CLI shows line 1")
			}
		}
	}
}

// TestForgedReleases: PATCH candidates whose labels or file list were
// written by hand. Each build ends in a full build that says why, or in a
// patch equal to a full build of the same inputs; never a wrong image.
//
// What the frontend can and cannot defend against: the release a
// candidate names is pinned by digest, and its labels are checked against
// the build's own identity (base digest, dependency hash, APP spec); a file
// list that does not decode, has paths outside the APP destination or out
// of order, makes the release unusable. But a well-formed file list is
// trusted: patches are computed from it without reading a layer (that is
// the zero-pull design), so a list that describes files other than the
// release's app layer holds gives a patch against what it describes. The
// "trusted" cases pin that boundary down; such a list takes write access to
// the release repository, which can push any image anyway.
func TestForgedReleases(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	repo := "forged/app"
	ref := func(tag string) string { return env.stack.Ref(repo, tag) }
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("release")})
	require.NoError(t, err)
	release := ref("release") + "@" + res.digest
	releaseFS := filesystem(t, pullImage(t, release))

	// Another release with other dependencies, and the busybox base, both
	// in the same repository (a release label names a digest there).
	require.NoError(t, os.WriteFile(filepath.Join(dir, "deps.txt"), []byte("dep==9\n"), 0o644))
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("other-deps")})
	require.NoError(t, err)
	otherDeps := ref("other-deps") + "@" + res.digest
	require.NoError(t, os.WriteFile(filepath.Join(dir, "deps.txt"), []byte("dep==1.0\n"), 0o644))
	busybox := copyImage(t, env.base, ref("busybox"))

	applyChangeSet(t, dir)
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(release), output: ref("patch")})
	require.NoError(t, err)
	patch := ref("patch") + "@" + res.digest
	res, err = buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("full")})
	require.NoError(t, err)
	fullFS := filesystem(t, pullImage(t, ref("full")+"@"+res.digest))

	digestOf := func(pinned string) string { return pinned[strings.LastIndex(pinned, "@")+1:] }
	zero := "sha256:" + strings.Repeat("0", 64)
	newA := sha256.Sum256([]byte("console.log('A');\n"))
	cases := []struct {
		name   string
		forge  func(t *testing.T) string // the candidate, pinned
		output string
		// outcome: "full" (a full build), "patch" (equal to the full
		// build) or "trusted" (a patch against what the list says).
		outcome string
	}{
		{name: "candidate that does not exist", outcome: "full", output: decide.FullBuildPrefix + "no release at " + ref("missing") + " yet",
			forge: func(*testing.T) string { return ref("missing") }},
		{name: "candidate not built by Patchfile", outcome: "full", output: decide.FullBuildPrefix + "candidate " + busybox + " was not built by Patchfile",
			forge: func(*testing.T) string { return busybox }},
		{name: "file list not base64", outcome: "full", output: "has no usable file list (file list is not base64",
			forge: edited(release, func(t *testing.T, c forgedConfig) { c["dev.patchfile.files"] = "not base64!" })},
		{name: "file list not gzip", outcome: "full", output: "has no usable file list (file list is not gzip",
			forge: edited(release, func(t *testing.T, c forgedConfig) { c["dev.patchfile.files"] = "cGxhaW4=" })},
		{name: "file list of an unknown version", outcome: "full", output: "has no usable file list (file list format 9, while this frontend reads format 1: a release built by another major version of the frontend is not patched)",
			forge: edited(release, func(t *testing.T, c forgedConfig) { c["dev.patchfile.files"] = gzipBase64(t, []byte{9}) })},
		{name: "file list missing", outcome: "full", output: "has no usable file list (its config has no dev.patchfile.files field)",
			forge: edited(release, func(t *testing.T, c forgedConfig) { delete(c, "dev.patchfile.files") })},
		{name: "file list with a path out of the APP destination", outcome: "full", output: "has no usable file list (file list is corrupt: path \"../../etc/passwd\")",
			forge: edited(release, func(t *testing.T, c forgedConfig) {
				c.editList(t, func(m *filelist.List) {
					m.Entries = append([]filelist.Entry{{Path: "../../etc/passwd", Type: filelist.TypeFile}}, m.Entries...)
				})
			})},
		{name: "file list out of order", outcome: "full", output: "has no usable file list (file list is corrupt",
			forge: edited(release, func(t *testing.T, c forgedConfig) {
				c.editList(t, func(m *filelist.List) { m.Entries[0], m.Entries[1] = m.Entries[1], m.Entries[0] })
			})},
		{name: "dependency hash of other inputs", outcome: "full", output: "dependencies changed since release",
			forge: edited(release, func(t *testing.T, c forgedConfig) { c.labels()[decide.LabelDeps] = zero })},
		{name: "base label of another base", outcome: "full", output: "base image changed since release",
			forge: edited(release, func(t *testing.T, c forgedConfig) { c.labels()[decide.LabelBase] = zero })},
		{name: "APP label of another spec", outcome: "full", output: "APP destination, --chown or --chmod changed since release",
			forge: edited(release, func(t *testing.T, c forgedConfig) { c.labels()[decide.LabelApp] = zero })},
		{name: "release label not a digest", outcome: "full", output: "has a malformed dev.patchfile.release label",
			forge: edited(patch, func(t *testing.T, c forgedConfig) { c.labels()[decide.LabelRelease] = "latest" })},
		{name: "release label to a missing manifest", outcome: "full", output: "release " + zero + " of candidate",
			forge: edited(patch, func(t *testing.T, c forgedConfig) { c.labels()[decide.LabelRelease] = zero })},
		{name: "release label to a patch", outcome: "full", output: "release " + digestOf(patch) + " of candidate",
			forge: edited(patch, func(t *testing.T, c forgedConfig) { c.labels()[decide.LabelRelease] = digestOf(patch) })},
		{name: "release label to a foreign image", outcome: "full", output: "is not a Patchfile release",
			forge: edited(patch, func(t *testing.T, c forgedConfig) { c.labels()[decide.LabelRelease] = digestOf(busybox) })},
		{name: "release label to a release of other dependencies", outcome: "full", output: "dependencies changed since release " + digestOf(otherDeps),
			forge: edited(patch, func(t *testing.T, c forgedConfig) { c.labels()[decide.LabelRelease] = digestOf(otherDeps) })},
		{name: "file list claims a file that is not there", outcome: "patch", output: decide.PatchPrefix,
			forge: edited(release, func(t *testing.T, c forgedConfig) {
				c.editList(t, func(m *filelist.List) {
					m.Entries = append(m.Entries, filelist.Entry{Path: "zz-ghost.js", Type: filelist.TypeFile, Mode: 0o644, Size: 3})
				})
			})},
		{name: "file list misses a file the image has", outcome: "patch", output: decide.PatchPrefix,
			forge: edited(release, func(t *testing.T, c forgedConfig) {
				c.editList(t, func(m *filelist.List) {
					m.Entries = slices.DeleteFunc(m.Entries, func(e filelist.Entry) bool { return e.Path == "src/keep.txt" })
				})
			})},
		{name: "file list lies about a file's content", outcome: "trusted", output: decide.PatchPrefix,
			forge: edited(release, func(t *testing.T, c forgedConfig) {
				c.editList(t, func(m *filelist.List) {
					for i, e := range m.Entries {
						if e.Path == "src/a.js" {
							m.Entries[i].Digest = newA
						}
					}
				})
			})},
		{name: "labels and file list on a foreign image", outcome: "trusted", output: decide.PatchPrefix,
			forge: func(t *testing.T) string {
				real := pullImage(t, release)
				var src struct {
					Files string `json:"dev.patchfile.files"`
				}
				require.NoError(t, json.Unmarshal(rawConfig(t, real), &src))
				return edited(busybox, func(t *testing.T, c forgedConfig) {
					for k, v := range configOf(t, real).Config.Labels {
						c.labels()[k] = v
					}
					c["dev.patchfile.files"] = src.Files
				})(t)
			}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			candidate := tc.forge(t)
			out := ref(fmt.Sprintf("out%d", i))
			args := patchArgs(candidate)
			args["PATCH_MAX_SHARE"] = "100"
			res, err := buildInProcess(t, build{dir: dir, args: args, output: out})
			require.NoError(t, err, "a forged candidate never fails the build")
			require.Contains(t, res.output, tc.output)
			t.Log(regexp.MustCompile(`(full build|patch of release)[^\n]*`).FindString(res.output))
			img := pullImage(t, out+"@"+res.digest)
			got := filesystem(t, img)
			switch tc.outcome {
			case "full":
				require.Contains(t, res.output, decide.FullBuildPrefix)
				require.NotContains(t, configOf(t, img).Config.Labels, decide.LabelRelease)
				requireSameFilesystem(t, fullFS, got)
			case "patch":
				requireSameFilesystem(t, fullFS, got)
			case "trusted":
				if tc.name == "file list lies about a file's content" {
					require.Equal(t, releaseFS["app/src/a.js"], got["app/src/a.js"], "the change the list hid is not shipped")
					delete(got, "app/src/a.js")
					full := maps.Clone(fullFS)
					delete(full, "app/src/a.js")
					requireSameFilesystem(t, full, got)
				} else {
					require.NotContains(t, got, "app/src/keep.txt", "the app files the list claims are not shipped")
					require.NotContains(t, got, "app/node_modules/dep/deps.txt", "nor the dependency stage")
					require.Equal(t, fullFS["app/src/a.js"], got["app/src/a.js"], "only the changes are")
				}
			}
		})
	}
}

// edited returns a forge function: src with its config edited, pushed to
// the same repository under a tag named after the test.
func edited(src string, edit func(t *testing.T, c forgedConfig)) func(t *testing.T) string {
	return func(t *testing.T) string {
		r, err := name.ParseReference(src, name.Insecure)
		require.NoError(t, err)
		tag := fmt.Sprintf("forged-%x", sha256.Sum256([]byte(t.Name())))[:20]
		return forge(t, src, r.Context().Name()+":"+tag, func(c forgedConfig) { edit(t, c) })
	}
}

// TestSpecialFiles: a named pipe under APP's source is refused, at the
// APP line, by a full build and by a patch alike
// (a patch layer cannot carry one, so a patch would differ from the full
// build); left out with .dockerignore, both build.
func TestSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	releaseRef := env.stack.Ref("special/app", "release")
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: releaseRef})
	require.NoError(t, err)
	releaseDigest := res.digest

	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "src", "pipe"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src/a.js"), []byte("console.log('A');\n"), 0o644))
	const refusal = `APP would ship "src/pipe", a named pipe, which a patch cannot carry: remove it from the build context, or leave it out with .dockerignore or APP --exclude=src/pipe`
	for name, args := range map[string]map[string]string{"full": fullArgs(), "patch": patchArgs(releaseRef)} {
		t.Run(name, func(t *testing.T) {
			_, err := buildInProcess(t, build{dir: dir, args: args, output: env.stack.Ref("special/app", name)})
			require.Error(t, err)
			require.Contains(t, err.Error(), refusal)
			srcs := errdefs.Sources(err)
			require.NotEmpty(t, srcs, "the error carries the Patchfile as its source")
			require.EqualValues(t, 7, srcs[0].Ranges[0].Start.Line, "the APP line")
		})
	}

	require.NoError(t, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("*.log\nsrc/pipe\n"), 0o644))
	res, err = buildInProcess(t, build{dir: dir, args: patchArgs(releaseRef), output: env.stack.Ref("special/app", "ignored")})
	require.NoError(t, err)
	require.Contains(t, res.output, decide.PatchPrefix+releaseDigest+": 2 changed, 0 deleted", "src/a.js and .dockerignore")
	require.NotContains(t, filesystem(t, pullImage(t, env.stack.Ref("special/app", "ignored")+"@"+res.digest)), "app/src/pipe")
}

// TestNamesNotUTF8: a name that is not UTF-8 cannot cross BuildKit's
// gateway; the build says where it is, at the APP line, and how to leave
// it out, which works.
func TestNamesNotUTF8(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "bad\xff.js"), []byte("x\n"), 0o644))
	_, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref("names/app", "x")})
	require.Error(t, err)
	require.Contains(t, err.Error(), `a file name in the context's root directory or below is not valid UTF-8, which BuildKit's gateway cannot carry: rename it, or leave it out with .dockerignore`)
	srcs := errdefs.Sources(err)
	require.NotEmpty(t, srcs, "the error carries the Patchfile as its source")
	require.EqualValues(t, 7, srcs[0].Ranges[0].Start.Line, "the APP line")

	require.NoError(t, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("*.log\nsrc/bad*\n"), 0o644))
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: env.stack.Ref("names/app", "y")})
	require.NoError(t, err)
	require.Contains(t, filesystem(t, pullImage(t, env.stack.Ref("names/app", "y")+"@"+res.digest)), "app/src/a.js")
}
