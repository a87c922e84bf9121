package patchfile

import (
	"bytes"
	stderrors "errors"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/pkg/errors"
)

// File is a parsed and structurally valid Patchfile.
type File struct {
	// MetaArgs are the ARGs before FROM, usable in FROM.
	MetaArgs []*instructions.ArgCommand
	From     *FromInstruction
	// Steps are the instructions after FROM, in order. Those before App make
	// the dependency stage; those after it only change the image config.
	Steps []Instruction
	// AppIndex is the index of App in Steps.
	AppIndex int
	App      *AppInstruction
	// PatchRefs are the PATCH candidates of every PATCH instruction, in order.
	Patch []*PatchInstruction
	// Escape is the line continuation character.
	Escape rune
	// Warnings are the lexer's non-fatal findings.
	Warnings []string
}

// DepsSteps returns the instructions of the dependency stage.
func (pf *File) DepsSteps() []Instruction { return pf.Steps[:pf.AppIndex] }

// ConfigSteps returns the instructions after APP, which only change the config.
func (pf *File) ConfigSteps() []Instruction { return pf.Steps[pf.AppIndex+1:] }

// Parse parses and checks a Patchfile. Every problem is reported,
// joined, each located at its line.
func Parse(data []byte) (*File, error) {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	pf := &File{Escape: res.EscapeToken, AppIndex: -1}
	for _, w := range res.Warnings {
		pf.Warnings = append(pf.Warnings, w.Short)
	}
	var errs []error
	for _, node := range res.Nodes {
		inst, err := parseInstruction(node, res.EscapeToken)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := pf.add(inst); err != nil {
			errs = append(errs, parser.WithLocationOnce(err, inst.Location()))
		}
	}
	if len(errs) == 0 {
		last := res.Nodes[len(res.Nodes)-1].EndLine
		if pf.From == nil {
			errs = append(errs, atLine(errors.New("the Patchfile has no FROM: start it with FROM <image>@sha256:<digest>"), 1))
		} else if pf.App == nil {
			errs = append(errs, atLine(errors.New("the Patchfile has no APP: add APP <src>... <dest> (e.g. APP . /app) after the dependency steps"), last))
		}
	}
	if len(errs) > 0 {
		return nil, stderrors.Join(errs...)
	}
	return pf, nil
}

// add appends one instruction, checking where it may stand.
func (pf *File) add(inst Instruction) error {
	if pf.From == nil {
		switch inst := inst.(type) {
		case *instructions.ArgCommand:
			pf.MetaArgs = append(pf.MetaArgs, inst)
			return nil
		case *FromInstruction:
			pf.From = inst
			return nil
		}
		return errors.Errorf("%s before FROM: a Patchfile starts with FROM <image>@sha256:<digest> (only ARG may come before it)", strings.ToUpper(inst.Name()))
	}
	switch inst := inst.(type) {
	case *FromInstruction:
		return errors.New("a second FROM: a Patchfile has a single stage; put dependency steps before APP instead")
	case *AppInstruction:
		if pf.App != nil {
			return errors.Errorf("a second APP: list every source in one instruction, APP <src>... <dest> (the first is on line %d)", pf.App.Location()[0].Start.Line)
		}
		pf.App = inst
		pf.AppIndex = len(pf.Steps)
	case *PatchInstruction:
		pf.Patch = append(pf.Patch, inst)
		return nil
	case *instructions.RunCommand:
		if pf.App != nil {
			return errors.Errorf("RUN after APP would run again on every change to the application files, so nothing could be patched: move it before APP (line %d) and give it the files it needs with DEPS", pf.App.Location()[0].Start.Line)
		}
	case *DepsInstruction:
		if pf.App != nil {
			return errors.Errorf("DEPS after APP: dependency manifests belong to the dependency stage, move this line before APP (line %d)", pf.App.Location()[0].Start.Line)
		}
	}
	pf.Steps = append(pf.Steps, inst)
	return nil
}

func atLine(err error, line int) error {
	return parser.WithLocationOnce(err, []parser.Range{{Start: parser.Position{Line: line}, End: parser.Position{Line: line}}})
}

// Language names Patchfile sources in BuildKit's source maps and
// entrypoint reads.
const Language = "Patchfile"
