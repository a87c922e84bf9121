package frontend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/pkg/errors"
	fstypes "github.com/tonistiigi/fsutil/types"
	"golang.org/x/sync/errgroup"
)

// readParallelism bounds concurrent gateway round trips (ReadDir and
// ReadFile). Each costs about 0.1 ms of the two processes' CPU: on 2 cores,
// 64 in flight hashed a 30,000-file app in 3.1 s, 16 in 3.7 s.
const readParallelism = 32

// gatewayContext reads the build context through the gateway.
type gatewayContext struct {
	bc *dockerui.Client
	c  client.Client
	// hashStep is when files are hashed in a build step (PATCH_HASH_STEP).
	hashStep string
	// warn shows the user a warning (the Patchfile's source's); nil in
	// tests.
	warn func(ctx context.Context, msg string)

	toolOnce sync.Once
	tool     *convert.Tool
	toolErr  error
	warnOnce sync.Once

	mu     sync.Mutex
	loaded map[string]llb.State  // by contextKey: see Load
	reads  map[string]*filesRead // by contextKey: see Files
}

// filesRead is one reading of context files, shared by every caller of
// Files for the same name and patterns: a prefetch and the conversion,
// the platforms of a multi-platform build.
type filesRead struct {
	done  chan struct{}
	st    llb.State
	files []buildcontext.File
	err   error
}

// contextKey identifies a load of the context by name and patterns.
func contextKey(name string, patterns []string) string {
	return strconv.Quote(name) + " " + strings.Join(patterns, "\x00")
}

// Main returns the build context, .dockerignore applied.
func (g *gatewayContext) Main(ctx context.Context, opts ...llb.LocalOption) (*llb.State, error) {
	return g.bc.MainContext(ctx, opts...)
}

// Load returns the context narrowed to patterns. It keeps what it made,
// so that Files and a step built early hold the same state whatever
// dockerui does: two local sources would upload the files twice.
func (g *gatewayContext) Load(ctx context.Context, name string, patterns []string) (llb.State, error) {
	key := contextKey(name, patterns)
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, ok := g.loaded[key]; ok {
		return st, nil
	}
	st, err := g.bc.MainContext(ctx,
		llb.IncludePatterns(patterns),
		llb.SharedKeyHint("patchfile-"+name),
		dockerui.WithInternalName("load "+name))
	if err != nil {
		return llb.State{}, err
	}
	local, err := isLocal(ctx, *st)
	if err != nil {
		return llb.State{}, err
	}
	if !local {
		// A Git or HTTP build context comes from dockerui whole: its
		// include patterns apply to a local context only. Without this
		// copy, DEPS would see (and hash) the whole repository, and every
		// commit would rebuild the dependency stage.
		narrowed := llb.Scratch().File(llb.Copy(*st, "/", "/", &llb.CopyInfo{CopyDirContentsOnly: true, IncludePatterns: patterns, AllowEmptyWildcard: true}),
			dockerui.WithInternalName("select "+name+" from the build context"))
		st = &narrowed
	}
	if g.loaded == nil {
		g.loaded = map[string]llb.State{}
	}
	g.loaded[key] = *st
	return *st, nil
}

// isLocal tells whether st is a local build context (the client's files),
// not a Git repository or an HTTP download.
func isLocal(ctx context.Context, st llb.State) (bool, error) {
	def, err := st.Marshal(ctx)
	if err != nil {
		return false, err
	}
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			return false, err
		}
		if src := op.GetSource(); src != nil && strings.HasPrefix(src.Identifier, "local://") {
			return true, nil
		}
	}
	return false, nil
}

// Prefetch starts reading the context files matching patterns, in the
// background, for a later Files call with the same name and patterns: a
// build starts uploading and hashing its app files while it still reads
// the dependency manifests and resolves images. ctx bounds the reading.
func (g *gatewayContext) Prefetch(ctx context.Context, name string, patterns []string) {
	if r, first := g.read(name, patterns); first {
		go r.run(ctx, g, name, patterns)
	}
}

// Files solves the context narrowed to patterns and reads every file in
// it, or waits for the reading a Prefetch or another caller started.
func (g *gatewayContext) Files(ctx context.Context, name string, patterns []string) (llb.State, []buildcontext.File, error) {
	r, first := g.read(name, patterns)
	if first {
		r.run(ctx, g, name, patterns)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return llb.State{}, nil, context.Cause(ctx)
	}
	return r.st, slices.Clone(r.files), r.err
}

// Wait returns when every reading started (Prefetch, Files) has ended.
func (g *gatewayContext) Wait() {
	g.mu.Lock()
	reads := slices.Collect(maps.Values(g.reads))
	g.mu.Unlock()
	for _, r := range reads {
		<-r.done
	}
}

// read returns the reading for name and patterns, and whether the caller
// made it (and must run it).
func (g *gatewayContext) read(name string, patterns []string) (*filesRead, bool) {
	key := contextKey(name, patterns)
	g.mu.Lock()
	defer g.mu.Unlock()
	if r, ok := g.reads[key]; ok {
		return r, false
	}
	if g.reads == nil {
		g.reads = map[string]*filesRead{}
	}
	r := &filesRead{done: make(chan struct{})}
	g.reads[key] = r
	return r, true
}

func (r *filesRead) run(ctx context.Context, g *gatewayContext, name string, patterns []string) {
	defer close(r.done)
	r.st, r.files, r.err = g.readFiles(ctx, name, patterns)
}

// readFiles is Files without the sharing.
func (g *gatewayContext) readFiles(ctx context.Context, name string, patterns []string) (llb.State, []buildcontext.File, error) {
	st, err := g.Load(ctx, name, patterns)
	if err != nil {
		return llb.State{}, nil, err
	}
	if g.hashStep != hashStepAlways {
		ref, err := solveRef(ctx, g.c, &st, name)
		if err != nil {
			return llb.State{}, nil, err
		}
		if files, ok, err := readSmallTree(ctx, ref, name); ok {
			if err != nil {
				return llb.State{}, nil, err
			}
			return st, files, nil
		}
	}
	if files, ok, err := g.hashInBuilder(ctx, st, name); ok {
		if err == nil {
			err = g.restatDirs(ctx, st, name, files)
		}
		if err != nil {
			return llb.State{}, nil, errors.Wrapf(err, "reading %s", name)
		}
		return st, files, nil
	}
	ref, err := solveRef(ctx, g.c, &st, name)
	if err != nil {
		return llb.State{}, nil, err
	}
	files, err := ReadTree(ctx, ref, "/", true)
	if err != nil {
		return llb.State{}, nil, errors.Wrapf(err, "reading %s", name)
	}
	state, err := ref.ToState()
	if err != nil {
		return llb.State{}, nil, err
	}
	return state, files, nil
}

// keySource is the frontend option that names the frontend's own image
// (BuildKit's frontend.KeySource): the image `# syntax=` or buildctl's
// `--opt source=` gave. It is absent when the frontend runs in the
// client's process (client.Build).
const keySource = "source"

// hashInBuilder lists and hashes the files of st in one build step that
// runs the frontend's own binary (WalkTree) over st, mounted read-only,
// with no network, and reads its list back in one file. ok is false when
// it cannot: the frontend does not know its image, or the step failed (a
// builder that cannot run the image); the caller then reads through the
// gateway. An error with ok is the walk's, for the build to report.
func (g *gatewayContext) hashInBuilder(ctx context.Context, st llb.State, name string) (files []buildcontext.File, ok bool, err error) {
	self, err := g.selfTool(ctx)
	if err != nil || self == nil {
		return nil, false, nil
	}
	run := self.Image.Run(
		llb.Args([]string{self.Binary, buildcontext.HashCommand, "/context", "/out"}),
		llb.Network(llb.NetModeNone),
		llb.ReadonlyRootFS(),
		llb.AddMount("/context", st, llb.Readonly),
		dockerui.WithInternalName("hash "+name),
	)
	out := run.AddMount("/out", llb.Scratch())
	ref, err := solveRef(ctx, g.c, &out, "hashing "+name)
	if err != nil {
		g.warnFallback(ctx, self, err)
		return nil, false, nil
	}
	var list bytes.Buffer
	if err := readChunks(ctx, ref, buildcontext.ListFile, func(dt []byte) { list.Write(dt) }); err != nil {
		g.warnFallback(ctx, self, err)
		return nil, false, nil
	}
	files, err = buildcontext.ReadList(&list)
	if errors.Is(err, buildcontext.ErrListVersion) {
		g.warnFallback(ctx, self, err)
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return files, true, nil
}

// Outputs lists and hashes a tree the build makes, in the hashing step
// like context files, or through the gateway where that cannot run. The
// tree is solved first, so that the build's own failure (a compiler's
// error, a path the build did not write) is what the user reads, and is
// not taken for a builder that cannot run the hashing step. Unlike the
// context's, its directories need no second look: a built tree's cache key
// covers their metadata (restatDirs).
func (g *gatewayContext) Outputs(ctx context.Context, st llb.State, name string, buildCaches []string) ([]buildcontext.File, error) {
	def, err := st.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	imports := slices.Clone(g.bc.CacheImports)
	for _, ref := range buildCaches {
		imports = append(imports, client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": ref}})
	}
	res, err := g.c.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), Evaluate: true, CacheImports: imports})
	if err != nil {
		return nil, errors.Wrapf(err, "building %s", name)
	}
	ref, err := res.SingleRef()
	if err != nil {
		return nil, err
	}
	if g.hashStep != hashStepAlways {
		if files, ok, err := readSmallTree(ctx, ref, name); ok {
			return files, err
		}
	}
	if files, ok, err := g.hashInBuilder(ctx, st, name); ok {
		return files, errors.Wrapf(err, "reading %s", name)
	}
	files, err := ReadTree(ctx, ref, "/", true)
	return files, errors.Wrapf(err, "reading %s", name)
}

// restatDirs replaces the mode and owner of every directory in files with
// what the context holds now.
//
// The hash step comes from the cache when its mount's content checksum is
// the one of an earlier build, and on a warm builder that checksum stays
// the same when only a directory's mode or owner changed: fsutil's
// DiskWriter rewrites an existing directory's metadata without telling the
// checksum cache (moby/buildkit#7176; files are rewritten and reported).
// The cached list is then right about every path and file but may hold a
// directory's old metadata, which one stat per directory puts right
// (TestHashStepSeesDirectoryModes): far cheaper than hashing every file
// again on each build.
func (g *gatewayContext) restatDirs(ctx context.Context, st llb.State, name string, files []buildcontext.File) error {
	ref, err := solveRef(ctx, g.c, &st, name)
	if err != nil {
		return err
	}
	var dirs []int
	var paths []string
	for i, f := range files {
		if f.Mode.IsDir() {
			dirs, paths = append(dirs, i), append(paths, f.Path)
		}
	}
	stats, err := statPaths(ctx, ref, paths)
	if err != nil {
		return err
	}
	for k, i := range dirs {
		f := &files[i]
		f.Mode, f.UID, f.GID = os.FileMode(stats[k].Mode), stats[k].Uid, stats[k].Gid
	}
	return nil
}

// statPaths stats paths in ref and returns their stats in the same order.
// It lists each distinct parent directory once (ReadDir, readParallelism
// at a time) instead of stating each path (StatFile): every gateway call
// mounts the snapshot, and a tree's directories share few parents. The
// 1,000 directories of a 100,000-file app took 1,000 stats and about a
// second; they are 2 listings now. A path missing from its parent's
// listing is an error, as StatFile's would be.
func statPaths(ctx context.Context, ref client.Reference, paths []string) ([]*fstypes.Stat, error) {
	byParent := map[string][]int{}
	for i, p := range paths {
		p = path.Clean("/" + p)
		if p == "/" {
			return nil, errors.New("statPaths: the root has no parent to list it")
		}
		byParent[path.Dir(p)] = append(byParent[path.Dir(p)], i)
	}
	stats := make([]*fstypes.Stat, len(paths))
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(readParallelism)
	for dir, members := range byParent {
		eg.Go(func() error {
			entries, err := ref.ReadDir(ctx, client.ReadDirRequest{Path: dir})
			if err != nil {
				return err
			}
			byName := make(map[string]*fstypes.Stat, len(entries))
			for _, e := range entries {
				byName[e.Path] = e
			}
			for _, i := range members {
				st, ok := byName[path.Base(paths[i])]
				if !ok {
					return errors.Wrap(os.ErrNotExist, paths[i])
				}
				stats[i] = st
			}
			return nil
		})
	}
	return stats, eg.Wait()
}

// selfTool is the frontend's own image, for the build platform, and its
// binary there (convert.ToolBinaryOf), or nil when the frontend runs in
// the client's process. Where a named context replaces the image
// (air-gapped builds name the syntax image as a context), that is what
// runs, as for the frontend itself.
func (g *gatewayContext) selfTool(ctx context.Context) (*convert.Tool, error) {
	g.toolOnce.Do(func() { g.tool, g.toolErr = g.loadSelfTool(ctx) })
	return g.tool, g.toolErr
}

// loadSelfTool is selfTool, once: the image's config names the binary.
func (g *gatewayContext) loadSelfTool(ctx context.Context) (*convert.Tool, error) {
	source := g.c.BuildOpts().Opts[keySource]
	if source == "" || len(g.bc.BuildPlatforms) == 0 {
		return nil, nil
	}
	platform := g.bc.BuildPlatforms[0]
	nc, err := g.bc.NamedContext(source, dockerui.ContextOpt{Platform: &platform})
	if err != nil {
		return nil, err
	}
	if nc != nil {
		st, img, err := nc.Load(ctx)
		if err != nil || st == nil {
			return nil, err
		}
		tool := &convert.Tool{Image: *st, Binary: convert.DefaultToolBinary}
		if img != nil {
			tool.Binary = convert.ToolBinaryOf(img.Config.Entrypoint, img.Config.Cmd)
		}
		return tool, nil
	}
	tool := &convert.Tool{Image: llb.Image(source, llb.Platform(platform), dockerui.WithInternalName("load the frontend's image")),
		Binary: convert.DefaultToolBinary}
	_, _, dt, err := g.c.ResolveImageConfig(ctx, source, sourceresolver.Opt{
		LogName:  "[internal] load the frontend's image config",
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &platform}})
	var img ocispecs.Image
	if err == nil && json.Unmarshal(dt, &img) == nil {
		tool.Binary = convert.ToolBinaryOf(img.Config.Entrypoint, img.Config.Cmd)
	}
	return tool, nil
}

// ReadTree lists the entries below dir of a solved reference, sorted by
// path (relative to dir). With hash, it then streams every regular file
// through SHA-256 (hashListed).
//
// Every entry costs a gateway round trip (ReadDir per directory, ReadFile
// per file), readParallelism at a time: the directories of a deep tree of
// small directories are listed concurrently, then the files are read
// concurrently.
func ReadTree(ctx context.Context, ref client.Reference, dir string, hash bool) ([]buildcontext.File, error) {
	files, err := readTree(ctx, ref, dir, treeLimit{})
	if err == nil && hash {
		err = hashListed(ctx, ref, dir, files)
	}
	if err != nil {
		return nil, err
	}
	return files, nil
}

// treeLimit bounds a tree read through the gateway: its entries and the
// bytes of its regular files; zero is no bound.
type treeLimit struct {
	entries int
	bytes   int64
}

// smallTree is what the gateway reads instead of a build step that hashes
// (PATCH_HASH_STEP=auto). The step costs a container start and a solve,
// about 0.1-0.2 s on 2 cores, on the path of every build (the build
// stage's sources and outputs, the DEPS manifests); through the gateway, a
// round trip per directory and per file costs about 0.15 ms, plus the
// bytes. A tree over the bound is hashed in the step: the read stops at
// the bound, so a large app pays at most that much more.
var smallTree = treeLimit{entries: 256, bytes: 4 << 20}

// errTreeTooBig is a read that went over its treeLimit.
var errTreeTooBig = errors.New("the tree is over the bound of a read through the gateway")

// readSmallTree reads and hashes the tree of ref through the gateway when
// it is within smallTree. ok is false when it is over: the caller hashes
// it in a build step. An error with ok is the read's, naming name.
//
// It lists the tree first and reads no file until the listing is known to
// be within the bound: a large app (most are) gives up after a few
// directory listings instead of after hashing the bound's worth of files,
// which took about 40 ms of every build of an app over the bound.
func readSmallTree(ctx context.Context, ref client.Reference, name string) (files []buildcontext.File, ok bool, err error) {
	files, err = readTree(ctx, ref, "/", smallTree)
	if errors.Is(err, errTreeTooBig) {
		return nil, false, nil
	}
	if err == nil {
		err = hashListed(ctx, ref, "/", files)
	}
	return files, true, errors.Wrapf(err, "reading %s", name)
}

// hashListed hashes the regular files of a listing of dir in ref
// (readTree), readParallelism at a time, in place.
func hashListed(ctx context.Context, ref client.Reference, dir string, files []buildcontext.File) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(readParallelism)
	for i := range files {
		f := &files[i]
		if !f.Mode.IsRegular() {
			continue
		}
		eg.Go(func() error {
			var err error
			f.Size, f.SHA256, err = hashFile(ctx, ref, path.Join(dir, f.Path), f.Size)
			return err
		})
	}
	return eg.Wait()
}

// readTree lists the entries below dir of ref, sorted by path, without
// reading any file; it stops with errTreeTooBig when the tree goes over
// limit. The directories share one errgroup of readParallelism listers; a
// listing that finds every lister busy runs in its caller instead of
// waiting for one, which a lister would otherwise do while holding a slot.
func readTree(ctx context.Context, ref client.Reference, dir string, limit treeLimit) ([]buildcontext.File, error) {
	var (
		mu    sync.Mutex
		files []buildcontext.File
		seen  int
		bytes int64
	)
	add := func(f buildcontext.File) {
		mu.Lock()
		files = append(files, f)
		mu.Unlock()
	}
	// count counts an entry of size bytes (a regular file's) against limit.
	count := func(size int64) error {
		mu.Lock()
		defer mu.Unlock()
		seen, bytes = seen+1, bytes+size
		if limit.entries > 0 && seen > limit.entries || limit.bytes > 0 && bytes > limit.bytes {
			return errTreeTooBig
		}
		return nil
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(readParallelism)
	run := func(job func() error) error {
		if eg.TryGo(job) {
			return nil
		}
		return job()
	}
	var readDir func(rel string) error
	readDir = func(rel string) error {
		entries, err := ref.ReadDir(ctx, client.ReadDirRequest{Path: path.Join(dir, rel)})
		if err != nil {
			if strings.Contains(err.Error(), "invalid UTF-8") {
				// The listing cannot cross the gateway, so the name cannot
				// either (BuildKit's listing of a directory fails for a bad
				// name anywhere below it): where it fails is as close as it
				// gets.
				return errors.Errorf("a file name in %s or below %s", dirLabel(rel), buildcontext.NotUTF8)
			}
			return err
		}
		for _, e := range entries {
			p := path.Join(rel, path.Base(e.Path))
			mode := os.FileMode(e.Mode)
			size := int64(0)
			if mode.IsRegular() {
				size = e.Size
			}
			if err := count(size); err != nil {
				return err
			}
			f := buildcontext.File{Path: p, Mode: mode, UID: e.Uid, GID: e.Gid}
			switch {
			case mode&os.ModeSymlink != 0:
				f.Linkname = e.Linkname
			case mode.IsRegular():
				f.Size = e.Size
			}
			// (A fifo, socket or device is listed, with no contents, for
			// APP to refuse: refuseSpecialFiles.)
			add(f)
			if mode.IsDir() {
				if err := run(func() error { return readDir(p) }); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := readDir("")
	if werr := eg.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// PATCH_HASH_STEP: when the frontend hashes files in a build step of its
// own instead of reading them through the gateway.
const (
	keyHashStepArg = "PATCH_HASH_STEP"
	hashStepAuto   = "auto"   // trees over smallTree
	hashStepAlways = "always" // every tree
)

// hashStepOf reads PATCH_HASH_STEP.
func hashStepOf(args map[string]string) (string, error) {
	switch v := args[keyHashStepArg]; v {
	case "", hashStepAuto:
		return hashStepAuto, nil
	case hashStepAlways:
		return v, nil
	default:
		return "", errors.Errorf("%s=%s: write %s=auto (the default: trees of more than %d entries or %d MiB are hashed in a build step, smaller ones read through the gateway) or %s=always", keyHashStepArg, v, keyHashStepArg, smallTree.entries, smallTree.bytes>>20, keyHashStepArg)
	}
}

// List lists the context without reading contents.
func (g *gatewayContext) List(ctx context.Context, withIgnored bool) ([]buildcontext.File, error) {
	opts := []llb.LocalOption{llb.SharedKeyHint("patchfile-check"), dockerui.WithInternalName("list build context")}
	if withIgnored {
		opts = append(opts, llb.ExcludePatterns(nil))
	}
	st, err := g.bc.MainContext(ctx, opts...)
	if err != nil {
		return nil, err
	}
	ref, err := solveRef(ctx, g.c, st, "build context")
	if err != nil {
		return nil, err
	}
	return ReadTree(ctx, ref, "/", false)
}

// IgnorePatterns returns the context's ignore patterns.
func (g *gatewayContext) IgnorePatterns(ctx context.Context) ([]string, error) {
	return g.bc.DockerIgnorePatterns(ctx)
}

// solveRef solves st and returns its result's reference; name says what
// was solved in an error.
func solveRef(ctx context.Context, c client.Client, st *llb.State, name string) (client.Reference, error) {
	def, err := st.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, errors.Wrapf(err, "loading %s", name)
	}
	return res.SingleRef()
}

// readChunk is the most a single ReadFile asks for: gRPC messages are
// bounded, and files of any size must hash.
const readChunk = 4 << 20

// hashFile streams a file through SHA-256 in chunks. It reads until a short
// chunk rather than trusting size, which a concurrent change could make stale.
func hashFile(ctx context.Context, ref client.Reference, p string, size int64) (int64, [sha256.Size]byte, error) {
	h := sha256.New()
	var n int64
	var sum [sha256.Size]byte
	if size != 0 {
		// Empty files are common (__init__.py, .gitkeep): no round trip.
		if err := readChunks(ctx, ref, p, func(dt []byte) { h.Write(dt); n += int64(len(dt)) }); err != nil {
			return 0, sum, err
		}
	}
	copy(sum[:], h.Sum(nil))
	return n, sum, nil
}

// readChunks reads a file of a solved reference in chunks of readChunk,
// until a short one.
func readChunks(ctx context.Context, ref client.Reference, p string, chunk func([]byte)) error {
	for off := 0; ; {
		dt, err := ref.ReadFile(ctx, client.ReadRequest{Filename: p, Range: &client.FileRange{Offset: off, Length: readChunk}})
		if err != nil {
			return err
		}
		chunk(dt)
		off += len(dt)
		if len(dt) < readChunk {
			return nil
		}
	}
}

// dirLabel names a directory of the context for a message.
func dirLabel(rel string) string {
	if rel == "" {
		return "the context's root directory"
	}
	return "directory " + strconv.Quote(rel)
}

// warnFallback tells the user, once per build, that the files are read
// through the gateway because the hashing step could not run: slower (a
// round trip per file), and a sign of a frontend image laid out otherwise
// than its config says.
func (g *gatewayContext) warnFallback(ctx context.Context, tool *convert.Tool, err error) {
	if g.warn == nil {
		return
	}
	g.warnOnce.Do(func() {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		g.warn(ctx, fmt.Sprintf("the frontend's image could not hash the files in a build step with %s (%s): they are read through the gateway instead, a round trip per file", tool.Binary, msg))
	})
}
