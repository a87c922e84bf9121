package frontend

import (
	"context"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/patchfile/patchfile/frontend/convert"
	"github.com/patchfile/patchfile/frontend/internal/fake"
	"github.com/patchfile/patchfile/frontend/patchfile"
	"github.com/stretchr/testify/require"
)

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
