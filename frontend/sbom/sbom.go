package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// PredicateSPDX is the in-toto predicate type of an SPDX document, as
// BuildKit's scanners write it and its exporter stores it.
const PredicateSPDX = "https://spdx.dev/Document"

// MaxSize bounds an SBOM the frontend reads (the release's, the patch
// scan's): an SBOM of an image of tens of thousands of packages is a few
// tens of MiB.
const MaxSize = 64 << 20

// Document is an SPDX JSON document, kept field by field as the generator
// wrote it: the frontend adds and compares elements, it never rewrites
// what it does not understand.
type Document struct {
	fields map[string]json.RawMessage
}

// elementLists are the document's arrays of elements with an SPDXID.
var elementLists = []string{"packages", "files", "snippets"}

// ReadStatement reads an in-toto statement of an SPDX document: the
// form a scanner writes into its bundle and the registry stores as the
// attestation's layer.
func ReadStatement(dt []byte) (*Document, error) {
	if len(dt) > MaxSize {
		return nil, fmt.Errorf("the SBOM is %d bytes, over the %d the frontend reads", len(dt), MaxSize)
	}
	var st struct {
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(dt, &st); err != nil {
		return nil, fmt.Errorf("not an in-toto statement: %w", err)
	}
	if st.PredicateType != PredicateSPDX {
		return nil, fmt.Errorf("the statement's predicate is %q, not an SPDX document", st.PredicateType)
	}
	return ReadDocument(st.Predicate)
}

// ReadDocument reads an SPDX JSON document.
func ReadDocument(dt []byte) (*Document, error) {
	d := &Document{}
	if err := json.Unmarshal(dt, &d.fields); err != nil || d.fields == nil {
		return nil, fmt.Errorf("not an SPDX JSON document: %v", err)
	}
	if _, ok := d.fields["spdxVersion"]; !ok {
		return nil, fmt.Errorf("not an SPDX JSON document: no spdxVersion")
	}
	for _, name := range append(slices.Clone(elementLists), "relationships") {
		if _, err := d.list(name); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Statement is the document as an in-toto statement with no subject: the
// exporter names the image it describes.
func (d *Document) Statement() ([]byte, error) {
	return json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": PredicateSPDX,
		"subject":       []any{},
		"predicate":     d.fields,
	})
}

func (d *Document) list(name string) ([]json.RawMessage, error) {
	raw, ok := d.fields[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var l []json.RawMessage
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("the SPDX document's %s is not a list: %v", name, err)
	}
	return l, nil
}

// Packages are the document's packages as name@version, sorted: what an
// SBOM lists, for comparing two of them.
func (d *Document) Packages() []string {
	l, _ := d.list("packages")
	var out []string
	for _, raw := range l {
		var p struct {
			Name    string `json:"name"`
			Version string `json:"versionInfo"`
		}
		if json.Unmarshal(raw, &p) == nil {
			out = append(out, p.Name+"@"+p.Version)
		}
	}
	slices.Sort(out)
	return out
}

// Unplaced is the number of files the document lists without a comment.
// BuildKit's exporter looks each of those up in the image's layers, top
// first, to comment it with the layer that holds it: a release file it
// must look up makes it read (pull) the release's layers.
func (d *Document) Unplaced() int {
	n := 0
	count := func(raw json.RawMessage) {
		var f struct {
			Comment string `json:"comment"`
		}
		if json.Unmarshal(raw, &f) == nil && f.Comment == "" {
			n++
		}
	}
	files, _ := d.list("files")
	for _, f := range files {
		count(f)
	}
	pkgs, _ := d.list("packages")
	for _, p := range pkgs {
		var inline struct {
			Files []json.RawMessage `json:"files"`
		}
		if json.Unmarshal(p, &inline) == nil {
			for _, f := range inline.Files {
				count(f)
			}
		}
	}
	return n
}

// Names returns the first of paths (slash-separated, relative to the
// image's root) that the document names anywhere, in any string: a
// file's name, a package's evidence, a comment. A path is named when it
// appears followed by the end of the string or a character that ends a
// path name ("/", a quote, a blank): a directory is named by every path
// below it. What comes before is not looked at, so a longer path that
// ends with it counts too: Names may find a path the document does not
// really name, never miss one it does.
func (d *Document) Names(paths []string) (string, bool) {
	var strs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			strs = append(strs, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				strs = append(strs, k)
				walk(e)
			}
		}
	}
	for _, raw := range d.fields {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			walk(v)
		}
	}
	for _, p := range paths {
		p = strings.Trim(p, "/")
		if p == "" {
			return "/", true
		}
		for _, s := range strs {
			if namesPath(s, p) {
				return p, true
			}
		}
	}
	return "", false
}

// namesPath reports whether s holds p followed by the end of s or by a
// character no file name of a scanner's output would continue with.
func namesPath(s, p string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], p)
		if j < 0 {
			return false
		}
		end := i + j + len(p)
		if end == len(s) || !continuesName(s[end]) {
			return true
		}
		i += j + 1
	}
}

func continuesName(c byte) bool {
	return c != '/' && c != '"' && c != '\'' && c != ' ' && c != '\t' && c != '\n' && c != ',' && c != ';' && c != ')' && c != ']' && c != '>'
}

// Patched is the SBOM of a patched image: the release's document with the
// elements a scan of the patch's files found added, under the scan's own
// header (its creation time, tools and namespace). The caller has made
// sure the patch touches nothing the release's document names (Names),
// so nothing of it goes away.
//
// Elements are matched by SPDXID: the same id in both with different
// contents is an error (the generator's ids do not identify what they
// name, and the union would be wrong).
func Patched(release, scan *Document) (*Document, error) {
	out := &Document{fields: map[string]json.RawMessage{}}
	for k, v := range scan.fields {
		out.fields[k] = v
	}
	for _, name := range elementLists {
		merged, err := union(release, scan, name, func(raw json.RawMessage) (string, error) {
			var e struct {
				ID string `json:"SPDXID"`
			}
			if err := json.Unmarshal(raw, &e); err != nil || e.ID == "" {
				return "", fmt.Errorf("an element of %s has no SPDXID", name)
			}
			return e.ID, nil
		})
		if err != nil {
			return nil, err
		}
		out.set(name, merged)
	}
	// Relationships and the rest are values: equal ones are one.
	for _, name := range []string{"relationships", "hasExtractedLicensingInfos", "documentDescribes"} {
		merged, err := union(release, scan, name, func(raw json.RawMessage) (string, error) {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return "", err
			}
			key, err := json.Marshal(v) // maps marshal with sorted keys
			return string(key), err
		})
		if err != nil {
			return nil, err
		}
		out.set(name, merged)
	}
	return out, nil
}

func (d *Document) set(name string, l []json.RawMessage) {
	if l == nil {
		delete(d.fields, name)
		return
	}
	raw, _ := json.Marshal(l)
	d.fields[name] = raw
}

// union is a's list name then b's, with b's elements whose key a has
// left out; an element with a's key and other contents is an error.
func union(a, b *Document, name string, key func(json.RawMessage) (string, error)) ([]json.RawMessage, error) {
	la, err := a.list(name)
	if err != nil {
		return nil, err
	}
	lb, err := b.list(name)
	if err != nil {
		return nil, err
	}
	if la == nil && lb == nil {
		return nil, nil
	}
	seen := map[string]json.RawMessage{}
	out := make([]json.RawMessage, 0, len(la)+len(lb))
	for _, l := range [][]json.RawMessage{la, lb} {
		for _, e := range l {
			k, err := key(e)
			if err != nil {
				return nil, err
			}
			if prev, ok := seen[k]; ok {
				if !sameJSON(prev, e) {
					return nil, fmt.Errorf("the release's SBOM and the patch's scan both have %s %s, with different contents", name, k)
				}
				continue
			}
			seen[k] = e
			out = append(out, e)
		}
	}
	return out, nil
}

func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(a, b)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}
