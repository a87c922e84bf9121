package integration

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/solver/errdefs"
	"github.com/stretchr/testify/require"
)

// TestErrorsAreLocated: a bad Patchfile fails with a message that says
// what to write instead and points at its line, through every entry point
// (buildctl and buildx print the Patchfile snippet from the source map).
func TestErrorsAreLocated(t *testing.T) {
	cases := []struct {
		name      string
		patchfile string
		line      int
		message   string
	}{{
		name:      "unpinned FROM",
		patchfile: "FROM busybox:1.36\nAPP . /app\n",
		line:      1,
		message:   "FROM busybox:1.36 is not pinned: write FROM busybox:1.36@sha256:<digest>",
	}, {
		name:      "unknown instruction",
		patchfile: "FROM ${BASE}\nAPPP . /app\n",
		line:      2,
		message:   "did you mean APP?",
	}, {
		name:      "RUN after APP",
		patchfile: "FROM ${BASE}\nAPP . /app\nRUN echo hi\n",
		line:      3,
		message:   "RUN after APP would run again on every change",
	}, {
		name:      "missing DEPS file",
		patchfile: "FROM ${BASE}\nWORKDIR /app\nDEPS package-lock.json\nAPP . /app\n",
		line:      3,
		message:   "DEPS package-lock.json matches no file in the build context",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pf := "ARG BASE\n" + tc.patchfile
			line := tc.line + 1 // the ARG line above
			writeTree(t, dir, map[string]file{"Patchfile": {content: pf}, "index.html": {content: "hi\n"}})
			for _, ep := range entryPoints {
				t.Run(ep.name, func(t *testing.T) {
					_, err := ep.build(t, build{dir: dir, args: map[string]string{"BASE": env.base}, output: env.stack.Ref("errors/app", "x")})
					require.Error(t, err)
					require.Contains(t, err.Error(), tc.message)
					if ep.name == "client" {
						srcs := errdefs.Sources(err)
						require.NotEmpty(t, srcs, "the error carries the Patchfile as its source")
						require.Equal(t, "Patchfile", srcs[0].Info.Filename)
						require.EqualValues(t, line, srcs[0].Ranges[0].Start.Line)
						return
					}
					// The CLIs print the failing line of the Patchfile.
					snippet := strings.Split(pf, "\n")[line-1]
					require.Contains(t, err.Error(), " >>> "+snippet, "the CLI shows the failing line")
				})
			}
		})
	}
}
