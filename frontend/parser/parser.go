// Package parser turns Patchfile text into a list of located instruction nodes.
//
// The lexical layer (comments, line continuations, the `# syntax=` and
// `# escape=` directives, heredocs and builder flags) is BuildKit's Dockerfile
// parser, so a Patchfile reads exactly like a Dockerfile to its users. This
// package adds what a Patchfile needs on top: the raw argument text of the
// instructions Dockerfiles do not know (DEPS, APP, PATCH), and errors that
// always carry a line. It imports no LLB so its tests and fuzzing stay fast.
package parser

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"unicode"

	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/pkg/errors"
)

// Range is a span of Patchfile lines (1-based), as BuildKit source maps use.
type Range = dfparser.Range

// LocationError is an error located at one or more Patchfile ranges.
type LocationError = dfparser.LocationError

// Position is a place in a Patchfile line.
type Position = dfparser.Position

// Node is one instruction of a Patchfile.
type Node struct {
	// Dockerfile is BuildKit's node for the instruction. Instructions that
	// Dockerfiles also have are typed from it by BuildKit's instructions package.
	Dockerfile *dfparser.Node
	// Command is the instruction keyword in upper case (e.g. "APP").
	Command string
	// Flags are the builder flags (e.g. "--chown=1000") in order.
	Flags []string
	// Rest is the argument text after the keyword and flags, unexpanded.
	Rest string
	// StartLine and EndLine are the 1-based lines the instruction spans.
	StartLine, EndLine int
}

// Location returns the node's line range for errors and source maps.
func (n *Node) Location() []Range { return n.Dockerfile.Location() }

// Original returns the instruction as written, continuations joined.
func (n *Node) Original() string { return n.Dockerfile.Original }

// Result is a parsed Patchfile.
type Result struct {
	Nodes []*Node
	// EscapeToken is the line continuation character (`\` unless `# escape=`).
	EscapeToken rune
	// Warnings are non-fatal findings of the lexer (e.g. empty continuation lines).
	Warnings []dfparser.Warning
}

// MaxSize is the largest Patchfile accepted. A Patchfile is a few dozen lines;
// anything this large is a mistake (a binary passed with -f, say).
const MaxSize = 1 << 20

// Parse reads a Patchfile. Every error it returns carries a line
// (a *LocationError), line 1 for errors about the file as a whole.
func Parse(r io.Reader) (*Result, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, atLine(errors.Wrap(err, "reading Patchfile"), 1)
	}
	if len(data) > MaxSize {
		return nil, atLine(errors.Errorf("the Patchfile is larger than %d bytes: a Patchfile lists instructions, keep application files in the build context", MaxSize), 1)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, atLine(errors.New("the Patchfile is empty: it needs at least FROM <image>@sha256:<digest> and APP <src> <dest>"), 1)
	}
	if line := longLine(data); line > 0 {
		return nil, atLine(errors.Errorf("line %d is longer than %d bytes", line, bufio.MaxScanTokenSize-1), line)
	}
	res, err := dfparser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, locate(err, data)
	}
	out := &Result{EscapeToken: res.EscapeToken, Warnings: res.Warnings}
	for _, child := range res.AST.Children {
		out.Nodes = append(out.Nodes, &Node{
			Dockerfile: child,
			Command:    strings.ToUpper(child.Value),
			Flags:      child.Flags,
			Rest:       argumentText(child.Original, len(child.Flags), res.EscapeToken),
			StartLine:  child.StartLine,
			EndLine:    child.EndLine,
		})
	}
	if len(out.Nodes) == 0 {
		return nil, atLine(errors.New("the Patchfile has no instructions: it needs at least FROM <image>@sha256:<digest> and APP <src> <dest>"), 1)
	}
	return out, nil
}

// atLine locates err at one whole line.
func atLine(err error, line int) error {
	return dfparser.WithLocation(err, []Range{{Start: dfparser.Position{Line: line}, End: dfparser.Position{Line: line}}})
}

// longLine returns the first line BuildKit's line scanner cannot read (its
// buffer is 64 KiB), or 0. BuildKit reports it at the line before, or as
// "file with no instructions" when it is the first.
func longLine(data []byte) int {
	for line := 1; len(data) > 0; line++ {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			end = len(data)
		}
		if end >= bufio.MaxScanTokenSize {
			return line
		}
		data = data[min(end+1, len(data)):]
	}
	return 0
}

// locate makes sure a lexer error carries lines inside the file. BuildKit's
// lexer finds directive errors (a bad or repeated `# escape=`) before it
// counts the line they are on, and locates them at the line before: line 0
// for the first line of the file.
func locate(err error, data []byte) error {
	var le *LocationError
	if !errors.As(err, &le) || len(le.Locations) == 0 || len(le.Locations[0]) == 0 {
		return atLine(err, 1)
	}
	msg := le.Unwrap().Error()
	if strings.Contains(msg, "parser directive") || strings.Contains(msg, "escape token") {
		line := le.Locations[0][0].Start.Line + 1
		return dfparser.SetLocation(err, []Range{{Start: Position{Line: line}, End: Position{Line: line}}})
	}
	lines := bytes.Count(data, []byte("\n"))
	if !bytes.HasSuffix(data, []byte("\n")) {
		lines++
	}
	for _, loc := range le.Locations {
		for _, r := range loc {
			if r.Start.Line < 1 || r.End.Line > lines {
				return dfparser.SetLocation(err, []Range{{Start: Position{Line: 1}, End: Position{Line: 1}}})
			}
		}
	}
	return err
}

// argumentText strips the keyword and the first nflags builder flags from an
// instruction line, keeping the argument text unexpanded. It splits the line
// as BuildKit's splitCommand does, so Flags and Rest cover the whole line:
// the keyword ends at white space, flags are words starting with "--" that
// quotes and the escape character keep whole (--exclude="a b"), and a lone
// "--" ends the flags.
func argumentText(original string, nflags int, escape rune) string {
	s := strings.TrimSpace(original)
	end := strings.IndexAny(s, keywordSpace)
	if end < 0 {
		return ""
	}
	s = trimFlagSpace(s[end:])
	for i := 0; i <= nflags && strings.HasPrefix(s, "--"); i++ {
		end := wordEnd(s, escape, isFlagSpace)
		if i == nflags {
			if unquote(s[:end], escape) != "--" {
				break
			}
			// BuildKit keeps what follows a lone "--" from the byte after
			// it and trims it with strings.TrimSpace, which (unlike the
			// byte-wise flag spacing) leaves a stray 0xA0 byte in place.
			return strings.TrimSpace(s[end:])
		}
		s = trimFlagSpace(s[end:])
	}
	return strings.TrimSpace(s)
}

// unquote returns a flag word as BuildKit reads it: quotes removed, escaped
// characters kept (so --"" is the "--" that ends the flags).
func unquote(word string, escape rune) string {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(word); i++ {
		switch c := word[i]; {
		case rune(c) == escape:
			if i+1 < len(word) {
				i++
				b.WriteByte(word[i])
			}
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// keywordSpace separates the keyword from its arguments (BuildKit's reWhitespace).
const keywordSpace = " \t\v\f\r"

// isFlagSpace is the white space between builder flags. BuildKit tests
// each byte with unicode.IsSpace, so bytes 0x85 and 0xA0 count too.
func isFlagSpace(b byte) bool { return unicode.IsSpace(rune(b)) }

func trimFlagSpace(s string) string {
	for s != "" && isFlagSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// isWordSpace separates the words of an argument (BuildKit's reWhitespace).
func isWordSpace(b byte) bool { return strings.IndexByte(keywordSpace, b) >= 0 }

// wordEnd returns the index just past the first word of s, honouring quotes
// and the escape character the way BuildKit's flag extraction does. It
// reads bytes, as BuildKit does: quotes and escapes are ASCII, and only
// isFlagSpace matches bytes of multi-byte UTF-8 characters.
func wordEnd(s string, escape rune, isSpace func(byte) bool) int {
	var quote byte
	escaped := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case rune(c) == escape:
			escaped = true
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case isSpace(c):
			return i
		}
	}
	return len(s)
}

// WithLocationOnce locates err at location unless it already carries a line.
func WithLocationOnce(err error, location []Range) error {
	var le *LocationError
	if errors.As(err, &le) {
		return err
	}
	return dfparser.WithLocation(err, location)
}
