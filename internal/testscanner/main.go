// Command testscanner is the SBOM generator of the tests (no public
// registry serves BuildKit's own): it speaks BuildKit's scanner protocol
// and lists real packages, so that the tests check what an SBOM says, not
// only that there is one.
//
// BuildKit runs it with the tree to scan at $BUILDKIT_SCAN_SOURCE,
// optional extra trees in the directories under
// $BUILDKIT_SCAN_SOURCE_EXTRAS, and an empty $BUILDKIT_SCAN_DESTINATION,
// where it writes one in-toto statement of an SPDX 2.3 document per tree:
// sbom.spdx.json for the core, <extra's name>.spdx.json for each extra.
//
// A package is a package.json with a name and a version (npm's installed
// packages, a vendored library, the app's own manifest), as the common
// scanners read them. Each package has its manifest as a file, with the
// relationship that the package contains it. Ids are derived from the
// contents (path, name, version), so two scans of the same files agree,
// as the common scanners' do; the namespace and time are each run's own.
package main

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testscanner:", err)
		os.Exit(1)
	}
}

func run() error {
	src, dst := os.Getenv("BUILDKIT_SCAN_SOURCE"), os.Getenv("BUILDKIT_SCAN_DESTINATION")
	if src == "" || dst == "" {
		return fmt.Errorf("BUILDKIT_SCAN_SOURCE and BUILDKIT_SCAN_DESTINATION must be set")
	}
	if err := scanTo(src, filepath.Join(dst, "sbom.spdx.json")); err != nil {
		return err
	}
	extras := os.Getenv("BUILDKIT_SCAN_SOURCE_EXTRAS")
	if extras == "" {
		return nil
	}
	entries, err := os.ReadDir(extras)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := scanTo(filepath.Join(extras, e.Name()), filepath.Join(dst, e.Name()+".spdx.json")); err != nil {
			return err
		}
	}
	return nil
}

type pkg struct {
	Name             string   `json:"name"`
	SPDXID           string   `json:"SPDXID"`
	VersionInfo      string   `json:"versionInfo"`
	DownloadLocation string   `json:"downloadLocation"`
	FilesAnalyzed    bool     `json:"filesAnalyzed"`
	SourceInfo       string   `json:"sourceInfo"`
	ExternalRefs     []extRef `json:"externalRefs"`
}

type extRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type file struct {
	FileName  string     `json:"fileName"`
	SPDXID    string     `json:"SPDXID"`
	Checksums []checksum `json:"checksums"`
}

type checksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type relationship struct {
	Element string `json:"spdxElementId"`
	Related string `json:"relatedSpdxElement"`
	Type    string `json:"relationshipType"`
}

func scanTo(root, out string) error {
	pkgs := []pkg{}
	files := []file{}
	rels := []relationship{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 || d.Name() != "package.json" || d.IsDir() {
			return err
		}
		dt, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var m struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		}
		if json.Unmarshal(dt, &m) != nil || m.Name == "" || m.Version == "" {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := path.Join("/", filepath.ToSlash(rel))
		sum1 := sha1.Sum(dt)
		f := file{FileName: name, SPDXID: "SPDXRef-File-" + id(name, hex.EncodeToString(sum1[:])),
			Checksums: []checksum{{"SHA1", hex.EncodeToString(sum1[:])}}}
		pk := pkg{Name: m.Name, SPDXID: "SPDXRef-Package-npm-" + id(m.Name, m.Version, name), VersionInfo: m.Version,
			DownloadLocation: "NOASSERTION", SourceInfo: "acquired package info from package.json: " + name,
			ExternalRefs: []extRef{{"PACKAGE-MANAGER", "purl", "pkg:npm/" + m.Name + "@" + m.Version}}}
		pkgs, files = append(pkgs, pk), append(files, f)
		rels = append(rels, relationship{pk.SPDXID, f.SPDXID, "CONTAINS"}, relationship{"SPDXRef-DOCUMENT", pk.SPDXID, "DESCRIBES"})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].SPDXID < pkgs[j].SPDXID })
	sort.Slice(files, func(i, j int) bool { return files[i].SPDXID < files[j].SPDXID })
	sort.Slice(rels, func(i, j int) bool { return rels[i].Element+rels[i].Related < rels[j].Element+rels[j].Related })
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	doc := map[string]any{
		"spdxVersion":       "SPDX-2.3",
		"dataLicense":       "CC0-1.0",
		"SPDXID":            "SPDXRef-DOCUMENT",
		"name":              "sbom",
		"documentNamespace": "https://patchfile.dev/testscanner/" + hex.EncodeToString(nonce),
		"creationInfo": map[string]any{
			"created":  time.Now().UTC().Format(time.RFC3339),
			"creators": []string{"Tool: patchfile-testscanner"},
		},
		"packages":      pkgs,
		"files":         files,
		"relationships": rels,
	}
	dt, err := json.MarshalIndent(map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": "https://spdx.dev/Document",
		"subject":       []any{},
		"predicate":     doc,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, dt, 0o644)
}

// id is an SPDX id part made of parts' contents.
func id(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
