// Package llb holds LLB helpers that know nothing of Patchfiles.
package llb

import (
	"time"

	"github.com/moby/buildkit/client/llb"
)

// PinnedTime is the modification time every copied file gets. BuildKit's
// overlay differ compares file contents only when sizes and mtime seconds
// match and both nanosecond parts are zero (util/overlay sameDirent); with
// build-time mtimes every file would look changed. It is a fixed date, not
// SOURCE_DATE_EPOCH, so that a release and its patches agree even when CI
// passes a different epoch each time; 2000-01-01 keeps zip-based tools,
// which cannot store dates before 1980, working.
var PinnedTime = time.Unix(946684800, 0).UTC()

// PinnedCopy returns a CopyInfo that gives every copied entry PinnedTime.
// Options on the returned value may be set by the caller.
func PinnedCopy() *llb.CopyInfo {
	t := PinnedTime
	return &llb.CopyInfo{CreatedTime: &t}
}
