package integration

import (
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/internal/stack"
	"github.com/patchfile/patchfile/version"
	"github.com/stretchr/testify/require"
)

// TestExamples builds each of examples/<lang> as a user would (the
// Patchfile as written, with BASE and RELEASE pointed at the test stack),
// checks what the pushed image holds, runs the app's own smoke check
// inside the image, and for most of them patches one changed file.
func TestExamples(t *testing.T) {
	t.Run("static", func(t *testing.T) {
		t.Parallel()
		testStaticExample(t)
	})
	t.Run("go", func(t *testing.T) {
		t.Parallel()
		testGoExample(t)
	})
	t.Run("node", func(t *testing.T) {
		t.Parallel()
		testNodeExample(t)
	})
	t.Run("python", func(t *testing.T) {
		t.Parallel()
		testPythonExample(t)
	})
	t.Run("typescript", func(t *testing.T) {
		t.Parallel()
		testTypeScriptExample(t)
	})
	t.Run("spa", func(t *testing.T) {
		t.Parallel()
		testSPAExample(t)
	})
	t.Run("go-build", func(t *testing.T) {
		t.Parallel()
		testGoBuildExample(t)
	})
}

// nodeBase is the Node.js base of the examples that need one, pushed once.
var nodeBase = sync.OnceValues(func() (string, error) {
	return env.stack.PushDebianImage(context.Background(), env.warm, env.stack.Ref("examples/node-base", "test"), stack.NodeBase)
})

// goImage is the Go toolchain image of the examples that compile Go,
// pushed once.
var goImage = sync.OnceValues(func() (string, error) {
	return env.stack.PushGoImage(context.Background(), env.warm, env.stack.Ref("examples/golang", "test"))
})

// example is one example's release, built in full from a copy of its
// directory.
type example struct {
	name    string
	dir     string // the copy: tests edit it
	base    string
	release string // the release tag
	digest  string // the release's digest
	img     v1.Image
	output  string // the build's progress
}

// copyExample copies examples/<name> to a temporary directory.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(env.repoRoot, "examples", name))))
	return dir
}

// releaseExample builds the example in dir in full, as examples/<name>:release.
func releaseExample(t *testing.T, name, dir, base string) *example {
	t.Helper()
	ex := &example{name: name, dir: dir, base: base, release: env.stack.Ref("examples/"+name, "release")}
	out, err := runBuildx(t, build{dir: dir, args: map[string]string{"BASE": base, "RELEASE": ex.release}}, "--call=check")
	require.NoError(t, err, "docker buildx build --call=check finds nothing: %s", out)
	require.NotContains(t, string(out), "WARNING")
	res, err := buildInProcess(t, build{dir: dir, args: map[string]string{"BASE": base, "PATCH": ""}, output: ex.release})
	require.NoError(t, err, res.output)
	require.Contains(t, res.output, decide.FullBuildPrefix+"PATCH disabled by --build-arg PATCH=")
	ex.digest, ex.output = res.digest, res.output
	ex.img = pullImage(t, ex.release+"@"+res.digest)
	cfg := configOf(t, ex.img).Config
	require.Equal(t, base[strings.Index(base, "@")+1:], cfg.Labels[decide.LabelBase])
	require.Regexp(t, `^sha256:[0-9a-f]{64}$`, cfg.Labels[decide.LabelDeps])
	require.Equal(t, name+" example", cfg.Labels["org.opencontainers.image.title"])
	require.Equal(t, "1000:1000", cfg.User)
	require.Contains(t, cfg.ExposedPorts, "8080/tcp")
	return ex
}

// patchExample builds dir against the release with the Patchfile's own
// PATCH ${RELEASE} and checks that the result is the release plus one layer
// holding exactly want (the changed files and their parents), the
// dependency stage not run. It returns the patched image.
func (ex *example) patch(t *testing.T, want []string, depsStep string) v1.Image {
	t.Helper()
	ref := env.stack.Ref("examples/"+ex.name, "patch")
	args := map[string]string{"BASE": ex.base, "RELEASE": ex.release}
	// --call=plan first: the build must take its decision.
	planned := planOf(t, build{dir: ex.dir, args: args}).Platforms[0]
	res, err := buildInProcess(t, build{dir: ex.dir, args: args, output: ref})
	require.NoError(t, err, res.output)
	require.Contains(t, res.output, decide.PatchPrefix+ex.digest+": 1 changed, 0 deleted")
	require.Contains(t, res.output, planned.Summary, "the build takes the decision --call=plan showed")
	if depsStep != "" {
		require.Contains(t, ex.output, depsStep, "the release ran the dependency step")
		require.NotContains(t, res.output, depsStep, "the patch did not run the dependency stage")
	}
	img := pullImage(t, ref+"@"+res.digest)
	requirePatchOf(t, ex.img, ex.digest, img, want)
	ls := layers(t, img)
	requireLayerIsPlan(t, layerEntries(t, ls[len(ls)-1]), planned, ex.name)
	return img
}

// requirePatchOf checks that img is the release (whose manifest digest is
// releaseDigest) plus one layer holding exactly want.
func requirePatchOf(t *testing.T, release v1.Image, releaseDigest string, img v1.Image, want []string) {
	t.Helper()
	rls, pls := layers(t, release), layers(t, img)
	require.Len(t, pls, len(rls)+1, "the release's layers plus exactly one")
	for i := range rls {
		d1, err := rls[i].Digest()
		require.NoError(t, err)
		d2, err := pls[i].Digest()
		require.NoError(t, err)
		require.Equal(t, d1, d2, "layer %d is the release's own", i)
	}
	require.Equal(t, want, names(layerEntries(t, pls[len(pls)-1])), "the patch layer holds the changed file and its parents")
	require.Equal(t, releaseDigest, configOf(t, img).Config.Labels[decide.LabelRelease])
	require.Equal(t, version.Version, configOf(t, img).Config.Labels[decide.LabelFrontend], "the patch records the frontend version that built it")
}

// runInImage runs a shell script in a container of the image ref (with
// the image's environment and working directory, as root, no network) on
// the warm daemon, and returns what it printed followed by "exit <code>".
func runInImage(t *testing.T, ref, script string) string {
	t.Helper()
	ctx := context.Background()
	c, err := env.warm.Client(ctx)
	require.NoError(t, err)
	defer c.Close()
	var out []byte
	_, err = c.Build(ctx, client.SolveOpt{}, "", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		run := llb.Image(ref, llb.WithMetaResolver(gc)).Run(
			llb.Args([]string{"/bin/sh", "-c", "{ " + script + "\n} >/tmp/run.out 2>&1; echo \"exit $?\" >>/tmp/run.out"}),
			llb.Network(llb.NetModeNone),
			llb.WithCustomName("smoke check: "+script))
		def, err := run.Root().Marshal(ctx, llb.LinuxAmd64)
		if err != nil {
			return nil, err
		}
		r, err := gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
		if err != nil {
			return nil, err
		}
		res, err := r.SingleRef()
		if err != nil {
			return nil, err
		}
		out, err = res.ReadFile(ctx, gateway.ReadRequest{Filename: "/tmp/run.out"})
		return gateway.NewResult(), err
	}, nil)
	require.NoError(t, err)
	return string(out)
}

func testStaticExample(t *testing.T) {
	dir := copyExample(t, "static")
	ex := releaseExample(t, "static", dir, env.base)
	ls := layers(t, ex.img)
	require.Len(t, ls, len(layers(t, pullImage(t, env.base)))+1, "the base and the site's layer")
	require.Equal(t, []string{"srv", "srv/www", "srv/www/about.html", "srv/www/css", "srv/www/css/site.css", "srv/www/index.html"},
		names(layerEntries(t, ls[len(ls)-1])), "the pages and nothing else (.dockerignore)")
	fs := filesystem(t, ex.img)
	for _, f := range []string{"index.html", "about.html", "css/site.css"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, string(want), fs["srv/www/"+f].Content)
	}
	cfg := configOf(t, ex.img).Config
	require.Equal(t, []string{"httpd", "-f", "-p", "8080", "-h", "/srv/www"}, cfg.Cmd)

	// The image's own httpd serves the page (on loopback, port 18080).
	serve := "httpd -p 127.0.0.1:18080 -h /srv/www && wget -q -O - http://127.0.0.1:18080/about.html"
	out := runInImage(t, ex.release+"@"+ex.digest, serve)
	require.Contains(t, out, "Served by busybox httpd from /srv/www.")
	require.Contains(t, out, "exit 0")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "about.html"), []byte("<h1>About, edited</h1>\n"), 0o644))
	img := ex.patch(t, []string{"srv", "srv/www", "srv/www/about.html"}, "")
	require.Equal(t, "<h1>About, edited</h1>\n", filesystem(t, img)["srv/www/about.html"].Content)
}

func testGoExample(t *testing.T) {
	dir := copyExample(t, "go")
	// The binary is built outside the image, as the example's Patchfile says.
	gobuild := exec.Command("go", "build", "-trimpath", "-ldflags=-X main.version=1.0.0-test", "-o", "bin/server", ".")
	gobuild.Dir = dir
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	out, err := gobuild.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	bin, err := os.ReadFile(filepath.Join(dir, "bin/server"))
	require.NoError(t, err)

	ex := releaseExample(t, "go", dir, env.base)
	ls := layers(t, ex.img)
	require.Len(t, ls, len(layers(t, pullImage(t, env.base)))+2, "the base, WORKDIR and the app layer")
	app := layerEntries(t, ls[len(ls)-1])
	require.Equal(t, []string{"app", "app/bin", "app/bin/server", "app/web", "app/web/index.html"}, names(app),
		"the binary and the pages; the sources stay out (.dockerignore)")
	require.True(t, app["app/bin/server"].Content == string(bin), "the layer holds the binary go build wrote")
	require.Equal(t, int64(0o755), app["app/bin/server"].Mode&0o777)
	cfg := configOf(t, ex.img).Config
	require.Equal(t, []string{"/app/bin/server", "-addr", ":8080", "-web", "/app/web"}, cfg.Cmd)
	require.Equal(t, "/app", cfg.WorkingDir)

	out2 := runInImage(t, ex.release+"@"+ex.digest, "/app/bin/server --version")
	require.Equal(t, "server 1.0.0-test\nexit 0\n", out2, "the static binary runs on the busybox base")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "web/index.html"), []byte("<h1>edited</h1>\n"), 0o644))
	img := ex.patch(t, []string{"app", "app/web", "app/web/index.html"}, "")
	fs := filesystem(t, img)
	require.Equal(t, "<h1>edited</h1>\n", fs["app/web/index.html"].Content)
	require.True(t, fs["app/bin/server"].Content == string(bin), "the release's binary is still there")

	// A new binary is most of the app's bytes: a new release, as the
	// Patchfile's comment says, unless PATCH_MAX_SHARE allows it.
	gobuild = exec.Command("go", "build", "-trimpath", "-ldflags=-X main.version=1.0.1-test", "-o", "bin/server", ".")
	gobuild.Dir = dir
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	out, err = gobuild.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	args := map[string]string{"BASE": env.base, "RELEASE": ex.release}
	res, err := buildInProcess(t, build{dir: dir, args: args, output: env.stack.Ref("examples/go", "v1.0.1")})
	require.NoError(t, err, res.output)
	require.Regexp(t, `full build: the change is \d+% of the app tree's bytes \(more than PATCH_MAX_SHARE=50%\)`, res.output)
	args["PATCH_MAX_SHARE"] = "100"
	res, err = buildInProcess(t, build{dir: dir, args: args, output: env.stack.Ref("examples/go", "v1.0.1-patch")})
	require.NoError(t, err, res.output)
	require.Contains(t, res.output, decide.PatchPrefix+ex.digest+": 2 changed, 0 deleted")
	out2 = runInImage(t, env.stack.Ref("examples/go", "v1.0.1-patch")+"@"+res.digest, "/app/bin/server --version")
	require.Equal(t, "server 1.0.1-test\nexit 0\n", out2)
}

// pushDebianBase makes the example's base image from Debian packages.
func pushDebianBase(t *testing.T, name string, spec stack.DebianImage) string {
	t.Helper()
	start := time.Now()
	base, err := env.stack.PushDebianImage(context.Background(), env.warm, env.stack.Ref("examples/"+name, "test"), spec)
	require.NoError(t, err)
	ls := layers(t, pullImage(t, base))
	size, err := ls[0].Size()
	require.NoError(t, err)
	t.Logf("%s: %s, one %.1f MiB layer, in %s", name, base, float64(size)/(1<<20), time.Since(start).Round(time.Millisecond))
	return base
}

func testNodeExample(t *testing.T) {
	base, err := nodeBase()
	require.NoError(t, err)
	dir := copyExample(t, "node")
	ex := releaseExample(t, "node", dir, base)
	require.Contains(t, ex.output, "npm ci --omit=dev")
	fs := filesystem(t, ex.img)
	for _, f := range []string{"src/server.js", "src/greeting.js", "public/index.html", "package.json", "package-lock.json"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, string(want), fs["app/"+f].Content, f)
	}
	require.NotContains(t, fs, "app/Patchfile")
	ls := layers(t, ex.img)
	require.Equal(t, []string{"app", "app/public", "app/public/index.html", "app/src", "app/src/greeting.js", "app/src/server.js"},
		names(layerEntries(t, ls[len(ls)-1])), "the app layer: the sources, not what DEPS copied (--exclude)")
	// What npm ci installed from the registry, as the lock file pins it.
	require.Contains(t, fs["app/node_modules/is-number/package.json"].Content, `"version": "7.0.0"`)
	require.Contains(t, fs["app/node_modules/ms/package.json"].Content, `"version": "2.1.3"`)
	require.Contains(t, fs, "app/node_modules/.package-lock.json")
	cfg := configOf(t, ex.img).Config
	require.Equal(t, []string{"node", "src/server.js"}, cfg.Cmd)
	require.Equal(t, "/app", cfg.WorkingDir)
	require.Contains(t, cfg.Env, "NODE_ENV=production")

	// The app's server answers with the installed packages.
	check := `node -e "const s = require('./src/server');
s.listen(0, '127.0.0.1', () => require('http').get('http://127.0.0.1:' + s.address().port + '/is-number?v=42',
  (r) => { r.pipe(process.stdout); r.on('end', () => { console.log(require('ms')(90000)); s.close(); }); }));"`
	out := runInImage(t, ex.release+"@"+ex.digest, check)
	require.Equal(t, "true\n2m\nexit 0\n", out)

	writeTree(t, dir, map[string]file{"src/greeting.js": {content: "'use strict';\nmodule.exports.greeting = () => 'hello, patched';\n"}})
	img := ex.patch(t, []string{"app", "app/src", "app/src/greeting.js"}, "npm ci --omit=dev")
	fs = filesystem(t, img)
	require.Contains(t, fs["app/src/greeting.js"].Content, "hello, patched")
	require.Contains(t, fs, "app/node_modules/is-number/index.js", "the release's dependencies are still there")
	out = runInImage(t, env.stack.Ref("examples/node", "patch"), `node -e "console.log(require('./src/greeting').greeting())"`)
	require.Equal(t, "hello, patched\nexit 0\n", out)
}

func testPythonExample(t *testing.T) {
	base := pushDebianBase(t, "python-base", stack.PythonBase)
	dir := copyExample(t, "python")
	ex := releaseExample(t, "python", dir, base)
	require.Contains(t, ex.output, "pip install")
	fs := filesystem(t, ex.img)
	for _, f := range []string{"app.py", "greeting.py", "requirements.txt"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, string(want), fs["app/"+f].Content, f)
	}
	ls := layers(t, ex.img)
	require.Equal(t, []string{"app", "app/app.py", "app/greeting.py"}, names(layerEntries(t, ls[len(ls)-1])),
		"the app layer: the sources, not what DEPS copied (--exclude)")
	// What pip installed from the vendored wheel.
	require.Contains(t, fs["app/deps/wheel/__init__.py"].Content, `__version__ = "0.43.0"`)
	require.Contains(t, fs, "app/deps/wheel-0.43.0.dist-info/RECORD")
	cfg := configOf(t, ex.img).Config
	require.Equal(t, []string{"python3", "app.py"}, cfg.Cmd)
	require.Contains(t, cfg.Env, "PYTHONPATH=/app/deps")

	out := runInImage(t, ex.release+"@"+ex.digest, "python3 app.py --check")
	require.Contains(t, out, "wheel 0.43.0 from /app/deps/wheel\n")
	require.Contains(t, out, `"namever": "wheel-0.43.0", "plat": "any"`)
	require.Contains(t, out, "exit 0")

	writeTree(t, dir, map[string]file{"greeting.py": {content: "def greeting():\n    return \"hello, patched\"\n"}})
	img := ex.patch(t, []string{"app", "app/greeting.py"}, "pip install")
	require.Contains(t, filesystem(t, img)["app/greeting.py"].Content, "hello, patched")
	require.Contains(t, filesystem(t, img), "app/deps/wheel/__init__.py")
}

// testTypeScriptExample builds examples/typescript through `docker buildx
// build` on the standalone BuildKit: tsc runs in the build stage, the
// image ships the compiled JavaScript on the runtime dependencies, and a
// deploy that edits one .ts file is the release plus one layer holding the
// one .js file tsc wrote for it, equal to a full build.
func testTypeScriptExample(t *testing.T) {
	base, err := nodeBase()
	require.NoError(t, err)
	dir := copyExample(t, "typescript")
	release := env.stack.Ref("examples/typescript", "release")
	args := map[string]string{"BASE": base, "RELEASE": release}
	out, err := runBuildx(t, build{dir: dir, args: args}, "--call=check")
	require.NoError(t, err, "docker buildx build --call=check finds nothing: %s", out)
	require.NotContains(t, string(out), "WARNING")

	res, err := buildWithBuildx(t, build{dir: dir, args: map[string]string{"BASE": base, "PATCH": ""}, output: release})
	require.NoError(t, err, res.output)
	require.Contains(t, res.output, decide.FullBuildPrefix+"PATCH disabled by --build-arg PATCH=")
	require.Contains(t, res.output, "[build 5/5] RUN npx tsc -p .")
	require.Contains(t, res.output, "npm ci --omit=dev")
	img := pullImage(t, release+"@"+res.digest)
	ls := layers(t, img)
	app := layerEntries(t, ls[len(ls)-1])
	require.Equal(t, []string{"app", "app/dist", "app/dist/greeting.js", "app/dist/server.js"}, names(app),
		"the app layer: what tsc wrote, no source, no build dependency")
	require.Contains(t, app["app/dist/greeting.js"].Content, "exports.greeting = greeting;")
	fs := filesystem(t, img)
	require.Contains(t, fs["app/node_modules/ms/package.json"].Content, `"version": "2.1.3"`)
	require.NotContains(t, fs, "app/node_modules/typescript/package.json", "dev dependencies stay in the build stage")
	require.NotContains(t, fs, "app/src/greeting.ts")
	require.NotContains(t, fs, "src", "nothing of the build stage's filesystem")
	cfg := configOf(t, img).Config
	require.Equal(t, []string{"node", "dist/server.js"}, cfg.Cmd)
	require.Equal(t, "typescript example", cfg.Labels["org.opencontainers.image.title"])

	serve := func(ref string) string {
		return runInImage(t, ref, `node -e "const s = require('./dist/server').server;
s.listen(0, '127.0.0.1', () => require('http').get('http://127.0.0.1:' + s.address().port + '/hello?name=deploy',
  (r) => { r.pipe(process.stdout); r.on('end', () => s.close()); }));"`)
	}
	require.Equal(t, "hello, deploy\nexit 0\n", serve(release+"@"+res.digest))

	// One source file edited: the deploy ships the one output it changes.
	writeTree(t, dir, map[string]file{"src/greeting.ts": {content: "export function greeting(name: string): string {\n  return `hi there, ${name}`;\n}\n"}})
	patchRef := env.stack.Ref("examples/typescript", "patch")
	pres, err := buildWithBuildx(t, build{dir: dir, args: args, output: patchRef})
	require.NoError(t, err, pres.output)
	require.Contains(t, pres.output, decide.PatchPrefix+res.digest+": 1 changed, 0 deleted")
	require.Contains(t, pres.output, "RUN npx tsc -p .", "the build stage compiles the edit")
	require.NotContains(t, pres.output, "npm ci --omit=dev", "the runtime dependencies are the release's")
	patched := pullImage(t, patchRef+"@"+pres.digest)
	requirePatchOf(t, img, res.digest, patched, []string{"app", "app/dist", "app/dist/greeting.js"})
	require.Contains(t, filesystem(t, patched)["app/dist/greeting.js"].Content, "hi there, ")
	require.Equal(t, "hi there, deploy\nexit 0\n", serve(patchRef+"@"+pres.digest))

	// The patched image is what a full build of the same sources makes.
	full, err := buildInProcess(t, build{dir: dir, args: map[string]string{"BASE": base, "PATCH": ""}, output: env.stack.Ref("examples/typescript", "full")})
	require.NoError(t, err, full.output)
	requireSameFilesystem(t, withoutDepsTimes(filesystem(t, pullImage(t, env.stack.Ref("examples/typescript", "full")+"@"+full.digest))), withoutDepsTimes(filesystem(t, patched)))
}

// testSPAExample builds examples/spa through `docker buildx build`: esbuild
// bundles the sources into content-hashed chunks in the build stage, and
// the image is busybox httpd serving them. Editing one module changes its
// chunk, the entry chunk that imports it and the page: the deploy is the
// release plus one layer holding the new chunks, the page and whiteouts for
// the old chunks.
func testSPAExample(t *testing.T) {
	node, err := nodeBase()
	require.NoError(t, err)
	dir := copyExample(t, "spa")
	release := env.stack.Ref("examples/spa", "release")
	args := map[string]string{"NODE": node, "BASE": env.base, "RELEASE": release}
	res, err := buildWithBuildx(t, build{dir: dir, args: map[string]string{"NODE": node, "BASE": env.base, "PATCH": ""}, output: release})
	require.NoError(t, err, res.output)
	require.Contains(t, res.output, "[build 5/5] RUN npm run build")
	img := pullImage(t, release+"@"+res.digest)
	ls := layers(t, img)
	require.Len(t, ls, len(layers(t, pullImage(t, env.base)))+1, "the server's base and the bundle's layer")
	app := layerEntries(t, ls[len(ls)-1])
	chunks := func(fs map[string]entry) (main, greeting string) {
		for n := range fs {
			switch {
			case strings.HasPrefix(n, "srv/www/assets/main-"):
				main = n
			case strings.HasPrefix(n, "srv/www/assets/greeting-"):
				greeting = n
			}
		}
		return main, greeting
	}
	main, greeting := chunks(app)
	require.Regexp(t, `^srv/www/assets/main-[A-Z0-9]{8}\.js$`, main)
	var catalog string
	for n := range app {
		if strings.HasPrefix(n, "srv/www/assets/catalog-") {
			catalog = n
		}
	}
	require.Equal(t, slices.Sorted(slices.Values([]string{"srv", "srv/www", "srv/www/assets", catalog, greeting, main, "srv/www/index.html", "srv/www/logo.svg"})), names(app),
		"the bundle, the page and the public files, nothing of the build")
	require.Contains(t, app["srv/www/index.html"].Content, `src="/assets/`+strings.TrimPrefix(main, "srv/www/assets/")+`"`)

	serve := func(ref, chunk string) string {
		return runInImage(t, ref, "httpd -p 127.0.0.1:18081 -h /srv/www && wget -q -O - http://127.0.0.1:18081/assets/"+chunk)
	}
	require.Contains(t, serve(release+"@"+res.digest, strings.TrimPrefix(greeting, "srv/www/assets/")), "hello, ")

	writeTree(t, dir, map[string]file{"src/greeting.js": {content: "export function greeting(name) {\n  return `hi there, ${name}`;\n}\n"}})
	patchRef := env.stack.Ref("examples/spa", "patch")
	pres, err := buildWithBuildx(t, build{dir: dir, args: args, output: patchRef})
	require.NoError(t, err, pres.output)
	require.Contains(t, pres.output, decide.PatchPrefix+res.digest+": 3 changed, 2 deleted", "the page and two new chunks; the old chunks go")
	patched := pullImage(t, patchRef+"@"+pres.digest)
	fs := filesystem(t, patched)
	newMain, newGreeting := chunks(fs)
	require.NotEqual(t, main, newMain)
	require.NotEqual(t, greeting, newGreeting)
	whiteout := func(p string) string { return path.Join(path.Dir(p), ".wh."+path.Base(p)) }
	requirePatchOf(t, img, res.digest, patched, slices.Sorted(slices.Values([]string{"srv", "srv/www", "srv/www/assets",
		newGreeting, newMain, whiteout(greeting), whiteout(main), "srv/www/index.html"})))
	require.NotContains(t, fs, main, "the old chunks are gone from the image")
	require.Contains(t, fs, catalog, "the chunk the edit leaves alone is the release's")
	require.Contains(t, serve(patchRef+"@"+pres.digest, strings.TrimPrefix(newGreeting, "srv/www/assets/")), "hi there, ")
}

// testGoBuildExample builds examples/go-build through `docker buildx
// build`: the build stage downloads golang.org/x/text from the module
// proxy and compiles the server with this machine's Go toolchain; the
// image is busybox with the binary and its pages. A page edit is a patch
// of that page alone (the build writes the same binary again); a code edit
// changes the binary, most of the app's bytes: a new release, unless
// PATCH_MAX_SHARE allows the patch.
func testGoBuildExample(t *testing.T) {
	goImage, err := goImage()
	require.NoError(t, err)
	dir := copyExample(t, "go-build")
	release := env.stack.Ref("examples/go-build", "release")
	args := map[string]string{"GO": goImage, "BASE": env.base, "RELEASE": release}
	res, err := buildWithBuildx(t, build{dir: dir, args: map[string]string{"GO": goImage, "BASE": env.base, "PATCH": ""}, output: release})
	require.NoError(t, err, res.output)
	require.Contains(t, res.output, "[build 3/5] RUN go mod download")
	img := pullImage(t, release+"@"+res.digest)
	ls := layers(t, img)
	app := layerEntries(t, ls[len(ls)-1])
	require.Equal(t, []string{"app", "app/server", "app/web", "app/web/index.html"}, names(app), "the binary and the pages, no source")
	require.Equal(t, "hello, Ada Lovelace\nexit 0\n", runInImage(t, release+"@"+res.digest, "/app/server -hello 'ada lovelace'"),
		"the binary runs, with its dependency from the module proxy")

	// A page edited: the build runs again, writes the same binary, and the
	// deploy ships the page.
	writeTree(t, dir, map[string]file{"web/index.html": {content: "<h1>edited</h1>\n"}})
	patchRef := env.stack.Ref("examples/go-build", "patch")
	pres, err := buildWithBuildx(t, build{dir: dir, args: args, output: patchRef})
	require.NoError(t, err, pres.output)
	require.Contains(t, pres.output, decide.PatchPrefix+res.digest+": 1 changed, 0 deleted")
	patched := pullImage(t, patchRef+"@"+pres.digest)
	requirePatchOf(t, img, res.digest, patched, []string{"app", "app/web", "app/web/index.html"})

	// Go code edited: a new binary, most of the app's bytes.
	writeTree(t, dir, map[string]file{"greeting/greeting.go": {content: strings.Replace(readFile(t, filepath.Join(dir, "greeting/greeting.go")), `"hello, "`, `"hi, "`, 1)}})
	res2, err := buildWithBuildx(t, build{dir: dir, args: args, output: env.stack.Ref("examples/go-build", "v2")})
	require.NoError(t, err, res2.output)
	require.Regexp(t, `full build: the change is \d+% of the app tree's bytes \(more than PATCH_MAX_SHARE=50%\)`, res2.output)
	args["PATCH_MAX_SHARE"] = "100"
	res3, err := buildWithBuildx(t, build{dir: dir, args: args, output: env.stack.Ref("examples/go-build", "v2-patch")})
	require.NoError(t, err, res3.output)
	require.Contains(t, res3.output, decide.PatchPrefix+res.digest+": 2 changed, 0 deleted", "the binary and the page")
	require.Equal(t, "hi, Ada\nexit 0\n", runInImage(t, env.stack.Ref("examples/go-build", "v2-patch")+"@"+res3.digest, "/app/server -hello ada"))
}
