package frontend

import (
	"context"
	stderrors "errors"
	"fmt"
	"testing"

	"github.com/moby/buildkit/client/llb"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
)

// lines is a location of whole lines, one range each.
func lines(ls ...int) []parser.Range {
	var out []parser.Range
	for _, l := range ls {
		out = append(out, parser.Range{Start: parser.Position{Line: l}, End: parser.Position{Line: l}})
	}
	return out
}

func TestLocations(t *testing.T) {
	first := dfparser.WithLocation(stderrors.New("first"), lines(2))
	second := dfparser.WithLocation(stderrors.New("second"), lines(4, 5))
	cases := []struct {
		name string
		err  error
		want [][]parser.Range
	}{
		{name: "joined", err: stderrors.Join(first, second), want: [][]parser.Range{lines(2), lines(4, 5)}},
		{name: "wrapped join", err: fmt.Errorf("converting: %w", stderrors.Join(first, second)), want: [][]parser.Range{lines(2), lines(4, 5)}},
		{name: "join with an unlocated error", err: stderrors.Join(stderrors.New("plain"), second), want: [][]parser.Range{lines(4, 5)}},
		{name: "one", err: first, want: [][]parser.Range{lines(2)}},
		{name: "none", err: stderrors.New("plain"), want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, locations(tc.err))
		})
	}
}

// TestLocationsOfParsePatchfile checks a real joined parse error.
func TestLocationsOfParsePatchfile(t *testing.T) {
	_, err := patchfile.Parse([]byte(fake.PinnedFrom + "RUNN a\nAPP . /app\nRUN \\\n  b\n"))
	require.Error(t, err)
	require.Equal(t, [][]parser.Range{lines(2), lines(4, 5)}, locations(err))
}

func TestWithSource(t *testing.T) {
	data := []byte(fake.PinnedFrom + "RUNN a\nAPP . /app\nRUN b\n")
	_, err := patchfile.Parse(data)
	require.Error(t, err)
	// As dockerui.ReadEntrypoint makes it: the context state and its definition.
	st := llb.Local("context")
	def, err2 := st.Marshal(context.Background())
	require.NoError(t, err2)
	sm := llb.NewSourceMap(&st, "Patchfile", patchfile.Language, data)
	sm.Definition = def
	err = withSource(err, sm)

	srcs := errdefs.Sources(err)
	require.Len(t, srcs, 2)
	var got [][2]int32
	for _, s := range srcs {
		require.Equal(t, "Patchfile", s.Info.Filename)
		require.Equal(t, data, s.Info.Data)
		require.Equal(t, patchfile.Language, s.Info.Language)
		require.NotNil(t, s.Info.Definition)
		require.Len(t, s.Ranges, 1)
		got = append(got, [2]int32{s.Ranges[0].Start.Line, s.Ranges[0].End.Line})
	}
	require.ElementsMatch(t, [][2]int32{{2, 2}, {4, 4}}, got)

	// Attaching twice adds nothing; no source map or no error is left alone.
	require.Len(t, errdefs.Sources(withSource(err, sm)), 2)
	plain := stderrors.New("plain")
	require.Equal(t, plain, withSource(plain, nil))
	require.NoError(t, withSource(nil, sm))
}

// TestCheckTarget: --target names the final stage or nothing; a build
// stage is refused at its FROM line.
func TestCheckTarget(t *testing.T) {
	pf, err := patchfile.Parse([]byte("FROM a@" + fake.TestDigest + " AS build\nFROM b@" + fake.TestDigest + " AS run\nAPP --from=build /out /app/\n"))
	require.NoError(t, err)
	for _, ok := range []string{"", "default", "run"} {
		require.NoError(t, checkTarget(pf, ok))
	}
	err = checkTarget(pf, "build")
	require.ErrorContains(t, err, "--target=build: a build stage is never exported on its own")
	require.Equal(t, 1, fake.FirstLine(t, err))
	require.ErrorContains(t, checkTarget(pf, "other"), "a Patchfile has one target, its final stage")
}
