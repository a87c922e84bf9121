package frontend

import (
	"maps"
	"strings"
)

// Labels a Patchfile build records on its image. They stay small (a few
// hundred bytes in all): containerd copies image labels onto containers and
// refuses any key+value over 4096 bytes (containerd#6123).
const (
	labelPrefix = "dev.patchfile."
	// LabelBase is the digest the FROM line pins.
	LabelBase = labelPrefix + "base"
	// LabelDeps is the dependency hash (see depsHasher).
	LabelDeps = labelPrefix + "deps"
	// LabelApp is the hash of the APP spec: destination, owner and mode.
	LabelApp = labelPrefix + "app"
	// LabelRelease is set on patch images: the digest of the release they patch.
	LabelRelease = labelPrefix + "release"
)

// withoutPatchfileLabels returns labels minus those a Patchfile-built base
// image brought along, which would otherwise describe the wrong image.
func withoutPatchfileLabels(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	for k := range out {
		if strings.HasPrefix(k, labelPrefix) {
			delete(out, k)
		}
	}
	return out
}
