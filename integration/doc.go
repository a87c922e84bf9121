// Package integration builds real images with a real buildkitd and registry
// (started per run by internal/stack) and asserts on what the images hold.
// It has tests only.
package integration
