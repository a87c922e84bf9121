package frontend

import (
	"bytes"
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

// configField is the top-level image config field that holds a release's
// file list. It is not a label: labels are copied onto every container and
// must stay small, while a file list grows with the app. Exporters keep
// unknown config fields, and patches do not copy it: they point to their
// release with LabelRelease instead.
const configField = "dev.patchfile.files"

// manifestVersion is bumped whenever the encoding changes; an unknown
// version makes a release unusable as a patch base (a full build follows).
const manifestVersion = 1

// EntryType is the kind of a file list entry.
type EntryType byte

// Entry types, as in tar.
const (
	TypeFile    EntryType = 'f'
	TypeDir     EntryType = 'd'
	TypeSymlink EntryType = 'l'
)

// ManifestEntry is one entry of the app tree as it lands in the image.
type ManifestEntry struct {
	Path     string // relative to the APP destination, slash-separated
	Type     EntryType
	Mode     os.FileMode // permission and setuid/setgid/sticky bits
	UID, GID uint32
	Size     int64
	Digest   [sha256.Size]byte // content hash of a file
	Linkname string            // symlink target
}

// same tells whether two entries land identically.
func (e ManifestEntry) same(o ManifestEntry) bool {
	return e.Type == o.Type && e.Mode == o.Mode && e.UID == o.UID && e.GID == o.GID &&
		e.Size == o.Size && e.Digest == o.Digest && e.Linkname == o.Linkname
}

// Manifest is the app tree of an image, sorted by path.
type Manifest struct {
	Entries []ManifestEntry
}

// TotalSize is the sum of file sizes.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for _, e := range m.Entries {
		n += e.Size
	}
	return n
}

// Encode returns the compact form stored in the release config: gzip of
// entries with shared path prefixes elided, in base64.
func (m *Manifest) Encode() (string, error) {
	var raw bytes.Buffer
	raw.WriteByte(manifestVersion)
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
	return base64.StdEncoding.EncodeToString(out.Bytes()), nil
}

// maxManifestSize bounds a decoded file list (about 20 million entries'
// worth), so a forged config cannot exhaust the frontend's memory.
const maxManifestSize = 1 << 30

// DecodeManifest parses what Encode wrote. Any malformation is an error:
// a release whose list cannot be trusted is never patched.
func DecodeManifest(s string) (*Manifest, error) {
	zdata, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.Wrap(err, "file list is not base64")
	}
	zr, err := gzip.NewReader(bytes.NewReader(zdata))
	if err != nil {
		return nil, errors.Wrap(err, "file list is not gzip")
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxManifestSize+1))
	if err != nil {
		return nil, errors.Wrap(err, "file list is corrupt")
	}
	if len(raw) > maxManifestSize {
		return nil, errors.New("file list is too large")
	}
	r := bytes.NewReader(raw)
	v, err := r.ReadByte()
	if err != nil || v != manifestVersion {
		return nil, errors.Errorf("file list version %d is not supported", v)
	}
	m := &Manifest{}
	prev := ""
	uvarint := func() uint64 {
		if err != nil {
			return 0
		}
		var x uint64
		x, err = binary.ReadUvarint(r)
		return x
	}
	readString := func(n uint64) string {
		if err != nil {
			return ""
		}
		if n > uint64(r.Len()) {
			err = io.ErrUnexpectedEOF
			return ""
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b)
	}
	for r.Len() > 0 && err == nil {
		common := uvarint()
		suffix := readString(uvarint())
		if err != nil || common > uint64(len(prev)) {
			return nil, errors.New("file list is corrupt: bad path")
		}
		var e ManifestEntry
		e.Path = prev[:common] + suffix
		t, terr := r.ReadByte()
		if terr != nil {
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
			e.Linkname = readString(uvarint())
		case TypeDir:
		default:
			return nil, errors.Errorf("file list is corrupt: entry type %q", t)
		}
		if err != nil {
			return nil, errors.Wrap(err, "file list is corrupt")
		}
		if !validManifestPath(e.Path) || (len(m.Entries) > 0 && e.Path <= prev) {
			return nil, errors.Errorf("file list is corrupt: path %q", e.Path)
		}
		m.Entries = append(m.Entries, e)
		prev = e.Path
	}
	return m, nil
}

// validManifestPath accepts clean relative paths only, so a forged list
// cannot make a patch touch anything outside the APP destination.
func validManifestPath(p string) bool {
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
	Changed []ManifestEntry
	// Deleted are the topmost paths gone from the tree, and paths whose type
	// changed (removed before their new entry is added).
	Deleted []ManifestEntry
	// ChangedBytes is the size of the changed files.
	ChangedBytes int64
}

// Empty tells whether the trees are equal.
func (c *ChangeSet) Empty() bool { return len(c.Changed) == 0 && len(c.Deleted) == 0 }

// Changes compares the release's tree (old) with the new one.
func Changes(old, cur *Manifest) *ChangeSet {
	oldByPath := make(map[string]ManifestEntry, len(old.Entries))
	for _, e := range old.Entries {
		oldByPath[e.Path] = e
	}
	curByPath := make(map[string]ManifestEntry, len(cur.Entries))
	for _, e := range cur.Entries {
		curByPath[e.Path] = e
	}
	cs := &ChangeSet{}
	for _, e := range cur.Entries {
		o, ok := oldByPath[e.Path]
		if ok && o.same(e) {
			continue
		}
		if ok && o.Type != e.Type {
			cs.Deleted = append(cs.Deleted, o)
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
