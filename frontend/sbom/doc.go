// Package sbom makes the SBOM of a patch from its release's: it reads
// SPDX documents as BuildKit's scanners write them (in-toto statements),
// tells whether a patch touches anything a release's document names, and
// joins the release's document with a scan of the patch's own files.
//
// A patch's SBOM must list what a scan of the whole patched image would
// (docs/design.md, "SBOM of a patch"): the release's packages, plus what
// the patch's files hold, minus what the files it replaces or deletes
// held. The frontend takes this path only when the release's SBOM names
// none of the paths the patch replaces or deletes, so nothing goes away,
// and scans the whole image otherwise. Pure Go: no I/O.
package sbom
