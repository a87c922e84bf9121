package patchfile

import (
	"path"
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/util/suggest"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/pkg/errors"
)

// Instruction is one typed Patchfile instruction. The instructions a
// Dockerfile also has are BuildKit's own types (*instructions.RunCommand,
// *instructions.EnvCommand, ...); DEPS, APP, PATCH and FROM are ours.
type Instruction interface {
	Name() string
	Location() []parser.Range
}

// located is the base of the Patchfile-only instructions.
type located struct {
	name     string
	original string
	location []parser.Range
}

// Name returns the instruction keyword as written.
func (l *located) Name() string { return l.name }

// Location returns the instruction's line range.
func (l *located) Location() []parser.Range { return l.location }

// String returns the instruction as written.
func (l *located) String() string { return l.original }

// FromInstruction names the pinned base image of a stage.
//
//	FROM [--platform=<platform>] <image>@sha256:<digest> [AS <name>]
type FromInstruction struct {
	located
	Image    string
	Platform string
	// Stage is the stage's name (AS <name>), "" for none.
	Stage string
}

// DepsInstruction copies dependency manifests from the context into the
// working directory of the dependency stage. Only these files are visible to
// the stage's RUN steps, and their contents key the stage.
//
//	DEPS [--chown=<user>:<group>] [--chmod=<perms>] <file>...
type DepsInstruction struct {
	located
	Sources []string
	Chown   string
	Chmod   string
}

// AppInstruction names the application files. In the final stage they are
// shipped as one layer of their own (and, in patch builds, as one diff
// layer against a release); in a build stage they are the sources its
// build commands run over.
//
//	APP [--from=<build stage>] [--chown=<user>:<group>] [--chmod=<perms>] [--exclude=<pattern>]... <src>... <dest>
type AppInstruction struct {
	located
	// From names the build stage the sources are paths of (relative to
	// its root); "" for the build context.
	From     string
	Sources  []string
	Dest     string
	Chown    string
	Chmod    string
	Excludes []string
}

// PatchInstruction lists candidate release images to patch, first match wins.
//
//	PATCH <image>[:tag|@digest]...
type PatchInstruction struct {
	located
	Refs []string
}

// CarryInstruction names cache mounts of a build stage's build commands
// whose contents a release carries to the builds that patch it, so that
// a cold builder compiles incrementally (Go's build cache, tsc's
// .tsbuildinfo, Next's .next/cache): each path is the target of a
// --mount=type=cache of a RUN after the stage's APP.
//
//	CARRY <path>...
type CarryInstruction struct {
	located
	Paths []string
}

// patchfileInstructions are the keywords a Patchfile accepts, for "did you mean".
var patchfileInstructions = []string{
	"FROM", "ARG", "ENV", "WORKDIR", "USER", "DEPS", "RUN", "APP", "CARRY", "PATCH",
	"EXPOSE", "LABEL", "CMD", "ENTRYPOINT", "STOPSIGNAL", "HEALTHCHECK",
}

// unsupportedInstructions are Dockerfile instructions a Patchfile leaves out,
// with what to write instead.
var unsupportedInstructions = map[string]string{
	"COPY":       "COPY is not a Patchfile instruction: use DEPS <file>... for dependency manifests and APP <src>... <dest> for application files",
	"ADD":        "ADD is not a Patchfile instruction: use DEPS <file>... for dependency manifests and APP <src>... <dest> for application files",
	"SHELL":      "SHELL is not supported in a Patchfile: write RUN [\"<shell>\", \"-c\", \"...\"] in JSON form instead",
	"VOLUME":     "VOLUME is not supported in a Patchfile: declare volumes where the container runs",
	"ONBUILD":    "ONBUILD is not supported in a Patchfile: a Patchfile image is a final image, not a base",
	"MAINTAINER": "MAINTAINER is not supported: write LABEL org.opencontainers.image.authors=\"<name>\"",
}

// parseInstruction types one node, locating any error at the node's lines.
func parseInstruction(node *parser.Node, escape rune) (inst Instruction, err error) {
	defer func() {
		if err != nil {
			err = parser.WithLocationOnce(err, node.Location())
		}
	}()
	switch node.Command {
	case "FROM":
		return parseFrom(node, escape)
	case "DEPS":
		return parseDeps(node, escape)
	case "APP":
		return parseApp(node, escape)
	case "PATCH":
		return parsePatch(node, escape)
	case "CARRY":
		return parseCarry(node, escape)
	case "ARG", "ENV", "WORKDIR", "USER", "RUN", "EXPOSE", "LABEL", "CMD", "ENTRYPOINT", "STOPSIGNAL", "HEALTHCHECK":
		cmd, err := instructions.ParseCommand(node.Dockerfile)
		if err != nil {
			return nil, unwrapLocation(err)
		}
		if run, ok := cmd.(*instructions.RunCommand); ok && len(run.Files) > 0 {
			return nil, errors.New("RUN with a heredoc is not supported in a Patchfile: write the script inline or ship it with DEPS")
		}
		return cmd, nil
	}
	if msg, ok := unsupportedInstructions[node.Command]; ok {
		return nil, errors.New(msg)
	}
	return nil, suggest.WrapError(errors.Errorf("unknown instruction %s: a Patchfile knows %s", node.Dockerfile.Value, strings.Join(patchfileInstructions, ", ")), node.Command, patchfileInstructions, false)
}

// unwrapLocation drops BuildKit's own location so ours is the only one.
func unwrapLocation(err error) error {
	var le *dfparser.LocationError
	if errors.As(err, &le) {
		return le.Unwrap()
	}
	return err
}

func newLocated(node *parser.Node) located {
	return located{name: node.Dockerfile.Value, original: strings.TrimSpace(node.Original()), location: node.Location()}
}

// stageName is what a stage may be called, as in a Dockerfile.
var stageName = regexp.MustCompile(`^[a-z][a-z0-9\-_.]*$`)

func parseFrom(node *parser.Node, escape rune) (*FromInstruction, error) {
	fl := instructions.NewBFlagsWithArgs(node.Flags)
	platform := fl.AddString("platform", "")
	if err := fl.Parse(); err != nil {
		return nil, err
	}
	words := parser.Words(node.Rest, escape)
	switch {
	case len(words) == 0:
		return nil, errors.New("FROM needs an image pinned by digest: FROM <image>@sha256:<digest>")
	case len(words) == 3 && strings.EqualFold(words[1], "AS"):
		if !stageName.MatchString(words[2]) {
			return nil, errors.Errorf("FROM ... AS %s: a stage name starts with a lower-case letter, then lower-case letters, digits, '-', '_' or '.' (e.g. AS build)", words[2])
		}
		return &FromInstruction{located: newLocated(node), Image: words[0], Platform: platform.Value, Stage: words[2]}, nil
	case len(words) > 1:
		return nil, errors.Errorf("FROM takes one image, got %d words: FROM <image>@sha256:<digest> [AS <name>]", len(words))
	}
	return &FromInstruction{located: newLocated(node), Image: words[0], Platform: platform.Value}, nil
}

func parseDeps(node *parser.Node, escape rune) (*DepsInstruction, error) {
	fl := instructions.NewBFlagsWithArgs(node.Flags)
	chown := fl.AddString("chown", "")
	chmod := fl.AddString("chmod", "")
	if err := fl.Parse(); err != nil {
		return nil, err
	}
	words := parser.Words(node.Rest, escape)
	if len(words) == 0 {
		return nil, errors.New("DEPS needs at least one file: DEPS package.json package-lock.json")
	}
	return &DepsInstruction{located: newLocated(node), Sources: words, Chown: chown.Value, Chmod: chmod.Value}, nil
}

func parseApp(node *parser.Node, escape rune) (*AppInstruction, error) {
	fl := instructions.NewBFlagsWithArgs(node.Flags)
	from := fl.AddString("from", "")
	chown := fl.AddString("chown", "")
	chmod := fl.AddString("chmod", "")
	exclude := fl.AddStrings("exclude")
	if err := fl.Parse(); err != nil {
		return nil, err
	}
	words := parser.Words(node.Rest, escape)
	if len(words) < 2 {
		return nil, errors.New("APP needs sources and a destination: APP <src>... <dest>, e.g. APP . /app")
	}
	return &AppInstruction{
		located:  newLocated(node),
		From:     from.Value,
		Sources:  words[:len(words)-1],
		Dest:     words[len(words)-1],
		Chown:    chown.Value,
		Chmod:    chmod.Value,
		Excludes: exclude.StringValues,
	}, nil
}

func parseCarry(node *parser.Node, escape rune) (*CarryInstruction, error) {
	fl := instructions.NewBFlagsWithArgs(node.Flags)
	if err := fl.Parse(); err != nil {
		return nil, err
	}
	words := parser.Words(node.Rest, escape)
	if len(words) == 0 {
		return nil, errors.New("CARRY needs the target of a cache mount: CARRY /root/.cache/go-build, with RUN --mount=type=cache,target=/root/.cache/go-build <build command> after APP")
	}
	for _, w := range words {
		if !path.IsAbs(w) || path.Clean(w) != w || w == "/" {
			return nil, errors.Errorf("CARRY %s: name the cache mount by its target, an absolute path written as RUN --mount=type=cache,target= writes it (e.g. CARRY /root/.cache/go-build)", w)
		}
	}
	return &CarryInstruction{located: newLocated(node), Paths: words}, nil
}

func parsePatch(node *parser.Node, escape rune) (*PatchInstruction, error) {
	fl := instructions.NewBFlagsWithArgs(node.Flags)
	if err := fl.Parse(); err != nil {
		return nil, err
	}
	words := parser.Words(node.Rest, escape)
	if len(words) == 0 {
		return nil, errors.New("PATCH needs at least one release image: PATCH <registry>/<repo>:<tag>")
	}
	return &PatchInstruction{located: newLocated(node), Refs: words}, nil
}
