// Package convert turns a typed Patchfile into the LLB and image config of
// a build: the pinned base, the dependency stage and its hash (the
// build's Identity), the app tree read from the build context with its
// file list, and, handed a decision's change set, the patch layer on a
// release. How app files become layers is a LayerPlan (Merge/Diff, or
// file operations only where a builder lacks MergeOp/DiffOp), chosen from
// the builder's capabilities.
package convert
