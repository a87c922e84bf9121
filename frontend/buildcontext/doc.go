// Package buildcontext describes the build context as the frontend sees
// it, a sorted list of entries (File: path, mode, owner, link target, size
// and SHA-256), and makes that list inside the builder: Walk lists and
// hashes a directory, and WriteList/ReadList carry the list out of the
// build step that runs it (the frontend binary's HashCommand). Pure Go.
package buildcontext
