package integration

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/stretchr/testify/require"
)

// frontendMemoryBudget is the frontend's peak resident memory that the
// README states for any candidate, forged or not, on an app this size.
const frontendMemoryBudget = 256 << 20

// forgedList writes a file list's raw (not yet compressed) bytes.
type forgedList struct{ bytes.Buffer }

func newForgedList() *forgedList {
	l := &forgedList{}
	l.WriteByte(1) // the list's version
	return l
}

func (l *forgedList) uvarint(v uint64) {
	var b [binary.MaxVarintLen64]byte
	l.Write(b[:binary.PutUvarint(b[:], v)])
}

// dir appends a directory entry: the first common bytes of the previous
// path, then suffix.
func (l *forgedList) dir(common int, suffix string) {
	l.uvarint(uint64(common))
	l.uvarint(uint64(len(suffix)))
	l.WriteString(suffix)
	l.WriteByte(byte(filelist.TypeDir))
	l.uvarint(0o755)
	l.uvarint(0)
	l.uvarint(0)
}

// TestForgedListMemory runs the frontend image, as a builder does, with a
// forged candidate whose labels match the build so that its list is read,
// and reads the frontend process's peak resident memory from the builder's
// log (PATCH_LOG_MEMORY=1). The lists:
//   - the one that took the frontend to 1.8 GiB before the decoder was
//     bounded: entry i a path of i bytes, each the previous one plus a
//     letter, 60,000 entries (118 KiB in the config). It is refused at its
//     first path over 4,096 bytes; the build is a full one that says why.
//   - a list at every bound the reader accepts: 16,000 paths of 4,000
//     bytes (the 64 MiB of path bytes), then short paths up to 500,000
//     entries, all in one directory. It is read, compared and patched (the
//     patch deletes the directory).
//   - a config of 5 million empty history entries (15 MiB, under the
//     16 MiB a config can be), which would decode to about 400 MiB: it is
//     refused before it is decoded.
func TestForgedListMemory(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, releaseTree())
	ref := func(tag string) string { return env.stack.Ref("forgedmem/app", tag) }
	res, err := buildInProcess(t, build{dir: dir, args: fullArgs(), output: ref("release")})
	require.NoError(t, err)
	release := ref("release") + "@" + res.digest
	applyChangeSet(t, dir)

	quadratic := newForgedList()
	for i := 1; i <= 60_000; i++ {
		quadratic.dir(i-1, "a") // shares all of the previous path
	}
	atBounds := newForgedList()
	long := strings.Repeat("d/", 1997) + "d"
	for i := range 16_000 {
		if i == 0 {
			atBounds.dir(0, fmt.Sprintf("%s/%05d", long, i))
		} else {
			atBounds.dir(len(long)+1, fmt.Sprintf("%05d", i))
		}
	}
	atBounds.dir(0, "z")
	for i := range 500_000 - 16_000 - 1 {
		atBounds.dir(0, fmt.Sprintf("z/%06d", i))
	}

	var history bytes.Buffer // 5 million empty history entries: 15 MiB
	history.WriteString("[{}")
	for range 5_000_000 - 1 {
		history.WriteString(",{}")
	}
	history.WriteString("]")
	withList := func(l *forgedList) func(t *testing.T, c forgedConfig) {
		return func(t *testing.T, c forgedConfig) { c["dev.patchfile.files"] = gzipBase64(t, l.Bytes()) }
	}

	for _, tc := range []struct {
		name   string
		edit   func(t *testing.T, c forgedConfig)
		expect string
	}{
		{"quadratic", withList(quadratic), "has no usable file list (file list has a path or link target longer than 4096 bytes)"},
		{"at-bounds", withList(atBounds), "[patch]"},
		{"history", func(t *testing.T, c forgedConfig) { c["history"] = json.RawMessage(history.Bytes()) },
			"has an image config that is not read (it holds more than 100000 JSON values)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forged := edited(release, tc.edit)(t)
			args := patchArgs(forged)
			args["PATCH_LOG_MEMORY"] = "1"
			logPath := env.warm.LogPath()
			offset := fileSize(t, logPath)
			res, err := buildWithBuildctl(t, build{dir: dir, args: args, output: ref(tc.name)})
			require.NoError(t, err, "a forged candidate never fails the build")
			require.Contains(t, res.output, tc.expect)
			peak := frontendPeakMemory(t, logPath, offset)
			t.Logf("%s: a config of %d KiB; the frontend's peak resident memory %d MiB", tc.name, configSize(t, forged)>>10, peak>>20)
			require.Less(t, peak, int64(frontendMemoryBudget), "the README's memory budget")
		})
	}
}

var peakMemoryLine = regexp.MustCompile(`patchfile frontend: peak resident memory (\d+) KiB`)

// frontendPeakMemory finds the one peak memory line the frontend wrote to
// the builder's log after offset, in bytes.
func frontendPeakMemory(t *testing.T, logPath string, offset int64) int64 {
	t.Helper()
	f, err := os.Open(logPath)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Seek(offset, io.SeekStart)
	require.NoError(t, err)
	dt, err := io.ReadAll(f)
	require.NoError(t, err)
	m := peakMemoryLine.FindAllSubmatch(dt, -1)
	require.Len(t, m, 1, "one frontend run logged its memory")
	kib, err := strconv.ParseInt(string(m[0][1]), 10, 64)
	require.NoError(t, err)
	return kib << 10
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	require.NoError(t, err)
	return st.Size()
}

// configSize is the size of an image's config, read from its manifest
// (pulling a forged config would make the test decode it).
func configSize(t *testing.T, ref string) int64 {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	require.NoError(t, err)
	desc, err := remote.Get(r)
	require.NoError(t, err)
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	require.NoError(t, err)
	return m.Config.Size
}
