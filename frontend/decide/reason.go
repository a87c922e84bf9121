package decide

import (
	"fmt"
	"strings"
)

// Kind is why a build is not a patch of a candidate (or of any).
type Kind int

// The kinds of reasons, in the order a build meets them.
const (
	// PatchDisabled: --build-arg PATCH= (empty) turned patching off.
	PatchDisabled Kind = iota + 1
	// NoCandidate: the Patchfile has no PATCH and no PATCH build arg.
	NoCandidate
	// AppUnpatchable: the APP instruction's form cannot be patched.
	AppUnpatchable

	// What a candidate can be before its identity is compared.

	// NotYetReleased: nothing at the candidate's reference yet.
	NotYetReleased
	NotAReference
	// ConfigNotRead: the candidate's config is over a bound or not JSON.
	ConfigNotRead
	Unreachable
	NotBuiltByPatchfile
	MalformedReleaseLabel
	// ReleaseUnreachable and ReleaseNotPatchfile are about the release a
	// patch candidate points to.
	ReleaseUnreachable
	// ReleaseGone: the registry has no release at the digest a patch
	// names (a clean-up of untagged images deleted it).
	ReleaseGone
	ReleaseNotPatchfile

	// A release that is not this build's.

	OtherPlatform
	// NoPlatformImage: the candidate is an index without this platform.
	NoPlatformImage
	BaseChanged
	DepsChanged
	AppSpecChanged
	NoFileList

	// A release that matches, but a new release is better.

	// NewReleaseAsked: PATCH_MAX_SHARE=0.
	NewReleaseAsked
	ChangeTooLarge
)

// reasons are the kinds' messages (fmt formats of the arguments Because
// is given) and whether the build warns about them: a candidate that is
// there but cannot be used is a problem the user should see; a first
// release, a changed dependency stage or a too big change are not.
//
// releases marks the reasons of a full build that is a release by intent
// (IsRelease): the first one, PATCH_MAX_SHARE=0, patching turned off. A
// full build for any other reason (a changed dependency stage, a change too
// large to patch) is a deploy that later deploys will not patch: they
// patch the release.
//
// unreachable marks the reasons that say a registry could not be read: by
// default (OnUnreachableFail) such a build stops rather than turn a patch
// into a full build (see Decision.Stop).
var reasons = map[Kind]struct {
	format      string
	warns       bool
	releases    bool
	unreachable bool
}{
	PatchDisabled:  {"PATCH disabled by --build-arg PATCH=", false, true, false},
	NoCandidate:    {"no PATCH candidate (add PATCH <release image> to patch deploys)", false, true, false},
	AppUnpatchable: {"%s", false, false, false},

	NotYetReleased:        {"no release at %s yet", false, true, false},
	NotAReference:         {"PATCH %s is not an image reference", true, false, false},
	ConfigNotRead:         {"candidate %s has an image config that is not read (%v)", true, false, false},
	Unreachable:           {"candidate %s unreachable (%v)", true, false, true},
	NotBuiltByPatchfile:   {"candidate %s was not built by Patchfile", true, false, false},
	MalformedReleaseLabel: {"candidate %s has a malformed " + LabelRelease + " label", true, false, false},
	ReleaseUnreachable:    {"release %s of candidate %s unreachable (%v)", true, false, true},
	ReleaseGone:           {"release %s of candidate %s is gone from the registry (deleted: a new release is built)", true, true, false},
	ReleaseNotPatchfile:   {"release %s of candidate %s is not a Patchfile release", true, false, false},

	OtherPlatform:   {"release %s is for %s, not %s", false, false, false},
	NoPlatformImage: {"candidate %s has no %s image", false, false, false},
	BaseChanged:     {"base image changed since release %s (it has %s, FROM pins %s)", false, false, false},
	DepsChanged:     {"dependencies changed since release %s (a DEPS file or a step before APP differs)", false, false, false},
	AppSpecChanged:  {"APP destination, --chown or --chmod changed since release %s", false, false, false},
	NoFileList:      {"release %s has no usable file list (%s)", false, false, false},

	NewReleaseAsked: {KeyPatchMaxShare + "=0: a new release instead of patching release %s", false, true, false},
	ChangeTooLarge:  {"the change is %d%% of the app tree's bytes (more than " + KeyPatchMaxShare + "=%d%%): a new release is smaller to ship than patching release %s", false, false, false},
}

// Reason is one reason a build is not a patch, with its message.
type Reason struct {
	Kind    Kind
	Message string
}

// Because is the reason of kind k, its message formatted with args.
func Because(k Kind, args ...any) *Reason {
	return &Reason{Kind: k, Message: fmt.Sprintf(reasons[k].format, args...)}
}

// Warns tells whether the build warns about this reason.
func (r *Reason) Warns() bool { return reasons[r.Kind].warns }

func (r *Reason) String() string { return r.Message }

// The progress lines a decision shows start with these (tests look for them).
const (
	// FullBuildPrefix starts the line of a full build, before its reasons.
	FullBuildPrefix = "full build: "
	// PatchPrefix starts the line of a patch, before the release digest.
	PatchPrefix = "patch of release "
)

// maxReasonsShown is how many candidates' reasons a progress line names:
// a long PATCH list must not make a line of thousands of characters.
const maxReasonsShown = 3

// joinReasons is the reasons as a progress line names them: the first
// few, then how many more.
func joinReasons(rs []*Reason) string {
	msgs := make([]string, 0, len(rs))
	for _, r := range rs {
		msgs = append(msgs, r.Message)
	}
	if len(msgs) > maxReasonsShown {
		return fmt.Sprintf("%s; and %d more candidates", strings.Join(msgs[:maxReasonsShown], "; "), len(msgs)-maxReasonsShown)
	}
	return strings.Join(msgs, "; ")
}
