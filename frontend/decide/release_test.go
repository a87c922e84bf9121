package decide

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJSONValues: the count bounds what decoding a config could build,
// strings (the file list, the inline cache) counting as one value whatever
// they hold.
func TestJSONValues(t *testing.T) {
	for in, want := range map[string]int{
		`{}`:                             1,
		`{"a":[1,2,3],"b":{"c":"d"}}`:    6,
		`{"s":"[{,,,}]\"[,"}`:            1,
		`{"history":[{},{},{}]}`:         7,
		`"a string, with [brackets] {}"`: 0,
	} {
		require.Equal(t, want, jsonValues([]byte(in)), in)
	}
}

// TestIsNotFound: an index without the build's platform is there, and not
// a first release; only a missing tag or repository is.
func TestIsNotFound(t *testing.T) {
	const ref = "registry.example/app:release"
	missing := errors.New(ref + ": not found")
	noPlatform := errors.New("no match for platform in manifest: not found")
	require.True(t, IsNotFound(missing, ref))
	require.False(t, IsNoPlatform(missing))
	require.False(t, IsNotFound(noPlatform, ref))
	require.False(t, IsNotFound(errors.New(ref+": no match for platform in manifest: not found"), ref))
	require.True(t, IsNoPlatform(noPlatform))
	require.False(t, IsNotFound(nil, ref))
}

func TestOnUnreachable(t *testing.T) {
	v, err := OnUnreachable(nil)
	require.NoError(t, err)
	require.Equal(t, OnUnreachableFail, v, "stopping is the default")
	v, err = OnUnreachable(map[string]string{KeyOnUnreachable: "full"})
	require.NoError(t, err)
	require.Equal(t, OnUnreachableFull, v)
	_, err = OnUnreachable(map[string]string{KeyOnUnreachable: "retry"})
	require.ErrorContains(t, err, "PATCH_ON_UNREACHABLE=retry: write PATCH_ON_UNREACHABLE=fail (stop when a candidate cannot be read, the default) or PATCH_ON_UNREACHABLE=full (build in full)")

	unreachable := &Decision{Reasons: []*Reason{Because(NotYetReleased, "a"), Because(Unreachable, "b", errors.New("connection refused"))}}
	deploy := Build{OnUnreachable: OnUnreachableFail, MaxShare: 50}
	require.Equal(t, "candidate b unreachable (connection refused)", unreachable.Stop(deploy).String())
	require.Nil(t, unreachable.Stop(Build{OnUnreachable: OnUnreachableFull, MaxShare: 50}))
	require.Nil(t, unreachable.Stop(Build{OnUnreachable: OnUnreachableFail, MaxShare: 0}), "a release asked for builds in full anyway")
	require.Nil(t, (&Decision{Reasons: []*Reason{Because(NotYetReleased, "a")}}).Stop(deploy), "nothing there yet is a first release")
	require.Nil(t, (&Decision{Release: &Release{}, Reasons: unreachable.Reasons}).Stop(deploy), "a patch of a later candidate goes on")
}
