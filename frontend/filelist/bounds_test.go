package filelist

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// rawList writes a file list's bytes as an attacker would: entries of
// directories, each given as the length of the prefix it shares with the
// previous path and its own suffix.
type rawList struct{ buf bytes.Buffer }

func newRawList() *rawList {
	l := &rawList{}
	l.buf.WriteByte(FormatVersion)
	return l
}

func (l *rawList) uvarint(v uint64) {
	var b [binary.MaxVarintLen64]byte
	l.buf.Write(b[:binary.PutUvarint(b[:], v)])
}

func (l *rawList) dir(common int, suffix string) {
	l.uvarint(uint64(common))
	l.uvarint(uint64(len(suffix)))
	l.buf.WriteString(suffix)
	l.buf.WriteByte(byte(TypeDir))
	l.uvarint(0o755)
	l.uvarint(0)
	l.uvarint(0)
}

func (l *rawList) encode(t testing.TB) string {
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(l.buf.Bytes())
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return base64.StdEncoding.EncodeToString(z.Bytes())
}

// decodeAllocs decodes s and returns what it allocated, in bytes.
func decodeAllocs(s string) (*List, error, uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := Decode(s)
	runtime.ReadMemStats(&after)
	return m, err, after.TotalAlloc - before.TotalAlloc
}

// maxDecodeAlloc is what decoding any list may allocate in all: the
// entries at their bound, twice (the slice doubles as it grows), the
// strings at theirs (rounded up to the allocator's size classes: a third
// more at most), and the decoder's buffers.
const maxDecodeAlloc = 2*maxEntries*uint64(unsafe.Sizeof(Entry{})) + maxStrings*4/3 + 1<<20

// TestDecodeForgedLists: lists forged so that few encoded bytes stand for
// many decoded ones are refused, allocating no more than the bounds allow.
// The first is the one that took the frontend to 1.8 GiB: entry i a path
// of i characters, each the previous one plus a letter.
func TestDecodeForgedLists(t *testing.T) {
	growing := newRawList()
	for i := 1; i <= 40_000; i++ {
		growing.dir(i-1, "a")
	}
	// Paths of 4,096 bytes that each share all but their last few bytes
	// with the one before: within the path bound, over the strings bound.
	long := newRawList()
	prev := ""
	for i := range 100_000 {
		p := strings.Repeat("a", maxPath-6) + fmt.Sprintf("%06d", i)
		c := commonPrefix(prev, p)
		long.dir(c, p[c:])
		prev = p
	}
	many := newRawList()
	prev = ""
	for i := range maxEntries + 1 {
		p := fmt.Sprintf("%07d", i)
		c := commonPrefix(prev, p)
		many.dir(c, p[c:])
		prev = p
	}
	for _, tc := range []struct {
		name string
		list *rawList
		err  string
	}{
		{name: "each path the previous plus one byte", list: growing, err: fmt.Sprintf("file list has a path or link target longer than %d bytes", maxPath)},
		{name: "long paths sharing prefixes", list: long, err: "file list's paths and link targets are more than 64 MiB"},
		{name: "one entry more than the bound", list: many, err: fmt.Sprintf("file list has more than %d entries", maxEntries)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.list.encode(t)
			m, err, alloc := decodeAllocs(enc)
			t.Logf("%d bytes encoded, %d raw: allocated %d MiB", len(enc), tc.list.buf.Len(), alloc>>20)
			require.Nil(t, m)
			require.ErrorContains(t, err, tc.err)
			require.LessOrEqual(t, alloc, uint64(maxDecodeAlloc))
		})
	}
}

// FuzzDecode feeds the decoder arbitrary list bytes (compressed
// and encoded as a config carries them): it never panics, what it accepts
// encodes back to a list that decodes the same, and it allocates at most
// a fixed multiple of its input and never more than the bounds allow.
func FuzzDecode(f *testing.F) {
	valid := &List{Entries: []Entry{dir("src"), file("src/a.js", "a"), {Path: "src/link", Type: TypeSymlink, Mode: 0o777, Linkname: "a.js"}}}
	enc, err := valid.Encode()
	require.NoError(f, err)
	zdata, err := base64.StdEncoding.DecodeString(enc)
	require.NoError(f, err)
	zr, err := gzip.NewReader(bytes.NewReader(zdata))
	require.NoError(f, err)
	var raw bytes.Buffer
	_, err = raw.ReadFrom(zr)
	require.NoError(f, err)
	f.Add(raw.Bytes())
	f.Add([]byte{FormatVersion})
	f.Fuzz(func(t *testing.T, raw []byte) {
		l := &rawList{}
		l.buf.Write(raw)
		m, err, alloc := decodeAllocs(l.encode(t))
		// A path or link target of up to 4,096 bytes can take 8 bytes
		// of input: 512 bytes of string per input byte, and the entries.
		require.LessOrEqual(t, alloc, min(uint64(maxDecodeAlloc), 1024*uint64(len(raw))+1<<20))
		if err != nil {
			return
		}
		again, err := m.Encode()
		require.NoError(t, err)
		back, err := Decode(again)
		require.NoError(t, err)
		require.Equal(t, m, back)
	})
}

// TestEncodeRefusesWhatNoReaderCouldRead: a list within the entry and path
// bounds whose encoding is over what a release's config can carry (files
// of random content: their digests do not compress) is refused by the
// writer, and the build warns instead of writing a config no patch could
// resolve.
func TestEncodeRefusesWhatNoReaderCouldRead(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	n := maxEncoded / 40 // about 44 encoded bytes per file
	m := &List{Entries: make([]Entry, 0, n)}
	for i := range n {
		e := Entry{Path: fmt.Sprintf("f%07d", i), Type: TypeFile, Mode: 0o644, Size: 1}
		for j := range e.Digest {
			e.Digest[j] = byte(rnd.Uint32())
		}
		m.Entries = append(m.Entries, e)
	}
	require.NoError(t, m.checkBounds(), "within the entry and path bounds")
	_, err := m.Encode()
	require.ErrorContains(t, err, fmt.Sprintf("more than the %d MiB a release's config can carry", maxEncoded>>20))

	m.Entries = m.Entries[:n/2]
	enc, err := m.Encode()
	require.NoError(t, err)
	require.Less(t, len(enc), maxEncoded)
}
