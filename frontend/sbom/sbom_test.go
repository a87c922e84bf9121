package sbom

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func statement(t *testing.T, doc map[string]any) []byte {
	t.Helper()
	dt, err := json.Marshal(map[string]any{"_type": "https://in-toto.io/Statement/v0.1", "predicateType": PredicateSPDX, "predicate": doc})
	require.NoError(t, err)
	return dt
}

func doc(ns string, pkgs []map[string]any, files []map[string]any, rels []map[string]any) map[string]any {
	return map[string]any{"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "documentNamespace": ns,
		"creationInfo": map[string]any{"created": ns}, "packages": pkgs, "files": files, "relationships": rels}
}

func pkg(id, name, version, evidence string) map[string]any {
	return map[string]any{"SPDXID": id, "name": name, "versionInfo": version,
		"sourceInfo": "acquired package info from installed node module manifest file: " + evidence}
}

func TestNames(t *testing.T) {
	d, err := ReadStatement(statement(t, doc("release", []map[string]any{pkg("SPDXRef-a", "a", "1", "/app/node_modules/a/package.json")},
		[]map[string]any{{"SPDXID": "SPDXRef-f", "fileName": "/usr/lib/os-release", "comment": "layerID: sha256:1"}}, nil)))
	require.NoError(t, err)
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{"app/src/index.js"}, ""},
		{[]string{"app/node_modules/a/package.json"}, "app/node_modules/a/package.json"},
		// A directory names what is below it.
		{[]string{"app/node_modules/a"}, "app/node_modules/a"},
		{[]string{"app/node_modules"}, "app/node_modules"},
		// A sibling whose name starts the same is another path.
		{[]string{"app/node_modules/ab"}, ""},
		{[]string{"app/node_modules/a/package"}, ""},
		{[]string{"usr/lib/os-release"}, "usr/lib/os-release"},
		{[]string{"app/x", "usr/lib"}, "usr/lib"},
		{[]string{"/"}, "/"},
	} {
		got, ok := d.Names(tc.paths)
		require.Equal(t, tc.want != "", ok, "%v", tc.paths)
		require.Equal(t, tc.want, got, "%v", tc.paths)
	}
}

func TestPatched(t *testing.T) {
	rel, err := ReadStatement(statement(t, doc("release",
		[]map[string]any{pkg("SPDXRef-a", "a", "1", "/app/node_modules/a/package.json")},
		[]map[string]any{{"SPDXID": "SPDXRef-fa", "fileName": "/app/node_modules/a/package.json", "comment": "layerID: sha256:1"}},
		[]map[string]any{{"spdxElementId": "SPDXRef-DOCUMENT", "relatedSpdxElement": "SPDXRef-a", "relationshipType": "DESCRIBES"}})))
	require.NoError(t, err)
	scan, err := ReadStatement(statement(t, doc("scan",
		[]map[string]any{pkg("SPDXRef-v", "vendored", "2.0.0", "/app/vendor/v/package.json")},
		[]map[string]any{{"SPDXID": "SPDXRef-fv", "fileName": "/app/vendor/v/package.json"}},
		[]map[string]any{{"relationshipType": "DESCRIBES", "spdxElementId": "SPDXRef-DOCUMENT", "relatedSpdxElement": "SPDXRef-v"}})))
	require.NoError(t, err)
	require.Equal(t, 0, rel.Unplaced())
	require.Equal(t, 1, scan.Unplaced())

	out, err := Patched(rel, scan)
	require.NoError(t, err)
	require.Equal(t, []string{"a@1", "vendored@2.0.0"}, out.Packages())
	st, err := out.Statement()
	require.NoError(t, err)
	back, err := ReadStatement(st)
	require.NoError(t, err)
	require.Equal(t, out.Packages(), back.Packages())
	require.JSONEq(t, `"scan"`, string(back.fields["documentNamespace"]), "the patched SBOM has the scan's header")
	var rels []any
	require.NoError(t, json.Unmarshal(back.fields["relationships"], &rels))
	require.Len(t, rels, 2)
	var files []any
	require.NoError(t, json.Unmarshal(back.fields["files"], &files))
	require.Len(t, files, 2)

	// The same relationship twice, in another key order, is one.
	again, err := Patched(out, scan)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(again.fields["relationships"], &rels))
	require.Len(t, rels, 2)

	// One id for two different packages: no union.
	clash, err := ReadStatement(statement(t, doc("clash", []map[string]any{pkg("SPDXRef-a", "other", "9", "/x/package.json")}, nil, nil)))
	require.NoError(t, err)
	_, err = Patched(rel, clash)
	require.ErrorContains(t, err, "both have packages SPDXRef-a")
}

func TestReadStatementRefuses(t *testing.T) {
	for _, dt := range []string{
		`not json`,
		`{"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`,
		`{"predicateType":"https://spdx.dev/Document","predicate":{"name":"no version"}}`,
		`{"predicateType":"https://spdx.dev/Document","predicate":{"spdxVersion":"SPDX-2.3","packages":{}}}`,
	} {
		_, err := ReadStatement([]byte(dt))
		require.Error(t, err, dt)
	}
}
