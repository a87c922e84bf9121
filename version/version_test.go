package version

import "testing"

func TestString(t *testing.T) {
	defer func(v, r string) { Version, Revision = v, r }(Version, Revision)
	for _, tc := range []struct{ version, revision, want string }{
		{"dev", "", "patchfile-frontend dev"},
		{"1.2.3", "0123abc", "patchfile-frontend 1.2.3 0123abc"},
	} {
		Version, Revision = tc.version, tc.revision
		if got := String(); got != tc.want {
			t.Errorf("String() with %q, %q = %q, want %q", tc.version, tc.revision, got, tc.want)
		}
	}
}
