package frontend

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/patternmatcher"
	"github.com/patchfile/patchfile/frontend/buildcontext"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/pkg/errors"
)

// CheckContext is what the checks read of the build context: its files
// listed, not read, so that a check costs no build.
type CheckContext interface {
	// List lists the whole context without reading file contents;
	// withIgnored includes what .dockerignore excludes.
	List(ctx context.Context, withIgnored bool) ([]buildcontext.File, error)
	// IgnorePatterns returns the .dockerignore (or Patchfile.dockerignore) patterns.
	IgnorePatterns(ctx context.Context) ([]string, error)
}

// checkRule is one check: its name (what `# check=skip=` names), the
// one-line description `--call=check` prints, and where its documentation
// is; as BuildKit's linter rules are values.
type checkRule struct {
	Name, Description, URL string
}

// checksDoc is where the rules are documented.
const checksDoc = "https://github.com/patchfile/patchfile/blob/main/docs/operations.md#checking-a-patchfile-without-building"

// The check rules: what `docker buildx build --call=check` reports,
// without building anything (it reads image references and lists the
// context). checkRules lists them all.
var (
	ruleUnpinnedFrom          = checkRule{"UnpinnedFrom", "FROM must pin its image by digest", checksDoc}
	rulePatchWithoutCandidate = checkRule{"PatchWithoutCandidate", "without PATCH every deploy is a full build", checksDoc}
	ruleDepsMatchNoFile       = checkRule{"DepsMatchNoFile", "DEPS must name files of the build context", checksDoc}
	ruleAppShipsDependencies  = checkRule{"AppShipsDependencies", "APP should ship the application, not its dependencies", checksDoc}
	ruleIgnoreExcludesNothing = checkRule{"DockerignoreExcludesNothing", ".dockerignore should exclude something", checksDoc}
	ruleUnusedBuildStage      = checkRule{"UnusedBuildStage", "a build stage should make something the image ships", checksDoc}
	ruleAppShipsBuildDeps     = checkRule{"AppShipsBuildDependencies", "APP --from should ship a build's outputs, not its build dependencies", checksDoc}
	ruleCarryWithoutCache     = checkRule{"CarryWithoutCacheMount", "CARRY should name a cache mount of a build command", checksDoc}

	checkRules = []checkRule{ruleUnpinnedFrom, rulePatchWithoutCandidate, ruleDepsMatchNoFile, ruleAppShipsDependencies,
		ruleIgnoreExcludesNothing, ruleUnusedBuildStage, ruleAppShipsBuildDeps, ruleCarryWithoutCache}
)

// dependencyFolders are what package managers install into an app tree; a
// context that has them ships the builder's copy instead of the stage's.
var dependencyFolders = []string{"node_modules", ".venv", "venv", "__pycache__", "bower_components", ".bundle"}

// Check runs the check rules on a Patchfile and its build context.
func Check(ctx context.Context, src *dockerui.Source, pf *patchfile.File, opt convert.Opt, cs CheckContext) (*lint.LintResults, error) {
	cfg, err := checkConfig(src.Data, opt.BuildArgs)
	if err != nil {
		return nil, err
	}
	return runChecks(ctx, cfg, src, pf, opt, cs)
}

// runChecks is Check with the checks' options read.
func runChecks(ctx context.Context, cfg *linter.Config, src *dockerui.Source, pf *patchfile.File, opt convert.Opt, cs CheckContext) (*lint.LintResults, error) {
	results := &lint.LintResults{}
	idx := results.AddSource(src.SourceMap)
	skipped := func(rule checkRule) bool { return cfg.SkipAll || slices.Contains(cfg.SkipRules, rule.Name) }
	warn := func(rule checkRule, detail string, loc []parser.Range) {
		if !skipped(rule) {
			results.AddWarning(rule.Name, rule.Description, rule.URL, detail, idx, loc)
		}
	}
	res := convert.Resolve(pf, opt.BuildArgs, opt.PlatformArgs())
	for _, s := range res.Stages {
		if s.Base == "" || s.BaseStage != nil {
			continue // unknown, or FROM <an earlier stage>
		}
		// A build stage's base too: it makes what ships.
		if _, err := convert.PinnedImage(s.Base); err != nil {
			warn(ruleUnpinnedFrom, err.Error(), s.From.Location())
		}
	}
	for _, s := range res.Stages {
		if !s.Built {
			warn(ruleUnusedBuildStage, fmt.Sprintf("build stage %s is not built: no APP --from=%s ships its outputs, and no stage that is built starts from it; ship them from the final stage (APP --from=%s <path>... <dest>) or remove the stage", s.Name, s.Name, s.Name), s.From.Location())
		}
		for _, inst := range s.Carry {
			for _, p := range carriedWithoutCache(s, inst) {
				warn(ruleCarryWithoutCache, fmt.Sprintf("CARRY %s: no build command of stage %s mounts a cache there, so the build fails; mount it in the RUN that builds, after APP: RUN --mount=type=cache,target=%s <build command>", p, s.Name, p), inst.Location())
			}
		}
	}
	if detail := appShipsBuildDependencies(res); detail != "" {
		warn(ruleAppShipsBuildDeps, detail, pf.App.Location())
	}
	if _, overridden := opt.BuildArgs[convert.KeyPatchArg]; len(pf.Patch) == 0 && !overridden {
		warn(rulePatchWithoutCandidate, "no PATCH line: every deploy rebuilds and pushes the whole app layer; add PATCH <registry>/<repo>:<release tag> after APP", pf.App.Location())
	}

	files, err := cs.List(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, s := range res.Stages {
		for _, deps := range s.Deps {
			checkDeps(deps, files, warn)
		}
		if shipped := appShipsDependencies(s.App, files); len(shipped) > 0 {
			warn(ruleAppShipsDependencies, fmt.Sprintf("APP ships %s from the build context: the dependency stage provides them, and the context's copy would replace or mix with it; add them to .dockerignore or APP --exclude", strings.Join(shipped, ", ")),
				s.App.Inst.Location())
		}
	}
	if detail := ignoreExcludesNothing(ctx, cs); detail != "" && !skipped(ruleIgnoreExcludesNothing) {
		results.AddWarning(ruleIgnoreExcludesNothing.Name, ruleIgnoreExcludesNothing.Description, ruleIgnoreExcludesNothing.URL, detail, -1, nil)
	}
	return results, nil
}

// checksAsErrors runs the checks before a build when `# check=error=true`
// (or BUILDKIT_DOCKERFILE_CHECK=error=true) asks for it, as the Dockerfile
// frontend does: a finding fails the build, located at its line, before
// any step runs.
func checksAsErrors(ctx context.Context, src *dockerui.Source, pf *patchfile.File, opt convert.Opt, cs CheckContext) error {
	cfg, err := checkConfig(src.Data, opt.BuildArgs)
	if err != nil || !cfg.ReturnAsError {
		return err
	}
	res, err := runChecks(ctx, cfg, src, pf, opt, cs)
	if err != nil || len(res.Warnings) == 0 {
		return err
	}
	first := res.Warnings[0]
	hint := "skip the rule with # check=skip=" + first.RuleName
	if more := len(res.Warnings) - 1; more > 0 {
		hint = fmt.Sprintf("and %d more: run with --call=check to see them all, or skip a rule with # check=skip=<rule>", more)
	}
	err = errors.Errorf("check=error=true: %s: %s (%s)", first.RuleName, first.Detail, hint)
	if first.Location == nil || len(first.Location.Ranges) == 0 {
		return err
	}
	return parser.WithLocationOnce(err, convert.FromPBRanges(first.Location.Ranges))
}

// keyCheckArg is the build arg that sets the checks' options, as for the
// Dockerfile frontend (it wins over the Patchfile's `# check=` line).
const keyCheckArg = "BUILDKIT_DOCKERFILE_CHECK"

// checkConfig reads the checks' options as the Dockerfile frontend does:
// `# check=skip=<rule>,<rule>` (or `skip=all`) on the Patchfile's first
// lines, or the BUILDKIT_DOCKERFILE_CHECK build arg.
func checkConfig(text []byte, buildArgs map[string]string) (*linter.Config, error) {
	if v, ok := buildArgs[keyCheckArg]; ok {
		cfg, err := linter.ParseLintOptions(v)
		return cfg, errors.Wrapf(err, "%s=%s", keyCheckArg, v)
	}
	v, _, _, _ := dfparser.ParseDirective("check", text)
	cfg, err := linter.ParseLintOptions(v)
	return cfg, errors.Wrapf(err, "# check=%s", v)
}

// carriedWithoutCache returns the paths of a CARRY instruction that no
// RUN after the stage's APP mounts a cache at.
func carriedWithoutCache(s *convert.ResolvedStage, inst *patchfile.CarryInstruction) []string {
	targets := map[string]bool{}
	for _, run := range s.Runs {
		for _, m := range run.Mounts {
			if run.AfterApp && m.Type == instructions.MountTypeCache {
				targets[path.Clean(m.Target)] = true
			}
		}
	}
	var out []string
	for _, p := range inst.Paths {
		if !targets[p] {
			out = append(out, p)
		}
	}
	return out
}

// appShipsDependencies returns the dependency folders (node_modules, .venv
// and the like) an APP would copy from the context, as the build matches
// its sources and --exclude. DEPS manifests are not among them: many apps
// read theirs at run time (package.json), and shipping one is not wrong.
func appShipsDependencies(app *convert.ResolvedApp, files []buildcontext.File) []string {
	var out []string
	for _, f := range app.Shipped(files) { // a folder comes before what it holds
		if len(out) > 0 && strings.HasPrefix(f.Path, out[len(out)-1]) {
			continue
		}
		if f.Mode.IsDir() && slices.Contains(dependencyFolders, path.Base(f.Path)) {
			out = append(out, f.Path+"/")
		}
	}
	return out
}

// appShipsBuildDependencies says, or returns "", when the final APP
// --from ships a directory where the build stage's DEPS put its
// manifests: its dependency steps install there (npm ci writes
// node_modules next to package.json), so the image would carry the
// build's dependencies, dev dependencies included, unless --exclude
// leaves every dependency folder out. Read from the Patchfile alone.
func appShipsBuildDependencies(res *convert.Resolution) string {
	final := res.Stages[len(res.Stages)-1]
	stage := res.Stage(final.App.Inst.From)
	if stage == nil || !final.App.Known {
		return ""
	}
	var manifests []string
	for _, d := range stage.Deps {
		for _, src := range d.Sources {
			manifests = append(manifests, path.Join(d.Workdir, path.Dir(path.Clean("/"+src))))
		}
	}
	for _, src := range final.App.Sources {
		src := path.Clean("/" + src)
		for _, dir := range manifests {
			if dir != src && !strings.HasPrefix(dir, strings.TrimSuffix(src, "/")+"/") {
				continue
			}
			var kept []string
			for _, f := range dependencyFolders {
				if rel := strings.TrimPrefix(path.Join(strings.TrimPrefix(dir, src), f), "/"); !final.App.Excluded(rel) && !final.App.Excluded(f) {
					kept = append(kept, f)
				}
			}
			if len(kept) == len(dependencyFolders) {
				return fmt.Sprintf("APP --from=%s ships %s, where the build stage's DEPS put its manifests (%s) and its dependency steps install: the image would carry the build's dependencies (%s); ship the build's outputs (e.g. %s) or add --exclude=%s", stage.Name, src, dir, strings.Join(dependencyFolders[:2], ", "), path.Join(dir, "dist"), dependencyFolders[0])
			}
		}
	}
	return ""
}

// ignoreExcludesNothing reports a .dockerignore whose patterns match no
// entry of the context, or "".
func ignoreExcludesNothing(ctx context.Context, cs CheckContext) string {
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

// checkDeps reports the DEPS sources that match no file of the context.
// A source with a variable only the build knows (the base image's ENV, a
// platform ARG) is not checked: no finding rather than a false one.
func checkDeps(deps convert.ResolvedDeps, files []buildcontext.File, warn func(rule checkRule, detail string, loc []parser.Range)) {
	for _, p := range deps.Sources {
		if !convert.AnyMatch(p, files) {
			warn(ruleDepsMatchNoFile, fmt.Sprintf("DEPS %s matches no file in the build context (after .dockerignore): the dependency stage would fail", p), deps.Inst.Location())
		}
	}
}
