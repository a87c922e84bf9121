package convert

import (
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
)

func arg(key string, value ...string) *instructions.ArgCommand {
	kv := instructions.KeyValuePairOptional{Key: key}
	if len(value) > 0 {
		kv.Value = &value[0]
	}
	return &instructions.ArgCommand{Args: []instructions.KeyValuePairOptional{kv}}
}

// TestScope: a stage's variables as a Dockerfile scopes them, for the
// conversion (the base image's ENV known) and for the checks (not).
func TestScope(t *testing.T) {
	lex := shell.NewLex('\\')
	meta := map[string]string{"DIR": "api", "REL": "r/a:release"}
	platform := map[string]string{"TARGETARCH": "arm64"}
	s := NewScope(lex, map[string]string{"OVER": "build-arg"}, meta, platform)
	s.SetBase([]string{"PATH=/bin", "HOME=/root"})

	got, err := s.Expand("${DIR}/x")
	require.NoError(t, err)
	require.Equal(t, "/x", got, "an ARG before FROM is not in a stage unless declared")
	for _, a := range []*instructions.ArgCommand{arg("DIR"), arg("OVER", "default"), arg("TARGETARCH"), arg("NONE"), arg("V", "arg")} {
		_, err := s.Declare(a)
		require.NoError(t, err)
	}
	s.SetEnv("V", "env")
	for word, want := range map[string]string{
		"${DIR}/x":      "api/x",     // a bare ARG takes the one before FROM
		"${OVER}":       "build-arg", // a build arg over the default
		"${TARGETARCH}": "arm64",     // a platform ARG
		"${V}":          "env",       // ENV over an ARG of its name
		"${HOME}":       "/root",     // the base image's ENV
		"${NONE}":       "",          // declared with no value: not set
	} {
		got, err := s.Expand(word)
		require.NoError(t, err)
		require.Equal(t, want, got, word)
	}
	require.Equal(t, []string{"DIR=api", "OVER=build-arg", "TARGETARCH=arm64"}, s.BuildEnv(), "a RUN sees the ARGs no ENV shadows")
	got, ok := s.Known("${UNSET}x")
	require.True(t, ok, "with the base image known, an unset variable is empty")
	require.Equal(t, "x", got)
	ref, err := s.WithMetaArgs().Expand("${REL}")
	require.NoError(t, err)
	require.Equal(t, "r/a:release", ref, "PATCH sees the ARGs before FROM")

	checks := NewScope(lex, nil, meta, nil)
	_, ok = checks.Known("${HOME}/x")
	require.False(t, ok, "without the base image, a variable the stage did not set is not known")
	_, err = checks.Declare(arg("TARGETARCH"))
	require.NoError(t, err)
	_, ok = checks.Known("${TARGETARCH}")
	require.False(t, ok, "nor a platform ARG, when the platform is not known")
}

// TestMetaArgs: the ARGs before FROM, build args over defaults, defaults
// naming the platform ARGs and earlier ARGs.
func TestMetaArgs(t *testing.T) {
	pf, err := patchfile.Parse([]byte("ARG ARCH=${TARGETARCH}\nARG BASE=img-${ARCH}\nARG OVER=x\nARG BARE\n" + fake.PinnedFrom + "APP . /app\n"))
	require.NoError(t, err)
	meta, err := MetaArgs(pf, shell.NewLex('\\'), map[string]string{"OVER": "y"}, map[string]string{"TARGETARCH": "amd64"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"ARCH": "amd64", "BASE": "img-amd64", "OVER": "y"}, meta)
}

// TestReaderScope: for a reader without the base image, what comes from a
// variable it cannot know is unknown too; the rest is the build's scope.
func TestReaderScope(t *testing.T) {
	pf, err := patchfile.Parse([]byte("ARG DIR=api\n" + fake.PinnedFrom + "APP . /app\n"))
	require.NoError(t, err)
	s := ReaderScope(pf, map[string]string{"OVER": "web"}, nil)
	for _, inst := range []patchfile.Instruction{
		arg("DIR"), arg("FROMBASE", "${HOME}/x"), arg("OVER", "${HOME}"),
		&instructions.EnvCommand{Env: instructions.KeyValuePairs{{Key: "A", Value: "${DIR}"}, {Key: "B", Value: "${A}-${PATH}"}}},
	} {
		s.Step(inst)
	}
	for word, want := range map[string]string{"${DIR}": "api", "${OVER}": "web", "${A}": "api"} {
		got, ok := s.Known(word)
		require.True(t, ok, word)
		require.Equal(t, want, got, word)
	}
	for _, word := range []string{"${FROMBASE}", "${B}", "${HOME}"} {
		_, ok := s.Known(word)
		require.False(t, ok, "%s comes from the base image's ENV", word)
	}
}
