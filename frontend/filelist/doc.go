// Package filelist is the app file list a release carries in its image
// config: the app tree as it lands in the image (path, type, mode, owner,
// size, content hash, link target), its compact encoding and its bounded
// decoder (a candidate's config comes from any registry), and the change
// set between two lists that a patch layer ships. Pure Go: it knows
// nothing of BuildKit.
package filelist
