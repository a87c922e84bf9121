// Package patchfile types and validates a parsed Patchfile: it turns the
// parser's located nodes into instructions (BuildKit's own types for the
// instructions a Dockerfile also has, FROM, DEPS, APP and PATCH of its
// own) and checks where each may stand, every error located at its line.
package patchfile
