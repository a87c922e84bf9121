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
	"bytes"
	"io"
	"strings"

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
	res, err := dfparser.Parse(bytes.NewReader(data))
	if err != nil {
		var le *LocationError
		if errors.As(err, &le) {
			return nil, err
		}
		return nil, atLine(err, lineOfError(err, data))
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

// lineOfError finds the line a lexer error is about. BuildKit's lexer
// reports some errors (bad directives, unterminated heredocs) without a
// location; those are about the start of the file or its last line.
func lineOfError(err error, data []byte) int {
	msg := err.Error()
	if strings.Contains(msg, "heredoc") {
		return max(1, bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n"))+1)
	}
	return 1
}

// argumentText strips the keyword and the first nflags builder flags from an
// instruction line, keeping the argument text unexpanded. Flags are words
// starting with "--"; quotes inside a flag (--exclude="a b") keep it one word.
func argumentText(original string, nflags int, escape rune) string {
	s := strings.TrimSpace(original)
	s = strings.TrimLeft(s[wordEnd(s, escape):], " \t")
	for i := 0; i < nflags && strings.HasPrefix(s, "--"); i++ {
		s = strings.TrimLeft(s[wordEnd(s, escape):], " \t")
	}
	return s
}

// wordEnd returns the index just past the first word of s, honouring quotes
// and the escape character the way BuildKit's flag extraction does.
func wordEnd(s string, escape rune) int {
	var quote rune
	escaped := false
	for i, c := range s {
		switch {
		case escaped:
			escaped = false
		case c == escape:
			escaped = true
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == ' ' || c == '\t':
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
