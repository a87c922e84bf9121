package llb

import (
	"github.com/moby/buildkit/client/llb"
)

// AddRepinDir appends to fa (nil starts a chain) a copy action that sets an
// existing directory's mtime to PinnedTime and changes nothing else.
// Creating or removing an entry bumps its parent's mtime to the build time;
// a patch layer carries every parent of a change, so without this each
// patch would differ from a full build and from itself on another builder.
// (A contents-only copy of an empty tree onto an existing directory only
// sets its time: fsutil copy's copyFileTimestamp.)
func AddRepinDir(fa *llb.FileAction, dir string) *llb.FileAction {
	return fa.Copy(llb.Scratch(), "/", dir, repinInfo())
}

func repinInfo() *llb.CopyInfo {
	info := PinnedCopy()
	info.CopyDirContentsOnly = true
	return info
}

// CopyDirOnly returns copy info that copies a directory itself (mode, owner,
// time) without any of its children: fsutil's copy creates the directory
// with its source metadata and skips every child by the exclude pattern.
// Unlike Mkdir, it keeps setgid and sticky bits and ignores the umask.
func CopyDirOnly() *llb.CopyInfo {
	info := PinnedCopy()
	info.ExcludePatterns = []string{"*"}
	return info
}
