package integration

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/patchfile/patchfile/frontend"
	"github.com/stretchr/testify/require"
)

// forgedListBudget is what a build of this tiny app may allocate in all,
// in the frontend (which buildInProcess runs in this process), with a
// forged candidate: the README's bound on reading a file list (about
// 170 MiB) is far above what a refused list costs.
const forgedListBudget = 64 << 20

// TestForgedListMemory: the file list that took the frontend to 1.8 GiB
// (entry i a path of i bytes, each the previous one plus a letter: 40,000
// entries, about 80 KB in the config), on a candidate whose labels match
// the build so that its list is read. The build falls back to a full one
// with the reason, and the frontend allocates little doing it.
func TestForgedListMemory(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	ref := func(tag string) string { return env.stack.Ref("forgedmem/app", tag) }
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("release")})
	require.NoError(t, err)
	release := ref("release") + "@" + res.digest

	var raw bytes.Buffer
	raw.WriteByte(1) // the list's version
	var b [binary.MaxVarintLen64]byte
	uvarint := func(v uint64) { raw.Write(b[:binary.PutUvarint(b[:], v)]) }
	for i := 1; i <= 40_000; i++ {
		uvarint(uint64(i - 1)) // shares all of the previous path
		uvarint(1)
		raw.WriteByte('a')
		raw.WriteByte(byte(frontend.TypeDir))
		uvarint(0o755)
		uvarint(0)
		uvarint(0)
	}
	forged := edited(release, func(t *testing.T, c forgedConfig) { c["dev.patchfile.files"] = gzipBase64(t, raw.Bytes()) })(t)

	applyChangeSet(t, dir)
	args := patchArgs(forged)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err = buildInProcess(t, build{dir: dir, args: args, output: ref("out")})
	runtime.ReadMemStats(&after)
	require.NoError(t, err, "a forged candidate never fails the build")
	require.Contains(t, res.output, "has no usable file list (file list has a path or link target longer than 4096 bytes)")
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("the build with the forged candidate allocated %d MiB in this process (frontend and client)", alloc>>20)
	require.Less(t, alloc, uint64(forgedListBudget))
}
