// Package frontend is the Patchfile BuildKit frontend: Build is what the
// frontend image runs. It types and validates a parsed Patchfile
// (instructions.go), reads the build context (gateway_context.go, in a
// build step of its own image or through the gateway: tree_walk.go),
// converts the Patchfile to LLB (convert*.go), reads candidate releases
// from the registry within bounds (patch.go, manifest.go), decides between
// a patch and a full build (patch.go), makes the app layer by the
// builder's plan (layers.go, convert_patch.go), and answers --call
// subrequests and checks (subrequests.go, check.go).
package frontend
