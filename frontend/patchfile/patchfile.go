package patchfile

import (
	"bytes"
	stderrors "errors"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/util/suggest"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/pkg/errors"
)

// Stage is one FROM and the instructions after it, up to the next FROM.
type Stage struct {
	// Name is the stage's name (FROM ... AS <name>), "" for none.
	Name string
	From *FromInstruction
	// Steps are the instructions after FROM, in order; PATCH is not one.
	Steps []Instruction
	// AppIndex is the index of App in Steps, -1 when the stage has none.
	AppIndex int
	App      *AppInstruction
	// Carry are the stage's CARRY instructions, in order; they are not
	// steps.
	Carry []*CarryInstruction
}

// CarriedPaths returns the paths the stage's CARRY instructions name, once
// each, in order.
func (s *Stage) CarriedPaths() []string {
	var out []string
	for _, c := range s.Carry {
		for _, p := range c.Paths {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// DepsSteps returns the instructions of the stage's dependency part: those
// before APP (every step of a build stage without APP).
func (s *Stage) DepsSteps() []Instruction {
	if s.AppIndex < 0 {
		return s.Steps
	}
	return s.Steps[:s.AppIndex]
}

// AfterApp returns the instructions after APP: the build commands of a
// build stage, the config of the final stage.
func (s *Stage) AfterApp() []Instruction {
	if s.AppIndex < 0 {
		return nil
	}
	return s.Steps[s.AppIndex+1:]
}

// File is a parsed and structurally valid Patchfile.
type File struct {
	// MetaArgs are the ARGs before the first FROM, usable in every FROM.
	MetaArgs []*instructions.ArgCommand
	// Stage is the final stage: the image. Its steps before APP make the
	// dependency stage; those after it only change the image config.
	Stage
	// BuildStages are the named stages before the final one, in order:
	// build environments whose outputs the final APP ships (APP
	// --from=<name>). They are never part of the image.
	BuildStages []*Stage
	// Patch are the PATCH instructions, in order.
	Patch []*PatchInstruction
	// Escape is the line continuation character.
	Escape rune
	// Warnings are the lexer's non-fatal findings.
	Warnings []string
}

// ConfigSteps returns the instructions after APP, which only change the config.
func (pf *File) ConfigSteps() []Instruction { return pf.AfterApp() }

// Stages returns every stage in order: the build stages, then the final one.
func (pf *File) Stages() []*Stage {
	return append(slices.Clone(pf.BuildStages), &pf.Stage)
}

// BuildStage returns the build stage named name, or nil.
func (pf *File) BuildStage(name string) *Stage {
	for _, s := range pf.BuildStages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Parse parses and checks a Patchfile. Every problem is reported,
// joined, each located at its line.
func Parse(data []byte) (*File, error) {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	pf := &File{Escape: res.EscapeToken}
	for _, w := range res.Warnings {
		pf.Warnings = append(pf.Warnings, w.Short)
	}
	var (
		errs    []error
		stages  []*Stage
		patches []int // the stage of each PATCH, by index in pf.Patch
	)
	for _, node := range res.Nodes {
		inst, err := parseInstruction(node, res.EscapeToken)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		located := func(err error) {
			errs = append(errs, parser.WithLocationOnce(err, inst.Location()))
		}
		switch inst := inst.(type) {
		case *FromInstruction:
			if n := len(stages); n > 0 && stages[n-1].Name == "" {
				located(errors.Errorf("a second FROM: the stage before it is then a build stage, which needs a name: write FROM <image>@sha256:<digest> AS build on line %d, and ship its outputs in this stage with APP --from=build <path>... <dest>", stages[n-1].From.Location()[0].Start.Line))
			}
			for _, s := range stages {
				if inst.Stage != "" && s.Name == inst.Stage {
					located(errors.Errorf("a stage named %s is already on line %d: give each stage its own name", inst.Stage, s.From.Location()[0].Start.Line))
				}
			}
			stages = append(stages, &Stage{Name: inst.Stage, From: inst, AppIndex: -1})
			continue
		}
		if len(stages) == 0 {
			if arg, ok := inst.(*instructions.ArgCommand); ok {
				pf.MetaArgs = append(pf.MetaArgs, arg)
				continue
			}
			located(errors.Errorf("%s before FROM: a Patchfile starts with FROM <image>@sha256:<digest> (only ARG may come before it)", strings.ToUpper(inst.Name())))
			continue
		}
		cur := stages[len(stages)-1]
		switch inst := inst.(type) {
		case *PatchInstruction:
			pf.Patch = append(pf.Patch, inst)
			patches = append(patches, len(stages)-1)
			continue
		case *CarryInstruction:
			cur.Carry = append(cur.Carry, inst)
			continue
		case *AppInstruction:
			if cur.App != nil {
				located(errors.Errorf("a second APP: list every source in one instruction, APP <src>... <dest> (the first is on line %d); to ship files from several places or to several directories, lay them out in a build stage (RUN mkdir -p /out/... && cp -R ... /out/...) and ship that with APP --from=<stage> /out <dest>", cur.App.Location()[0].Start.Line))
				continue
			}
			cur.App, cur.AppIndex = inst, len(cur.Steps)
		}
		cur.Steps = append(cur.Steps, inst)
	}
	if len(stages) > 0 {
		final := len(stages) - 1
		for i, s := range stages {
			errs = append(errs, checkStage(s, stages[:i], i == final)...)
		}
		for k, i := range patches {
			if i != final {
				errs = append(errs, parser.WithLocationOnce(errors.Errorf("PATCH in build stage %s: PATCH names a release of the final image; move it after the last FROM (line %d)", stages[i].Name, stages[final].From.Location()[0].Start.Line), pf.Patch[k].Location()))
			}
		}
		pf.Stage, pf.BuildStages = *stages[final], stages[:final]
	}
	if len(errs) == 0 {
		last := res.Nodes[len(res.Nodes)-1].EndLine
		if len(stages) == 0 {
			errs = append(errs, atLine(errors.New("the Patchfile has no FROM: start it with FROM <image>@sha256:<digest>"), 1))
		} else if pf.App == nil {
			errs = append(errs, atLine(errors.New("the Patchfile has no APP: add APP <src>... <dest> (e.g. APP . /app) after the dependency steps"), last))
		}
	}
	if len(errs) > 0 {
		sortByLine(errs)
		return nil, stderrors.Join(errs...)
	}
	return pf, nil
}

// configOnly are the instructions that only set the image config: the
// final stage's business.
var configOnly = map[string]bool{"EXPOSE": true, "LABEL": true, "CMD": true, "ENTRYPOINT": true, "STOPSIGNAL": true, "HEALTHCHECK": true}

// checkStage checks where each instruction of a stage stands. earlier are
// the stages before it, which APP --from may name (the final stage only).
func checkStage(s *Stage, earlier []*Stage, final bool) []error {
	var errs []error
	fail := func(inst Instruction, err error) {
		errs = append(errs, parser.WithLocationOnce(err, inst.Location()))
	}
	appLine := 0
	if s.App != nil {
		appLine = s.App.Location()[0].Start.Line
	}
	for _, inst := range s.Carry {
		switch {
		case final:
			fail(inst, errors.Errorf("CARRY in the final stage: it carries the cache of a build stage's build commands; move it to the build stage whose RUN --mount=type=cache,target=%s runs after its APP", inst.Paths[0]))
		case s.App == nil:
			fail(inst, errors.Errorf("CARRY in build stage %s, which has no APP: a cache is carried for the build commands that run over the sources (APP <src>... <dest>, then RUN --mount=type=cache,target=%s <build>); the dependency steps come from the build cache already", s.Name, inst.Paths[0]))
		}
	}
	for i, inst := range s.Steps {
		afterApp := s.AppIndex >= 0 && i > s.AppIndex
		switch inst := inst.(type) {
		case *instructions.RunCommand:
			if final && afterApp {
				fail(inst, errors.Errorf("RUN after APP would run again on every change to the application files, so nothing could be patched: move it before APP (line %d) and give it the files it needs with DEPS; a step that builds the app belongs in a build stage (FROM <image>@sha256:<digest> AS build, then APP . /src and RUN <build>), whose outputs this stage ships with APP --from=build", appLine))
			}
		case *DepsInstruction:
			if afterApp {
				fail(inst, errors.Errorf("DEPS after APP: dependency manifests belong to the dependency steps, move this line before APP (line %d)", appLine))
			}
		case *AppInstruction:
			switch {
			case !final && inst.From != "":
				fail(inst, errors.Errorf("APP --from=%s in build stage %s: a build stage takes its sources from the build context (APP <src>... <dest>); only the final stage ships from a build stage", inst.From, s.Name))
			case final && inst.From != "" && inst.From == s.Name:
				fail(inst, errors.Errorf("APP --from=%s names this stage itself: name a build stage, one of the stages before this one", inst.From))
			case final && inst.From != "":
				names := make([]string, 0, len(earlier))
				for _, e := range earlier {
					names = append(names, e.Name)
				}
				if !slices.Contains(names, inst.From) {
					msg := "there is none: add one before this stage, FROM <image>@sha256:<digest> AS " + inst.From
					if len(names) > 0 {
						msg = "the build stages are " + strings.Join(names, ", ")
					}
					fail(inst, suggest.WrapError(errors.Errorf("APP --from=%s names no build stage: %s", inst.From, msg), inst.From, names, true))
				}
			}
		default:
			if !final && configOnly[strings.ToUpper(inst.Name())] {
				fail(inst, errors.Errorf("%s in build stage %s sets nothing: only the final stage (the last FROM) makes the image's config; move it there", strings.ToUpper(inst.Name()), s.Name))
			}
		}
	}
	return errs
}

// sortByLine orders located errors by their first line, so that joined
// errors read top to bottom.
func sortByLine(errs []error) {
	line := func(err error) int {
		var le *parser.LocationError
		if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
			return le.Locations[0][0].Start.Line
		}
		return 0
	}
	slices.SortStableFunc(errs, func(a, b error) int { return line(a) - line(b) })
}

func atLine(err error, line int) error {
	return parser.WithLocationOnce(err, []parser.Range{{Start: parser.Position{Line: line}, End: parser.Position{Line: line}}})
}

// Language names Patchfile sources in BuildKit's source maps and
// entrypoint reads.
const Language = "Patchfile"
