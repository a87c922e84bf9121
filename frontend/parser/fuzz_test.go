package parser

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error carries lines
// inside the input, and that nodes keep to the input's lines in order.
//
//	go test ./frontend/parser -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	for _, dir := range []string{testDir, negativeTestDir} {
		for _, c := range caseDirs(f, dir) {
			data, err := os.ReadFile(filepath.Join(dir, c, "Patchfile"))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("# escape=x\nFROM a\n"))
	f.Add([]byte("FROM a\nAPP --chown=1\v. /app\n"))
	f.Add([]byte("FROM a\nWORKDIR --x -- /a\n"))
	f.Add([]byte("FROM a\nWORKDIR --x --\"\" /a\n"))
	f.Add([]byte("WORKDIR --\xa0"))

	f.Fuzz(func(t *testing.T, data []byte) {
		lines := lineCount(data)
		res, err := Parse(bytes.NewReader(data))
		if err != nil {
			var le *LocationError
			if !errors.As(err, &le) {
				t.Fatalf("error without a location: %v", err)
			}
			if len(le.Locations) == 0 {
				t.Fatalf("error with no ranges: %v", err)
			}
			for _, loc := range le.Locations {
				if len(loc) == 0 {
					t.Fatalf("error with an empty location: %v", err)
				}
				for _, r := range loc {
					if r.Start.Line < 1 || r.Start.Line > r.End.Line || r.End.Line > lines {
						t.Fatalf("error %q located at lines %d-%d of a %d-line input", err, r.Start.Line, r.End.Line, lines)
					}
				}
			}
			return
		}
		if len(res.Nodes) == 0 {
			t.Fatal("no error and no nodes")
		}
		prevEnd := 0
		for _, n := range res.Nodes {
			if n.StartLine <= prevEnd || n.StartLine > n.EndLine || n.EndLine > lines {
				t.Fatalf("%s at lines %d-%d after line %d of a %d-line input", n.Command, n.StartLine, n.EndLine, prevEnd, lines)
			}
			prevEnd = n.EndLine
			if !strings.HasSuffix(strings.TrimSpace(n.Original()), n.Rest) {
				t.Fatalf("%s: rest %q is not the end of %q", n.Command, n.Rest, n.Original())
			}
			// BuildKit keeps the argument text of these as is (parseString):
			// Rest must split the line where BuildKit does.
			switch n.Command {
			case "WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER":
				want := ""
				if n.Dockerfile.Next != nil {
					want = n.Dockerfile.Next.Value
				}
				if n.Rest != want {
					t.Fatalf("%s: rest %q, BuildKit's argument %q (line %q, flags %q)", n.Command, n.Rest, want, n.Original(), n.Flags)
				}
			}
			Words(n.Rest, res.EscapeToken)
		}
	})
}
