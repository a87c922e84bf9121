package frontend

import (
	"testing"

	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/stretchr/testify/require"
)

// TestTouched: the paths a patch replaces or deletes, in the image, are
// what the release's SBOM is checked against; changed directories are not.
func TestTouched(t *testing.T) {
	p := &patchOutput{dest: "/app", changes: &filelist.ChangeSet{
		Changed: []filelist.Entry{{Path: "vendor", Type: filelist.TypeDir}, {Path: "vendor/x.js", Type: filelist.TypeFile}, {Path: "link", Type: filelist.TypeSymlink}},
		Deleted: []filelist.Entry{{Path: "old", Type: filelist.TypeDir}, {Path: "gone.js", Type: filelist.TypeFile}},
	}}
	require.Equal(t, []string{"/app/vendor/x.js", "/app/link", "/app/old", "/app/gone.js"}, touched(p))
	require.Equal(t, "the patch adds or changes the symlink link", symlinkChange(p.changes))
	require.Empty(t, symlinkChange(&filelist.ChangeSet{Changed: []filelist.Entry{{Path: "a", Type: filelist.TypeFile}}}))
}

func TestSBOMExtrasWarning(t *testing.T) {
	bc := &dockerui.Client{}
	bc.BuildArgs = map[string]string{"BUILDKIT_SBOM_SCAN_CONTEXT": "true"}
	require.Empty(t, sbomExtrasWarning(bc), "no SBOM asked for")
	bc.SBOM = &dockerui.SBOM{Generator: "example.com/scanner:1"}
	require.Equal(t, "BUILDKIT_SBOM_SCAN_CONTEXT: a Patchfile's SBOM describes the image only; no SBOM of the build context or stages is made", sbomExtrasWarning(bc))
	bc.BuildArgs["BUILDKIT_SBOM_SCAN_STAGE"] = "build"
	require.Contains(t, sbomExtrasWarning(bc), "BUILDKIT_SBOM_SCAN_CONTEXT and BUILDKIT_SBOM_SCAN_STAGE:")
	bc.BuildArgs = map[string]string{"BUILDKIT_SBOM_SCAN_CONTEXT": "false"}
	require.Empty(t, sbomExtrasWarning(bc))
}
