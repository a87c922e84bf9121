// Package carry copies a compiler's cache between a build step's cache
// mount and a tree of its own, inside the builder: the frontend binary's
// CopyCommand and FillCommand, which the steps that carry a build stage's
// cache from a release to the builds that follow it run (CARRY in a
// Patchfile; the LLB is frontend/convert's). Pure Go.
package carry
