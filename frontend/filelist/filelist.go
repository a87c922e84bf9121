package filelist

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/pkg/errors"
)

// ConfigField is the top-level image config field that holds a release's
// file list. It is not a label: labels are copied onto every container and
// must stay small, while a file list grows with the app. Exporters keep
// unknown config fields, and patches do not copy it: they point to their
// release with LabelRelease instead.
const ConfigField = "dev.patchfile.files"

// FormatVersion is bumped whenever the encoding changes; an unknown
// version makes a release unusable as a patch base (a full build follows).
const FormatVersion = 1

// EntryType is the kind of a file list entry.
type EntryType byte

// Entry types, as in tar.
const (
	TypeFile    EntryType = 'f'
	TypeDir     EntryType = 'd'
	TypeSymlink EntryType = 'l'
)

// ModeBits are the bits of a mode an Entry keeps: permissions and
// setuid, setgid and sticky.
const ModeBits = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// Entry is one entry of the app tree as it lands in the image.
type Entry struct {
	Path     string // relative to the APP destination, slash-separated
	Type     EntryType
	Mode     os.FileMode // ModeBits only
	UID, GID uint32
	Size     int64
	Digest   [sha256.Size]byte // content hash of a file
	Linkname string            // symlink target
}

// same tells whether two entries land identically.
func (e Entry) same(o Entry) bool {
	return e.Type == o.Type && e.Mode == o.Mode && e.UID == o.UID && e.GID == o.GID &&
		e.Size == o.Size && e.Digest == o.Digest && e.Linkname == o.Linkname
}

// List is the app tree of an image, sorted by path: a release's, decoded
// from its config, or a build's own, computed from its context.
type List struct {
	Entries []Entry
	// Origins are the context paths the entries of a build's own tree
	// come from, by path (not encoded: a release's list has none).
	Origins map[string]string
}

// TotalSize is the sum of file sizes.
func (m *List) TotalSize() int64 {
	var n int64
	for _, e := range m.Entries {
		n += e.Size
	}
	return n
}

// Encode returns the compact form stored in the release config: gzip of
// entries with shared path prefixes elided, in base64. A list over its
// bounds is an error: the reader would refuse it.
func (m *List) Encode() (string, error) {
	if err := m.checkBounds(); err != nil {
		return "", err
	}
	var raw bytes.Buffer
	raw.WriteByte(FormatVersion)
	var buf [binary.MaxVarintLen64]byte
	putUvarint := func(v uint64) { raw.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	prev := ""
	for _, e := range m.Entries {
		common := commonPrefix(prev, e.Path)
		putUvarint(uint64(common))
		putUvarint(uint64(len(e.Path) - common))
		raw.WriteString(e.Path[common:])
		raw.WriteByte(byte(e.Type))
		putUvarint(uint64(e.Mode))
		putUvarint(uint64(e.UID))
		putUvarint(uint64(e.GID))
		switch e.Type {
		case TypeFile:
			putUvarint(uint64(e.Size))
			raw.Write(e.Digest[:])
		case TypeSymlink:
			putUvarint(uint64(len(e.Linkname)))
			raw.WriteString(e.Linkname)
		}
		prev = e.Path
	}
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if n := base64.StdEncoding.EncodedLen(out.Len()); n > maxEncoded {
		return "", errors.Errorf("file list is %d MiB encoded, more than the %d MiB a release's config can carry", n>>20, maxEncoded>>20)
	}
	return base64.StdEncoding.EncodeToString(out.Bytes()), nil
}

// Bounds on a file list, for the writer and the reader alike. A list comes
// from a registry that anyone who can push a tag writes to, so reading one
// must cost a bounded amount of memory whatever its bytes say: the reader
// streams the decompressed bytes (never holding them whole) and counts
// what it builds. Worst case, a list at every bound costs the frontend
// about 170 MiB (the entries, 500,000 × 88 bytes, twice while the slice
// grows, and the strings); a real app is far below (100,000 files of
// 60-byte paths: about 15 MiB).
const (
	// maxEntries bounds the entries of a list.
	maxEntries = 500_000
	// maxPath bounds one path or symlink target, in bytes: Linux's
	// PATH_MAX.
	maxPath = 4096
	// maxStrings bounds the decoded bytes of all paths and symlink
	// targets together. Paths share prefixes in the encoding, so few
	// encoded bytes can stand for many decoded ones: this, not the size of
	// the input, bounds what they cost.
	maxStrings = 64 << 20
	// maxEncoded bounds a list as written in the config: with the
	// rest of the config it stays under the 16 MiB a candidate's config
	// can be (maxReleaseConfig), or no patch could read it.
	maxEncoded = 12 << 20
)

// decodeBudget counts what a list costs against its bounds.
type decodeBudget struct {
	entries int
	strings int64
}

// entry accounts for one more entry, or says which bound it breaks.
func (b *decodeBudget) entry() error {
	if b.entries++; b.entries > maxEntries {
		return errors.Errorf("file list has more than %d entries", maxEntries)
	}
	return nil
}

// str accounts for a path or link target of n bytes, before it is
// allocated, or says which bound it breaks.
func (b *decodeBudget) str(n uint64) error {
	if n > maxPath {
		return errors.Errorf("file list has a path or link target longer than %d bytes", maxPath)
	}
	if b.strings += int64(n); b.strings > maxStrings {
		return errors.Errorf("file list's paths and link targets are more than %d MiB", maxStrings>>20)
	}
	return nil
}

// Decode parses what Encode wrote. Any malformation is an error:
// a release whose list cannot be trusted is never patched. It checks each
// length before it allocates, so a forged list costs no more than the
// bounds above.
func Decode(s string) (*List, error) {
	zdata, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.Wrap(err, "file list is not base64")
	}
	zr, err := gzip.NewReader(bytes.NewReader(zdata))
	if err != nil {
		return nil, errors.Wrap(err, "file list is not gzip")
	}
	r := bufio.NewReader(zr)
	v, err := r.ReadByte()
	if err != nil {
		return nil, errors.Wrap(err, "file list is empty")
	}
	if v != FormatVersion {
		return nil, errors.Errorf("file list format %d, while this frontend reads format %d: a release built by another major version of the frontend is not patched", v, FormatVersion)
	}
	m := &List{}
	var budget decodeBudget
	prev := ""
	uvarint := func() uint64 {
		if err != nil {
			return 0
		}
		var x uint64
		x, err = binary.ReadUvarint(r)
		return x
	}
	// readString reads n bytes; the caller has bounded n.
	var buf [maxPath]byte
	readString := func(n uint64) string {
		if err != nil {
			return ""
		}
		_, err = io.ReadFull(r, buf[:n])
		return string(buf[:n])
	}
	for err == nil {
		if _, perr := r.Peek(1); perr == io.EOF {
			break
		}
		common, suffixLen := uvarint(), uvarint()
		if err != nil || common > uint64(len(prev)) || suffixLen > maxPath {
			return nil, errors.New("file list is corrupt: bad path")
		}
		if berr := cmp.Or(budget.entry(), budget.str(common+suffixLen)); berr != nil {
			return nil, berr
		}
		var e Entry
		e.Path = prev[:common] + readString(suffixLen)
		t, terr := r.ReadByte()
		if err != nil || terr != nil {
			return nil, errors.New("file list is corrupt: truncated entry")
		}
		e.Type = EntryType(t)
		e.Mode = os.FileMode(uvarint())
		e.UID, e.GID = uint32(uvarint()), uint32(uvarint())
		switch e.Type {
		case TypeFile:
			e.Size = int64(uvarint())
			if err == nil {
				_, err = io.ReadFull(r, e.Digest[:])
			}
		case TypeSymlink:
			n := uvarint()
			if berr := budget.str(n); berr != nil {
				return nil, berr
			}
			e.Linkname = readString(n)
		case TypeDir:
		default:
			return nil, errors.Errorf("file list is corrupt: entry type %q", t)
		}
		if err != nil {
			return nil, errors.Wrap(err, "file list is corrupt")
		}
		if !validPath(e.Path) || (len(m.Entries) > 0 && e.Path <= prev) {
			return nil, errors.Errorf("file list is corrupt: path %q", e.Path)
		}
		if len(m.Entries) == cap(m.Entries) {
			// Double, where append grows large slices by a quarter: what
			// a list allocates in all stays twice its size.
			grown := make([]Entry, len(m.Entries), max(1024, 2*cap(m.Entries)))
			copy(grown, m.Entries)
			m.Entries = grown
		}
		m.Entries = append(m.Entries, e)
		prev = e.Path
	}
	if err != nil {
		return nil, errors.Wrap(err, "file list is corrupt")
	}
	return m, nil
}

// checkBounds says which of a list's bounds m breaks, or nil: a list the
// reader would refuse is not written.
func (m *List) checkBounds() error {
	var budget decodeBudget
	for _, e := range m.Entries {
		if err := cmp.Or(budget.entry(), budget.str(uint64(len(e.Path))), budget.str(uint64(len(e.Linkname)))); err != nil {
			return err
		}
	}
	return nil
}

// validPath accepts clean relative paths only, so a forged list
// cannot make a patch touch anything outside the APP destination.
func validPath(p string) bool {
	return p != "" && p != "." && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// ChangeSet is what a patch layer must hold to turn a release's app tree
// into the new one.
type ChangeSet struct {
	// Changed are entries added or changed (content, mode, owner, target,
	// type), parents before children.
	Changed []Entry
	// Deleted are the topmost paths gone from the tree, and paths whose type
	// changed (removed before their new entry is added).
	Deleted []Entry
	// ChangedBytes is the size of the changed files.
	ChangedBytes int64
	// DirsBefore are the release's entries of the changed directories it
	// already had (their mode or owner changed), by path: a patch puts
	// them below the layer with this metadata, so that the layer carries
	// the new one.
	DirsBefore map[string]Entry
	// origins are the context paths of the new tree's entries (see
	// List.Origins); Source maps a path to its own.
	origins map[string]string
}

// Source is the context path (relative to the context root) that the new
// tree's entry at p comes from.
func (c *ChangeSet) Source(p string) string {
	if o, ok := c.origins[p]; ok {
		return o
	}
	// A tree with no origins (a test's) lands the context root as is.
	return p
}

// Empty tells whether the trees are equal.
func (c *ChangeSet) Empty() bool { return len(c.Changed) == 0 && len(c.Deleted) == 0 }

// Changes compares the release's tree (old) with the new one.
func Changes(old, cur *List) *ChangeSet {
	oldByPath := make(map[string]Entry, len(old.Entries))
	for _, e := range old.Entries {
		oldByPath[e.Path] = e
	}
	curByPath := make(map[string]Entry, len(cur.Entries))
	for _, e := range cur.Entries {
		curByPath[e.Path] = e
	}
	cs := &ChangeSet{origins: cur.Origins}
	for _, e := range cur.Entries {
		o, ok := oldByPath[e.Path]
		if ok && o.same(e) {
			continue
		}
		if ok && o.Type != e.Type {
			cs.Deleted = append(cs.Deleted, o)
		}
		if ok && o.Type == TypeDir && e.Type == TypeDir {
			if cs.DirsBefore == nil {
				cs.DirsBefore = map[string]Entry{}
			}
			cs.DirsBefore[e.Path] = o
		}
		cs.Changed = append(cs.Changed, e)
		cs.ChangedBytes += e.Size
	}
	for _, o := range old.Entries {
		if _, ok := curByPath[o.Path]; ok {
			continue
		}
		// Only the topmost deleted path: removing a directory removes its
		// children, also when the directory became a file or a symlink.
		if parent := path.Dir(o.Path); parent != "." {
			if p, ok := curByPath[parent]; !ok || p.Type != TypeDir {
				continue
			}
		}
		cs.Deleted = append(cs.Deleted, o)
	}
	sort.Slice(cs.Deleted, func(i, j int) bool { return cs.Deleted[i].Path < cs.Deleted[j].Path })
	return cs
}
