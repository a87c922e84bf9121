// Package frontend is the Patchfile BuildKit frontend's gateway layer:
// Build is what the frontend image runs. It reads the Patchfile and the
// build context through BuildKit's gateway (the context hashed in a build
// step of the frontend's own image, or read file by file), reads the PATCH
// candidates' configs from the registry through the builder, and hands
// them to the packages below: patchfile types the instructions, convert
// makes the LLB, decide picks a patch or a full build. It also answers
// --call subrequests (outline, targets, check) and runs the checks.
package frontend
