package convert

import (
	"fmt"
	"path"
	"slices"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/pkg/errors"
)

// Resolution is a Patchfile with its words expanded as far as they can be
// known without reading an image or the build context: each stage's base,
// which build stages the build runs, each DEPS's context paths, each RUN's
// mounts with the ids they ask for, each APP's sources and excludes. The
// checks and the outline read it instead of walking the instructions
// themselves, and a build and a plan read its PATCH candidates early; the
// conversion resolves the same words with the same functions (depsPattern,
// appSources, ResolveMount, expandPatchRefs) and the same Scope, which
// also knows the base image's ENV. A word that names what only the build
// knows is Unknown here: readers skip it rather than guess. The platform
// ARGs (TARGETARCH, ...) are known when the reader knows the platform it
// resolves for (the outline and the checks: the build's target), and
// unknown otherwise (a build and a plan, which resolve once for every
// platform).
type Resolution struct {
	// Stages are the build stages in order, then the final stage.
	Stages []*ResolvedStage
	// PatchRefs are the PATCH candidates in order (the PATCH build arg's
	// when it is set), as the conversion expands them (expandPatchRefs);
	// PatchKnown is false when a word of them names what only the build
	// knows.
	PatchRefs  []string
	PatchKnown bool
}

// ResolvedStage is one stage of a Resolution.
type ResolvedStage struct {
	*patchfile.Stage
	// Base is the FROM image expanded with the ARGs before FROM, "" when
	// a word of it is unknown. BaseStage is the earlier build stage it
	// names, if any.
	Base      string
	BaseStage *patchfile.Stage
	// Built says the build runs the stage: the final stage, a build stage
	// APP --from ships, and the stages those start from.
	Built bool
	Deps  []ResolvedDeps
	Runs  []ResolvedRun
	// App is the stage's APP, nil for none.
	App *ResolvedApp
}

// ResolvedDeps is one DEPS instruction.
type ResolvedDeps struct {
	Inst *patchfile.DepsInstruction
	// Workdir is where its files land: the WORKDIRs before it, from "/"
	// (a base image's own WORKDIR is not known here).
	Workdir string
	// Sources are the context paths it copies, cleaned; Unknown the
	// sources with a word only the build knows.
	Sources []string
	Unknown []string
}

// ResolvedRun is one RUN instruction.
type ResolvedRun struct {
	Inst *instructions.RunCommand
	// AfterApp says it runs after the stage's APP (a build command).
	AfterApp bool
	// Mounts are its --mount flags; Err what is wrong with them (the
	// build reports it, located).
	Mounts []Mount
	Err    error
}

// ResolvedApp is one APP instruction.
type ResolvedApp struct {
	Inst *patchfile.AppInstruction
	// Sources (context paths, or paths of the --from stage's filesystem)
	// and Excludes, expanded; Known is false when a word of them names
	// what only the build knows, and then both are empty.
	Sources, Excludes []string
	Known             bool
}

// Resolve resolves a Patchfile with its build args, for the platform
// whose ARGs platformArgs are (PlatformArgs; nil for a reader that
// resolves for every platform at once).
func Resolve(pf *patchfile.File, buildArgs, platformArgs map[string]string) *Resolution {
	r := &Resolution{}
	// The ARGs before FROM, computed once: every stage's scope starts
	// from them, and FROM expands with them.
	reader := ReaderScope(pf, buildArgs, platformArgs)
	fromScope := FromScope(pf, reader.lex, buildArgs, reader.meta, platformArgs)
	for _, s := range pf.Stages() {
		rs := &ResolvedStage{Stage: s}
		if image, ok := fromScope.Known(s.From.Image); ok {
			rs.Base = image
			if earlier := r.Stage(image); earlier != nil {
				rs.BaseStage = earlier.Stage
			}
		}
		scope := NewScope(reader.lex, buildArgs, reader.meta, platformArgs)
		resolveSteps(rs, scope)
		r.Stages = append(r.Stages, rs)
		if s == &pf.Stage {
			refs, _, err := expandPatchRefs(pf, buildArgs, scope.WithMetaArgs().expandKnown)
			r.PatchRefs, r.PatchKnown = refs, err == nil
		}
	}
	r.Stages[len(r.Stages)-1].Built = true
	for s := r.Stage(pf.App.From); s != nil && !s.Built; s = r.Stage(s.Base) {
		s.Built = true
	}
	return r
}

// Stage is the build stage named name, nil for none (the final stage has
// no name).
func (r *Resolution) Stage(name string) *ResolvedStage {
	if name == "" {
		return nil
	}
	i := slices.IndexFunc(r.Stages, func(s *ResolvedStage) bool { return s.Name == name })
	if i < 0 {
		return nil
	}
	return r.Stages[i]
}

// resolveSteps resolves a stage's instructions in order, scope following
// their ARGs and ENVs.
func resolveSteps(rs *ResolvedStage, scope *Scope) {
	workdir := "/"
	for i, inst := range rs.Steps {
		switch inst := inst.(type) {
		case *instructions.WorkdirCommand:
			if dir, err := scope.expandKnown(inst.Path); err == nil {
				workdir = path.Join(workdir, dir)
				if path.IsAbs(dir) {
					workdir = path.Clean(dir)
				}
			}
		case *patchfile.DepsInstruction:
			d := ResolvedDeps{Inst: inst, Workdir: workdir}
			for _, src := range inst.Sources {
				if p, err := depsPattern(src, scope.expandKnown); err == nil {
					d.Sources = append(d.Sources, p)
				} else if errors.Is(err, errUnknownWord) {
					d.Unknown = append(d.Unknown, src)
				}
			}
			rs.Deps = append(rs.Deps, d)
		case *instructions.RunCommand:
			run := ResolvedRun{Inst: inst, AfterApp: rs.AppIndex >= 0 && i > rs.AppIndex}
			run.Mounts, run.Err = resolveMounts(inst, scope.expandKnown)
			rs.Runs = append(rs.Runs, run)
		case *patchfile.AppInstruction:
			app := &ResolvedApp{Inst: inst}
			if sources, excludes, err := appSources(inst, scope.expandKnown); err == nil {
				app.Sources, app.Excludes, app.Known = sources, excludes, true
			}
			rs.App = app
		}
		scope.Step(inst)
	}
}

// resolveMounts parses a RUN's --mount flags with expand and resolves
// each (ResolveMount); none when one fails.
func resolveMounts(run *instructions.RunCommand, expand func(string) (string, error)) ([]Mount, error) {
	flags, err := RunMounts(run, expand)
	if err != nil {
		return nil, err
	}
	out := make([]Mount, len(flags))
	for i, m := range flags {
		if out[i], err = ResolveMount(m, i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// expandKnown is Known as an expander: errUnknownWord for a word that
// names what only the build knows.
func (s *Scope) expandKnown(word string) (string, error) {
	if v, ok := s.Known(word); ok {
		return v, nil
	}
	return "", errUnknownWord
}

// errUnknownWord is a word a Resolution cannot expand.
var errUnknownWord = errors.New("the word names a variable only the build knows")

// Shipped returns the context entries the APP ships, in the order the
// full build's copies land them (appLandings: the build's own matching of
// sources and --exclude). It is nil for an APP --from or one with an
// unknown word.
func (a *ResolvedApp) Shipped(files []buildcontext.File) []*buildcontext.File {
	if a == nil || !a.Known || a.Inst.From != "" {
		return nil
	}
	var out []*buildcontext.File
	_ = appLandings(files, AppSpec{Sources: a.Sources, Excludes: a.Excludes}, func(_ string, f *buildcontext.File) error {
		out = append(out, f)
		return nil
	})
	return out
}

// Excluded tells whether the APP's --exclude leaves out rel, a path
// relative to a directory source, as the build's copy reads it.
func (a *ResolvedApp) Excluded(rel string) bool {
	ships, err := appShips(AppSpec{Excludes: a.Excludes})
	return err == nil && !ships(rel)
}

// Mount is one RUN --mount, with what it asks the builder for: a secret's
// or ssh socket's id, a cache's id (before BUILDKIT_CACHE_MOUNT_NS), and
// where it lands.
type Mount struct {
	*instructions.Mount
	ID, Target string
}

// ResolveMount resolves the id and target of the index-th --mount of a RUN
// as the Dockerfile frontend does (dockerfile2llb/convert_secrets.go,
// convert_ssh.go, convert_runmount.go): a secret's id is source=, then
// id=, then env= (for a secret as an environment variable), then the base
// name of target; it lands at /run/secrets/<id> without a target. An ssh
// socket's id is "default" without one. A cache's id is its target
// without one.
func ResolveMount(m *instructions.Mount, index int) (Mount, error) {
	out := Mount{Mount: m, ID: m.CacheID, Target: m.Target}
	switch m.Type {
	case instructions.MountTypeSecret:
		if m.Source != "" {
			out.ID = m.Source
		}
		if out.ID == "" && m.Env != nil {
			out.ID = *m.Env
		}
		if out.ID == "" && m.Target != "" {
			out.ID = path.Base(m.Target)
		}
		if out.ID == "" {
			return out, errors.New("RUN --mount=type=secret needs an id or a target: --mount=type=secret,id=npmrc,target=/root/.npmrc")
		}
		if out.Target == "" && m.Env == nil {
			out.Target = "/run/secrets/" + out.ID
		}
	case instructions.MountTypeSSH:
		if out.ID == "" {
			out.ID = "default"
		}
		if out.Target == "" {
			out.Target = fmt.Sprintf("/run/buildkit/ssh_agent.%d", index)
		}
	case instructions.MountTypeCache:
		if out.ID == "" {
			out.ID = m.Target
		}
	}
	return out, nil
}
