package stack

import (
	"os"
	"strings"
	"testing"
)

// TestDockerfileBuildsAsTheStack checks that the Dockerfile's build stage
// compiles the frontend with the flags BuildFrontendImage uses: the test
// stack cannot pull a Go image, so it compiles the binary itself, and the
// image the tests and the benchmark measure must be the one users build.
func TestDockerfileBuildsAsTheStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real components: skipped with -short")
	}
	text, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// The RUN that compiles, its continuation lines joined.
	run := strings.ReplaceAll(string(text), "\\\n", " ")
	var build string
	for _, line := range strings.Split(run, "\n") {
		if strings.Contains(line, "go build") {
			build = strings.Join(strings.Fields(line), " ")
		}
	}
	if build == "" {
		t.Fatal("the Dockerfile has no go build")
	}
	for _, want := range append([]string{"-trimpath", `-ldflags "-s -w`}, FrontendGCFlags...) {
		if !strings.Contains(build, want+" ") {
			t.Errorf("the Dockerfile's go build lacks %s: %s", want, build)
		}
	}
}

// TestReleaseWorkflowCompressesAsTheStack: the release workflow pushes
// the frontend image with the layer compression the test stack builds it
// with (FrontendImageCompression), so the image the benchmark measures
// every cold builder pulling is the one users pull.
func TestReleaseWorkflowCompressesAsTheStack(t *testing.T) {
	text, err := os.ReadFile("../../.github/workflows/release.yml")
	if err != nil {
		t.Fatal(err)
	}
	var outputs string
	for _, line := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "outputs:"); ok {
			outputs = strings.TrimSpace(v)
		}
	}
	attrs := map[string]string{}
	for _, kv := range strings.Split(outputs, ",") {
		k, v, _ := strings.Cut(kv, "=")
		attrs[k] = v
	}
	if attrs["type"] != "registry" {
		t.Errorf("the release workflow's outputs: %q pushes no image (type=registry)", outputs)
	}
	for k, v := range FrontendImageCompression {
		if attrs[k] != v {
			t.Errorf("the release workflow's outputs: has %s=%q, the stack builds the image with %s=%s", k, attrs[k], k, v)
		}
	}
}
