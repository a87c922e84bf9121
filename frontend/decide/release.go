package decide

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/pkg/errors"
)

// Release is a release image that a build may patch, as its config says.
type Release struct {
	// Ref is the release pinned by its manifest digest.
	Ref string
	// Digest is what the release reference resolved to: its manifest, or
	// its index for a multi-platform release.
	Digest digest.Digest
	Image  *dockerspec.DockerOCIImage
	// Files is the release's app file list, decoded by decodeFiles only
	// for a release that matches the build: a candidate anyone could have
	// pushed is not decoded for nothing.
	Files *filelist.List
	// filesProblem says why Files is nil after decodeFiles.
	filesProblem string
	// encodedFiles is the config's file list field; nil when it has none.
	encodedFiles *string
	// HasBuildCache is set when the config carries BuildKit's inline
	// cache (the release was built with --cache-to type=inline): a build
	// that imports it finds the release's dependency stage in it, and on
	// a cold builder its layers stay in the registry.
	HasBuildCache bool
}

// CacheRef is the release pinned by digest when its config carries an
// inline build cache to import, or "" (also for no release).
func (r *Release) CacheRef() string {
	if r == nil || !r.HasBuildCache {
		return ""
	}
	return r.Ref
}

// PatchOf is, for a patch image, the digest of the release it patches
// (LabelRelease): a build patches that release, never a patch on a patch.
// ok is false for a release; a malformed label is a reason.
func (r *Release) PatchOf(candidate string) (release digest.Digest, ok bool, why *Reason) {
	from := r.Image.Config.Labels[LabelRelease]
	if from == "" {
		return "", false, nil
	}
	dgst, err := digest.Parse(from)
	if err != nil {
		return "", false, Because(MalformedReleaseLabel, candidate)
	}
	return dgst, true, nil
}

// IsPatch tells whether the image is a patch (it has LabelRelease).
func (r *Release) IsPatch() bool {
	return r.Image.Config.Labels[LabelRelease] != ""
}

// BuiltByPatchfile tells whether the image has the labels of a Patchfile
// build (a release or a patch).
func (r *Release) BuiltByPatchfile() bool {
	return r.Image.Config.Labels[LabelDeps] != ""
}

// decodeFiles decodes the release's file list, once. A malformed or
// oversized list leaves Files nil, and the release is not patched.
func (r *Release) decodeFiles() {
	if r.Files != nil || r.filesProblem != "" {
		return
	}
	if r.encodedFiles == nil {
		r.filesProblem = "its config has no " + filelist.ConfigField + " field"
		return
	}
	files, err := filelist.Decode(*r.encodedFiles)
	if err != nil {
		r.filesProblem = err.Error()
		return
	}
	r.Files = files
}

// ParseConfig reads a candidate's image config, resolved from ref to dgst
// (its manifest or index digest), within bounds: the file list stays
// encoded until the candidate matches the build. A config over a bound or
// not an image config is a BadConfigError.
func ParseConfig(ref string, dgst digest.Digest, dt []byte) (*Release, error) {
	if len(dt) > maxReleaseConfig {
		return nil, badConfig("it is %d bytes, more than the %d MiB a release's can be", len(dt), maxReleaseConfig>>20)
	}
	if jsonValues(dt) > maxReleaseConfigValues {
		return nil, badConfig("it holds more than %d JSON values", maxReleaseConfigValues)
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(dt, &img); err != nil {
		return nil, badConfig("%v", err)
	}
	var extra struct {
		Files      *string   `json:"dev.patchfile.files"`
		BuildCache jsonIsSet `json:"moby.buildkit.cache.v0"`
	}
	_ = json.Unmarshal(dt, &extra)
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, err
	}
	return &Release{
		Ref:           reference.TrimNamed(named).String() + "@" + dgst.String(),
		Digest:        dgst,
		Image:         &img,
		HasBuildCache: bool(extra.BuildCache),
		encodedFiles:  extra.Files,
	}, nil
}

// maxReleaseConfig bounds a candidate's image config, read before anything
// in it is decoded. A config reaches the frontend in one gateway message,
// which gRPC already bounds to 16 MiB (manifests and indexes are bounded
// to 4 MiB by containerd's resolver, inline build cache to 1 MiB by
// BuildKit's importer); this says so where the frontend relies on it. A
// release of 500,000 files (the file list's bound) has a config of about
// 23 MiB, so apps that large have no usable release: BENCHMARKS.md gives
// the list's size per file.
const maxReleaseConfig = 16 << 20

// BadConfigError is a candidate's image config that is not decoded: over
// a bound, or not an image config.
type BadConfigError struct{ msg string }

func (e BadConfigError) Error() string { return e.msg }

func badConfig(format string, args ...any) error {
	return BadConfigError{msg: fmt.Sprintf(format, args...)}
}

// IsBadConfig tells whether err is a BadConfigError.
func IsBadConfig(err error) bool {
	var bad BadConfigError
	return errors.As(err, &bad)
}

// maxReleaseConfigValues bounds the JSON values (array elements, object
// members) of a candidate's config, counted before it is decoded: a few
// bytes of JSON can decode to far more memory ("history":[{},{},...] costs
// about 80 bytes per 3 bytes, 15 MiB of it 380 MiB). Real configs hold
// hundreds (history entries, layers, environment, labels); the file list
// and the inline cache are single strings.
const maxReleaseConfigValues = 100_000

// jsonValues counts the array elements and object members of a JSON text,
// an upper bound found without decoding it: the commas, opening brackets
// and opening braces outside strings.
func jsonValues(dt []byte) int {
	n, inString, escaped := 0, false, false
	for _, c := range dt {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ',' || c == '[' || c == '{':
			n++
		}
	}
	return n
}

// jsonIsSet records whether a JSON field holds anything but null, without
// keeping its bytes (the inline build cache can be large).
type jsonIsSet bool

func (s *jsonIsSet) UnmarshalJSON(dt []byte) error {
	*s = string(dt) != "null"
	return nil
}

// IsNotFound tells whether err, from resolving ref through the builder,
// says the registry has nothing at ref (a tag not pushed yet, a repository
// not created). The gateway carries the builder's error as text only;
// containerd's resolver words it "<ref>: not found", on standalone BuildKit
// and Docker Engine alike.
func IsNotFound(err error, ref string) bool {
	return err != nil && strings.Contains(err.Error(), ref+": not found") && !IsNoPlatform(err)
}

// IsNoPlatform tells whether resolving an image failed because it is an
// index without the platform asked for, as containerd's resolver words it.
func IsNoPlatform(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no match for platform in manifest")
}
