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
