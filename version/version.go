// Package version has one job: the frontend's version and revision, set at
// build time with -ldflags -X (the Dockerfile's VERSION and REVISION build
// args, or internal/stack for the test stack's image):
//
//	-X github.com/patchfile/patchfile/version.Version=1.2.3
//	-X github.com/patchfile/patchfile/version.Revision=<git commit>
//
// A plain `go build` leaves "dev" and no revision. The frontend image carries
// the same two values as its org.opencontainers.image.version and
// org.opencontainers.image.revision labels.
package version

var (
	// Version is the release version ("1.2.3"), or "dev" when not set.
	Version = "dev"
	// Revision is the git commit the binary was built from, or "" when not set.
	Revision = ""
)

// String is the line `patchfile-frontend version` prints:
// "patchfile-frontend <version> <revision>" (no trailing space without a
// revision).
func String() string {
	if Revision == "" {
		return "patchfile-frontend " + Version
	}
	return "patchfile-frontend " + Version + " " + Revision
}
