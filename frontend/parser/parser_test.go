package parser

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// update rewrites the golden files: go test ./frontend/parser -update
var update = flag.Bool("update", false, "rewrite the golden files of testdata and testdata-negative")

const (
	testDir         = "testdata"
	negativeTestDir = "testdata-negative"
)

// caseDirs lists the cases of a testdata directory (testdata/fuzz holds
// the fuzzer's corpus, not a case).
func caseDirs(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "fuzz" {
			dirs = append(dirs, e.Name())
		}
	}
	require.NotEmpty(t, dirs, dir)
	return dirs
}

// dump renders a parse result one node a line, for the goldens.
func dump(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "escape %c\n", res.EscapeToken)
	for _, w := range res.Warnings {
		fmt.Fprintf(&b, "warning line %d: %s\n", w.Location.Start.Line, w.Short)
	}
	for _, n := range res.Nodes {
		fmt.Fprintf(&b, "%d-%d %s flags=%q rest=%q\n", n.StartLine, n.EndLine, n.Command, n.Flags, n.Rest)
	}
	return b.String()
}

// errorLine returns the first line err is located at, failing the test if
// err carries no location.
func errorLine(t testing.TB, err error) int {
	t.Helper()
	var le *LocationError
	require.True(t, errors.As(err, &le), "error has no location: %v", err)
	require.NotEmpty(t, le.Locations)
	require.NotEmpty(t, le.Locations[0])
	return le.Locations[0][0].Start.Line
}

// golden compares got with a golden file, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden (run with -update)")
	require.Equal(t, string(want), got, path)
}

func TestParseCases(t *testing.T) {
	for _, dir := range caseDirs(t, testDir) {
		t.Run(dir, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(testDir, dir, "Patchfile"))
			require.NoError(t, err)
			res, err := Parse(bytes.NewReader(data))
			require.NoError(t, err)
			golden(t, filepath.Join(testDir, dir, "result"), dump(res))
		})
	}
}

func TestParseErrorCases(t *testing.T) {
	for _, dir := range caseDirs(t, negativeTestDir) {
		t.Run(dir, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(negativeTestDir, dir, "Patchfile"))
			require.NoError(t, err)
			_, err = Parse(bytes.NewReader(data))
			require.Error(t, err)
			line := errorLine(t, err)
			require.GreaterOrEqual(t, line, 1)
			require.LessOrEqual(t, line, lineCount(data))
			golden(t, filepath.Join(negativeTestDir, dir, "error"), fmt.Sprintf("line %d: %v\n", line, err))
		})
	}
}

func TestParseWholeFileErrors(t *testing.T) {
	big := "FROM alpine@sha256:0000\n" + strings.Repeat("# padding\n", MaxSize/10)
	cases := []struct {
		name  string
		input string
		want  string
		line  int
	}{
		{name: "empty", input: "", want: "the Patchfile is empty", line: 1},
		{name: "whitespace only", input: " \n\t\n\r\n  ", want: "the Patchfile is empty", line: 1},
		{name: "comments only", input: "# one\n# two\n", want: "file with no instructions", line: 2},
		{name: "over MaxSize", input: big[:MaxSize] + "x", want: fmt.Sprintf("larger than %d bytes", MaxSize), line: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.input))
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, tc.line, errorLine(t, err))
		})
	}
}

func TestParseAtMaxSize(t *testing.T) {
	head := "FROM alpine@sha256:0000\nAPP . /app\n"
	pad := strings.Repeat("# padding\n", (MaxSize-len(head))/10)
	input := head + pad + strings.Repeat("#", MaxSize-len(head)-len(pad))
	require.Len(t, input, MaxSize)
	res, err := Parse(strings.NewReader(input))
	require.NoError(t, err)
	require.Len(t, res.Nodes, 2)
	require.Equal(t, "APP", res.Nodes[1].Command)
}

// TestParseLexerErrorLines covers the errors BuildKit's lexer locates at the
// line before the one they are about (line 0 on the first line).
func TestParseLexerErrorLines(t *testing.T) {
	long := "LABEL x=" + strings.Repeat("a", bufio.MaxScanTokenSize-8)
	cases := []struct {
		name  string
		input string
		want  string
		line  int
	}{
		{name: "bad escape on line 1", input: "# escape=x\nFROM a\n", want: "invalid escape token", line: 1},
		{name: "bad escape on line 2", input: "# syntax=a/b\n# escape=x\nFROM a\n", want: "invalid escape token", line: 2},
		{name: "repeated escape", input: "# escape=\\\n# escape=`\nFROM a\n", want: "only one escape parser directive", line: 2},
		{name: "long first line", input: long + "\nFROM a\n", want: "line 1 is longer than 65535 bytes", line: 1},
		{name: "long fourth line", input: "FROM a\nRUN a \\\n  b\n" + long, want: "line 4 is longer than 65535 bytes", line: 4},
		{name: "unterminated heredoc", input: "FROM a\nRUN <<EOF\necho\n", want: "unterminated heredoc", line: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.input))
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, tc.line, errorLine(t, err))
		})
	}
}

func TestParseLongestLine(t *testing.T) {
	longest := "LABEL x=" + strings.Repeat("a", bufio.MaxScanTokenSize-9)
	require.Len(t, longest, bufio.MaxScanTokenSize-1)
	res, err := Parse(strings.NewReader("FROM a\n" + longest + "\nAPP . /app\n"))
	require.NoError(t, err)
	require.Len(t, res.Nodes, 3)
}

func TestParseLineEndings(t *testing.T) {
	res, err := Parse(strings.NewReader("\ufeffFROM a\r\nRUN b \\\r\n  c\r\nAPP . /app"))
	require.NoError(t, err)
	require.Equal(t, "escape \\\n"+
		"1-1 FROM flags=[] rest=\"a\"\n"+
		"2-3 RUN flags=[] rest=\"b   c\"\n"+
		"4-4 APP flags=[] rest=\". /app\"\n", dump(res))
}

// TestParseFlagsAndRest checks that Flags and Rest split the line where
// BuildKit does, whatever white space separates them.
func TestParseFlagsAndRest(t *testing.T) {
	cases := []struct {
		line  string
		flags []string
		rest  string
	}{
		{line: "APP . /app", rest: ". /app"},
		{line: "APP\t--chown=1\t. /app", flags: []string{"--chown=1"}, rest: ". /app"},
		{line: "APP --chown=1\v. /app", flags: []string{"--chown=1"}, rest: ". /app"},
		{line: "APP --chown=1\f\r. /app", flags: []string{"--chown=1"}, rest: ". /app"},
		{line: "APP --exclude='a b' --exclude=\"c\\\" d\" x /y", flags: []string{"--exclude=a b", `--exclude=c" d`}, rest: "x /y"},
		{line: "APP --a\\ b . /app", flags: []string{"--a b"}, rest: ". /app"},
		{line: "APP -- --x /app", rest: "--x /app"},
		{line: "APP --chown=1 -- . /app", flags: []string{"--chown=1"}, rest: ". /app"},
		{line: "APP --chown=1 -\\- --'' . /app", flags: []string{"--chown=1"}, rest: "-\\- --'' . /app"},
		{line: "APP --chown=1 --'' . /app", flags: []string{"--chown=1"}, rest: ". /app"},
		{line: "APP --chown=1", flags: []string{"--chown=1"}, rest: ""},
		{line: "APP", rest: ""},
		{line: "A\"PP . /app", rest: ". /app"},
		{line: "WORKDIR  -x  ", rest: "-x"},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			res, err := Parse(strings.NewReader("FROM a\n" + tc.line + "\n"))
			require.NoError(t, err)
			require.Len(t, res.Nodes, 2)
			n := res.Nodes[1]
			if len(tc.flags) == 0 {
				require.Empty(t, n.Flags)
			} else {
				require.Equal(t, tc.flags, n.Flags)
			}
			require.Equal(t, tc.rest, n.Rest)
		})
	}
}

func TestWords(t *testing.T) {
	cases := []struct {
		name   string
		rest   string
		escape rune
		want   []string
	}{
		{name: "plain", rest: "a b\tc", escape: '\\', want: []string{"a", "b", "c"}},
		{name: "vertical tab", rest: "a\vb", escape: '\\', want: []string{"a", "b"}},
		{name: "quotes kept", rest: `"a b" 'c d' e`, escape: '\\', want: []string{`"a b"`, `'c d'`, "e"}},
		{name: "escaped space", rest: `a\ b c`, escape: '\\', want: []string{`a\ b`, "c"}},
		{name: "backtick escape", rest: "a` b c\\d", escape: '`', want: []string{"a` b", `c\d`}},
		{name: "json", rest: `["a b", "$HOME", "it's", "/app"]`, escape: '\\', want: []string{"'a b'", "'$HOME'", `'it'"'"'s'`, "/app"}},
		{name: "not json", rest: `[a, b]`, escape: '\\', want: []string{"[a,", "b]"}},
		{name: "utf-8", rest: "à\u00a0b c", escape: '\\', want: []string{"à\u00a0b", "c"}},
		{name: "empty", rest: "  ", escape: '\\', want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Words(tc.rest, tc.escape))
		})
	}
}

// lineCount is the number of lines BuildKit's scanner reads from data.
func lineCount(data []byte) int {
	n := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return max(n, 1)
}

func TestWordsTrailingComment(t *testing.T) {
	require.Equal(t, []string{".", "/app"}, Words(". /app   # the application", '\\'))
	require.Equal(t, []string{"reg/img@sha256:abc"}, Words("reg/img@sha256:abc # pinned base: a digest is required", '\\'))
	require.Equal(t, []string{`"#not-a-comment"`, "/app"}, Words(`"#not-a-comment" /app`, '\\'))
	require.Equal(t, []string{"a#b", "/app"}, Words("a#b /app", '\\'))
}
