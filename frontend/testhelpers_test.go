package frontend

import (
	"context"
	"errors"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/parser"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
)

// testDigest pins the base image of test Patchfiles.
const testDigest = "sha256:4f1d3b2a8c9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"

// pinnedFrom is a valid FROM line.
const pinnedFrom = "FROM alpine@" + testDigest + "\n"

// firstLine returns the first line err is located at.
func firstLine(t *testing.T, err error) int {
	t.Helper()
	var le *parser.LocationError
	require.True(t, errors.As(err, &le), "error has no location: %v", err)
	require.NotEmpty(t, le.Locations)
	require.NotEmpty(t, le.Locations[0])
	return le.Locations[0][0].Start.Line
}

// amd64 is the platform of every conversion test.
var amd64 = fake.Amd64

// convertText parses and converts a Patchfile for linux/amd64 with the
// fakes.
func convertText(t *testing.T, text string, files fake.Context, args map[string]string) (*convert.Result, *llb.SourceMap, error) {
	t.Helper()
	pf, err := patchfile.Parse([]byte(text))
	require.NoError(t, err)
	sm := llb.NewSourceMap(nil, "Patchfile", patchfile.Language, []byte(text))
	opt := convert.Opt{TargetPlatform: &amd64, MetaResolver: &fake.Resolver{}, SourceMap: sm, Context: files}
	opt.BuildArgs = args
	res, err := convert.Convert(context.Background(), pf, opt)
	return res, sm, err
}
