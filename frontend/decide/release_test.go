package decide

import (
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
