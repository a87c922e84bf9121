package frontend

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/patternmatcher"
	"github.com/patchfile/patchfile/frontend/parser"
)

// Check rules: what `docker buildx build --call=check` reports, without
// building anything (it reads image references and lists the context).
const (
	ruleUnpinnedFrom          = "UnpinnedFrom"
	rulePatchWithoutCandidate = "PatchWithoutCandidate"
	ruleDepsMatchNoFile       = "DepsMatchNoFile"
	ruleAppShipsDependencies  = "AppShipsDependencies"
	ruleIgnoreExcludesNothing = "DockerignoreExcludesNothing"
)

// dependencyFolders are what package managers install into an app tree; a
// context that has them ships the builder's copy instead of the stage's.
var dependencyFolders = []string{"node_modules", ".venv", "venv", "__pycache__", "bower_components", ".bundle"}

// Check runs the check rules on a Patchfile and its build context.
func Check(ctx context.Context, src *dockerui.Source, pf *Patchfile, opt ConvertOpt, cs ContextSource) (*lint.LintResults, error) {
	results := &lint.LintResults{}
	idx := results.AddSource(src.SourceMap)
	warn := func(rule, description, detail string, loc []parser.Range) {
		results.AddWarning(rule, description, "", detail, idx, loc)
	}
	lex := shell.NewLex(pf.Escape)
	metaEnv := metaArgEnv(pf, opt.BuildArgs)

	if image, err := lex.ProcessWordWithMatches(pf.From.Image, metaEnv); err == nil {
		if _, err := pinnedImage(image.Result); err != nil {
			warn(ruleUnpinnedFrom, "FROM must pin its image by digest", err.Error(), pf.From.Location())
		}
	}
	if _, overridden := opt.BuildArgs[keyPatchArg]; len(pf.Patch) == 0 && !overridden {
		warn(rulePatchWithoutCandidate, "without PATCH every deploy is a full build",
			"no PATCH line: every deploy rebuilds and pushes the whole app layer; add PATCH <registry>/<repo>:<release tag> after APP", pf.App.Location())
	}

	files, err := cs.List(ctx, false)
	if err != nil {
		return nil, err
	}
	var depsPatterns []string
	for _, inst := range pf.DepsSteps() {
		deps, ok := inst.(*DepsInstruction)
		if !ok {
			continue
		}
		for _, s := range deps.Sources {
			p, err := lex.ProcessWordWithMatches(s, metaEnv)
			if err != nil {
				continue
			}
			clean, err := contextPath(p.Result)
			if err != nil {
				continue
			}
			depsPatterns = append(depsPatterns, clean)
			if !anyMatch(clean, files) {
				warn(ruleDepsMatchNoFile, "DEPS must name files of the build context",
					fmt.Sprintf("DEPS %s matches no file in the build context (after .dockerignore): the dependency stage would fail", clean), deps.Location())
			}
		}
	}
	if shipped := appShipsDependencies(pf, files, depsPatterns); len(shipped) > 0 {
		warn(ruleAppShipsDependencies, "APP should ship the application, not its dependencies",
			fmt.Sprintf("APP ships %s from the build context: the dependency stage provides them; add them to .dockerignore or APP --exclude (keep a manifest only if the app reads it at run time)", strings.Join(shipped, ", ")),
			pf.App.Location())
	}
	if detail := ignoreExcludesNothing(ctx, cs); detail != "" {
		results.AddWarning(ruleIgnoreExcludesNothing, ".dockerignore should exclude something", "", detail, -1, nil)
	}
	return results, nil
}

// metaArgEnv is what FROM and the checks expand with: build args over the
// defaults of ARGs declared before FROM and in the stage.
func metaArgEnv(pf *Patchfile, buildArgs map[string]string) shell.EnvGetter {
	var env []string
	add := func(k, v string) {
		if value, ok := buildArgs[k]; ok {
			v = value
		}
		env = append(env, k+"="+v)
	}
	for _, a := range pf.MetaArgs {
		for _, kv := range a.Args {
			add(kv.Key, kv.ValueString())
		}
	}
	return shell.EnvsFromSlice(env)
}

// appShipsDependencies returns the DEPS manifests and dependency folders
// the APP sources would copy.
func appShipsDependencies(pf *Patchfile, files []ContextFile, depsPatterns []string) []string {
	inApp := func(p string) bool {
		for _, src := range pf.App.Sources {
			if src == "." || p == src || strings.HasPrefix(p, strings.TrimSuffix(src, "/")+"/") {
				return !excludedByApp(pf.App.Excludes, p, src)
			}
		}
		return false
	}
	var out []string
	for _, f := range files {
		if !inApp(f.Path) {
			continue
		}
		base := path.Base(f.Path)
		if f.Mode.IsDir() && slices.Contains(dependencyFolders, base) {
			out = append(out, f.Path+"/")
			continue
		}
		for _, p := range depsPatterns {
			if ok, _ := patternmatcher.Matches(f.Path, []string{p}); ok && !f.Mode.IsDir() {
				out = append(out, f.Path)
				break
			}
		}
	}
	return out
}

func excludedByApp(excludes []string, p, src string) bool {
	if len(excludes) == 0 {
		return false
	}
	rel := p
	if src != "." {
		rel = strings.TrimPrefix(p, strings.TrimSuffix(src, "/")+"/")
	}
	ok, _ := patternmatcher.Matches(rel, excludes)
	return ok
}

// ignoreExcludesNothing reports a .dockerignore whose patterns match no
// entry of the context, or "".
func ignoreExcludesNothing(ctx context.Context, cs ContextSource) string {
	patterns, err := cs.IgnorePatterns(ctx)
	if err != nil || len(patterns) == 0 {
		return ""
	}
	all, err := cs.List(ctx, true)
	if err != nil {
		return ""
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return ""
	}
	for _, f := range all {
		if ok, _ := pm.MatchesOrParentMatches(f.Path); ok {
			return ""
		}
	}
	return fmt.Sprintf(".dockerignore has %d patterns and none matches a file of the build context: check them (they are relative to the context root)", len(patterns))
}
