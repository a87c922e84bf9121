package convert

import (
	"maps"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/patchfile/patchfile/frontend/patchfile"
)

// Scope is what the words of a stage's instructions expand with, as a
// Dockerfile scopes its variables: the image's ENV (its base's, then the
// stage's own), then the ARGs the stage declared, a build arg over the
// default, a bare ARG taking the value of the ARG of that name before FROM
// or of a platform ARG. The ARGs before FROM are in scope for FROM (and
// PATCH) only (FromScope).
//
// The conversion and the checks and outline read a Patchfile's variables
// through it, so they cannot disagree. The checks know no base image: for
// them a word that names a variable the stage did not set may be the base
// image's ENV, and Known says it cannot be expanded.
type Scope struct {
	lex       *shell.Lex
	buildArgs map[string]string
	// meta are the values of the ARGs before FROM; platform the platform
	// ARGs (nil when not known: the checks).
	meta, platform map[string]string
	// env is the image's ENV, KEY=VALUE; baseKnown tells whether it
	// started from the base image's.
	env       []string
	baseKnown bool
	args      map[string]string // ARGs declared, and their values
	order     []string          // declaration order of args
}

// MetaArgs are the values of the ARGs declared before the first FROM,
// build args over their defaults, which may name platform ARGs.
func MetaArgs(pf *patchfile.File, lex *shell.Lex, buildArgs, platform map[string]string) (map[string]string, error) {
	s := FromScope(pf, lex, buildArgs, nil, platform)
	for _, a := range pf.MetaArgs {
		if _, err := s.Declare(a); err != nil {
			return nil, err
		}
	}
	meta := map[string]string{}
	for _, a := range pf.MetaArgs {
		for _, kv := range a.Args {
			if v, ok := s.args[kv.Key]; ok {
				meta[kv.Key] = v
			}
		}
	}
	return meta, nil
}

// FromScope is what FROM expands with: the platform ARGs and the ARGs
// before FROM (meta, from MetaArgs; nil while MetaArgs computes them).
func FromScope(pf *patchfile.File, lex *shell.Lex, buildArgs, meta, platform map[string]string) *Scope {
	s := NewScope(lex, buildArgs, meta, platform)
	for _, k := range slices.Sorted(maps.Keys(platform)) {
		s.set(k, platform[k])
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		s.set(k, meta[k])
	}
	return s
}

// NewScope is a stage's scope after its FROM: no ARG declared yet, and
// no ENV until SetBase gives the base image's.
func NewScope(lex *shell.Lex, buildArgs, meta, platform map[string]string) *Scope {
	return &Scope{lex: lex, buildArgs: buildArgs, meta: meta, platform: platform, args: map[string]string{}}
}

// SetBase starts the ENV from the base image's (or the stage's FROM
// stage's); a scope without one cannot tell a variable its base image
// sets from one that is not set.
func (s *Scope) SetBase(env []string) {
	s.env, s.baseKnown = slices.Clone(env), true
}

// Env is the image's ENV, KEY=VALUE.
func (s *Scope) Env() []string { return slices.Clone(s.env) }

// Declare brings an ARG instruction's names into scope and returns them
// as KEY=VALUE in order (the dependency hash records them). A name with
// no build arg, no default, no ARG before FROM and no platform value is
// not declared, as in a Dockerfile.
func (s *Scope) Declare(cmd *instructions.ArgCommand) ([]string, error) {
	var out []string
	for _, kv := range cmd.Args {
		value, ok := s.buildArgs[kv.Key]
		if !ok && kv.Value != nil {
			v, err := s.Expand(*kv.Value)
			if err != nil {
				return nil, err
			}
			value, ok = v, true
		}
		if !ok {
			value, ok = s.meta[kv.Key]
		}
		if !ok {
			value, ok = s.platform[kv.Key]
		}
		if !ok {
			continue
		}
		s.set(kv.Key, value)
		out = append(out, kv.Key+"="+value)
	}
	return out, nil
}

func (s *Scope) set(k, v string) {
	if _, seen := s.args[k]; !seen {
		s.order = append(s.order, k)
	}
	s.args[k] = v
}

// SetEnv sets an ENV variable, in its place if it was set.
func (s *Scope) SetEnv(key, value string) {
	s.env = setEnv(s.env, key, value)
}

// Unset drops a variable the checks cannot know the value of (an ENV
// set from one): words that name it are then not Known.
func (s *Scope) Unset(key string) {
	s.env = slices.DeleteFunc(s.env, func(e string) bool { return strings.HasPrefix(e, key+"=") })
	delete(s.args, key)
	s.order = slices.DeleteFunc(s.order, func(k string) bool { return k == key })
}

// Getter is what expansion sees: ENV first, then the ARGs it does not
// shadow.
func (s *Scope) Getter() shell.EnvGetter {
	env := slices.Clone(s.env)
	for _, kv := range s.BuildEnv() {
		env = append(env, kv)
	}
	return shell.EnvsFromSlice(env)
}

// BuildEnv are the ARGs a RUN step sees as environment variables: those
// no ENV shadows, KEY=VALUE, in declaration order.
func (s *Scope) BuildEnv() []string {
	var out []string
	for _, k := range s.order {
		if !hasEnv(s.env, k) {
			out = append(out, k+"="+s.args[k])
		}
	}
	return out
}

// Expand substitutes the variables of one word, removing quotes; a
// variable not set expands to nothing, as in a Dockerfile.
func (s *Scope) Expand(word string) (string, error) {
	res, err := s.lex.ProcessWordWithMatches(word, s.Getter())
	if err != nil {
		return "", err
	}
	return res.Result, nil
}

// Known expands a word when the scope knows every variable it names; ok
// is false when one is not set here and the base image's ENV, which this
// scope does not know, may set it.
func (s *Scope) Known(word string) (string, bool) {
	res, err := s.lex.ProcessWordWithMatches(word, s.Getter())
	if err != nil || (len(res.Unmatched) > 0 && !s.baseKnown) {
		return "", false
	}
	return res.Result, true
}

// WithMetaArgs is the scope PATCH expands with: the stage's, and the ARGs
// before FROM it did not declare (a release reference is usually passed
// that way).
func (s *Scope) WithMetaArgs() *Scope {
	out := &Scope{lex: s.lex, buildArgs: s.buildArgs, meta: s.meta, platform: s.platform,
		env: slices.Clone(s.env), baseKnown: s.baseKnown, args: maps.Clone(s.args), order: slices.Clone(s.order)}
	for _, k := range slices.Sorted(maps.Keys(s.meta)) {
		if _, ok := out.args[k]; !ok {
			out.set(k, s.meta[k])
		}
	}
	return out
}

// ReaderScope is a stage's scope for a reader that knows no base image
// (Resolve, which the checks and the outline read), and the platform ARGs
// when it knows the platform (nil when not): the ARGs before FROM as the
// build would compute them, nothing declared yet. Step brings the stage's
// instructions into it.
func ReaderScope(pf *patchfile.File, buildArgs, platformArgs map[string]string) *Scope {
	lex := shell.NewLex(pf.Escape)
	meta, err := MetaArgs(pf, lex, buildArgs, platformArgs)
	if err != nil {
		meta = nil // the build reports it
	}
	return NewScope(lex, buildArgs, meta, platformArgs)
}

// Step brings what an ARG or ENV instruction declares into scope, as the
// conversion does (Declare, SetEnv), for a scope without the base image:
// a name whose value comes from what it cannot know (Known) is unknown
// from then on, and so are the words that name it.
func (s *Scope) Step(inst patchfile.Instruction) {
	switch inst := inst.(type) {
	case *instructions.ArgCommand:
		for _, kv := range inst.Args {
			_, overridden := s.buildArgs[kv.Key]
			if kv.Value != nil && !overridden {
				if _, ok := s.Known(*kv.Value); !ok {
					s.Unset(kv.Key)
					continue
				}
			}
			if _, err := s.Declare(&instructions.ArgCommand{Args: []instructions.KeyValuePairOptional{kv}}); err != nil {
				s.Unset(kv.Key)
			}
		}
	case *instructions.EnvCommand:
		// Every word expands with the variables from before the
		// instruction, as in the conversion (convertEnv).
		values := make([]string, len(inst.Env))
		known := make([]bool, len(inst.Env))
		for i, kv := range inst.Env {
			values[i], known[i] = s.Known(kv.Value)
		}
		for i, kv := range inst.Env {
			if known[i] {
				s.SetEnv(kv.Key, values[i])
			} else {
				s.Unset(kv.Key)
			}
		}
	}
}
