package decide

import (
	"encoding/json"
	"maps"
	"strings"

	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Labels a Patchfile build records on its image. They stay small (a few
// hundred bytes in all): containerd copies image labels onto containers and
// refuses any key+value over 4096 bytes (containerd#6123).
const (
	LabelPrefix = "dev.patchfile."
	// LabelBase is the digest the FROM line pins.
	LabelBase = LabelPrefix + "base"
	// LabelDeps is the dependency hash: the base, the platform, the DEPS
	// files' contents and every step before APP.
	LabelDeps = LabelPrefix + "deps"
	// LabelApp is the hash of the APP spec: destination, owner and mode.
	LabelApp = LabelPrefix + "app"
	// LabelRelease is set on patch images: the digest of the release they patch.
	LabelRelease = LabelPrefix + "release"
	// LabelFrontend is the version of the frontend that built the image
	// (a release or a patch). It is not part of the identity: a release
	// built by 1.x is patched by any later 1.y.
	LabelFrontend = LabelPrefix + "frontend"
	// LabelCarry is set on releases whose build stages carry caches
	// (CARRY): a JSON object from CarryKey to the id the release's carry
	// step is keyed by, which a later build asks the build cache for.
	LabelCarry = LabelPrefix + "carry"
	// LabelSBOM is set on images built with an SBOM (attest:sbom): the
	// generator that made it, pinned by digest, and its parameters. A
	// patch builds its SBOM from its release's only when the release's
	// came from the same generator (frontend/sbom).
	LabelSBOM = LabelPrefix + "sbom"
)

// maxSBOMLabel bounds the SBOM label read from a candidate: a pinned
// image reference and a few parameters.
const maxSBOMLabel = 1024

// SBOMGenerator is the release's LabelSBOM, or "" when it has none (or
// one too long to be one).
func (r *Release) SBOMGenerator() string {
	if r == nil || r.Image == nil {
		return ""
	}
	if v := r.Image.Config.Labels[LabelSBOM]; len(v) <= maxSBOMLabel {
		return v
	}
	return ""
}

// CarryKey names a carried cache in LabelCarry: the build stage and the
// cache mount's target.
func CarryKey(stage, target string) string { return stage + " " + target }

// maxCarryLabel bounds the carry label read from a candidate: a few
// entries of about 100 bytes each.
const maxCarryLabel = 4096

// Carried returns the caches the release carried (LabelCarry), by
// CarryKey, or nil. A label that is too long or malformed carries
// nothing: a candidate anyone could push only makes a build look for a
// cache that is not there.
func (r *Release) Carried() map[string]digest.Digest {
	if r == nil || r.Image == nil {
		return nil
	}
	v := r.Image.Config.Labels[LabelCarry]
	if v == "" || len(v) > maxCarryLabel {
		return nil
	}
	var ids map[string]digest.Digest
	if err := json.Unmarshal([]byte(v), &ids); err != nil {
		return nil
	}
	for k, id := range ids {
		if id.Validate() != nil {
			delete(ids, k)
		}
	}
	return ids
}

// Identity is what decides whether a release can be patched: equal
// identities mean equal base and dependency layers and equal APP handling.
type Identity struct {
	Base digest.Digest // the digest the FROM line pins
	Deps digest.Digest // the dependency hash
	App  digest.Digest // the APP spec hash
}

// Labels returns the identity as image labels.
func (id Identity) Labels() map[string]string {
	return map[string]string{LabelBase: id.Base.String(), LabelDeps: id.Deps.String(), LabelApp: id.App.String()}
}

// WithoutPatchfileLabels returns labels minus those a Patchfile-built base
// image brought along, which would otherwise describe the wrong image.
func WithoutPatchfileLabels(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	for k := range out {
		if strings.HasPrefix(k, LabelPrefix) {
			delete(out, k)
		}
	}
	return out
}

// PlatformID is a platform as the decision compares and names it:
// normalized, with its variant ("linux/arm64/v8").
func PlatformID(p ocispecs.Platform) string {
	return platforms.FormatAll(platforms.Normalize(p))
}
