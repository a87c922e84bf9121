package llb

import "github.com/moby/buildkit/client/llb"

// waitPattern matches no path: a copy of it copies nothing.
const waitPattern = "/.patchfile-wait-matches-nothing-*"

// AddWait appends to fa (nil starts a chain) a copy action that copies
// nothing from st: the operation then depends on st, so BuildKit solves
// st before it (and a cache export with mode=max holds st's steps), while
// the operation's files stay what its other actions make. The copy's
// source pattern matches nothing, and BuildKit returns before touching
// the destination when an empty match is allowed
// (solver/llbsolver/file/backend.go).
func AddWait(fa *llb.FileAction, st llb.State) *llb.FileAction {
	return fa.Copy(st, waitPattern, "/", &llb.CopyInfo{AllowWildcard: true, AllowEmptyWildcard: true})
}
