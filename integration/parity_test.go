package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDockerfileParity runs the same instructions through BuildKit's
// Dockerfile frontend and the Patchfile frontend, in process on the same
// builder, and compares what a RUN step sees: variables (ARGs before FROM,
// declared or not in the stage, build args, ENV over ARG, the platform
// ARGs), the working directory, and its mounts (a secret by source, a
// cache mount). Where a Patchfile shares an instruction with a
// Dockerfile, it must mean the same.
func TestDockerfileParity(t *testing.T) {
	const run = `RUN --mount=type=secret,id=tok,target=/run/tok --mount=type=secret,source=npmrc,target=/root/.npmrc ` +
		`--mount=type=cache,target=/cache,id=parity sh -c 'echo "A=$A B=$B C=$C D=$D E=$E ARCH=$TARGETARCH PWD=$(pwd)" > /seen; ` +
		`cat /run/tok /root/.npmrc >> /seen; echo cached > /cache/x; ls /cache >> /seen'`
	cases := []struct {
		name       string
		meta       string // before FROM, after ARG BASE
		stage      string // after FROM, before WORKDIR
		buildArgs  map[string]string
		wantInSeen string
	}{
		{name: "an ARG before FROM is not in the stage unless declared", meta: "ARG A=meta\nARG B=metab",
			stage: "ARG A", wantInSeen: "A=meta B= "},
		{name: "build args over defaults", meta: "ARG A=meta", stage: "ARG A\nARG B=stage",
			buildArgs: map[string]string{"A": "argA", "B": "argB"}, wantInSeen: "A=argA B=argB "},
		{name: "ENV over an ARG of its name, and expanded with it", stage: "ARG C=arg\nENV C=env D=${C}-d",
			wantInSeen: "C=env D=arg-d "},
		{name: "the platform ARGs", stage: "ARG TARGETARCH\nARG E=${TARGETARCH}", wantInSeen: "E=amd64 ARCH=amd64"},
		{name: "a variable in WORKDIR", stage: "ARG W=sub", wantInSeen: "PWD=/w/sub"},
	}
	secrets := map[string][]byte{"tok": []byte("token\n"), "npmrc": []byte("//registry.example/:_authToken=x\n")}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			head := "ARG BASE\n" + tc.meta + "\nFROM ${BASE}\n" + tc.stage + "\nWORKDIR /w/${W}\n"
			writeTree(t, dir, map[string]file{
				"Patchfile":  {content: head + "DEPS deps.txt\n" + run + "\nAPP . /app\n"},
				"Dockerfile": {content: head + "COPY deps.txt ./\n" + run + "\nCOPY . /app\n"},
				"deps.txt":   {content: "dep\n"},
			})
			args := withArgs(map[string]string{"BASE": env.base, "PATCH": ""}, tc.buildArgs)
			seen := map[string]string{}
			for _, fe := range []struct {
				name string
				b    build
			}{
				{"Dockerfile", build{file: "Dockerfile", dockerfileFrontend: true}},
				{"Patchfile", build{}},
			} {
				b := fe.b
				b.dir, b.args, b.secrets = dir, args, secrets
				b.output = env.stack.Ref("parity/"+strings.ToLower(fe.name), fmt.Sprintf("case%d", i))
				res, err := buildInProcess(t, b)
				require.NoError(t, err, "%s: %s", fe.name, res.output)
				seen[fe.name] = filesystem(t, pullImage(t, b.output+"@"+res.digest))["seen"].Content
			}
			require.Equal(t, seen["Dockerfile"], seen["Patchfile"], "a RUN step sees the same in both")
			require.Contains(t, seen["Patchfile"], tc.wantInSeen)
			require.Contains(t, seen["Patchfile"], "token\n//registry.example/:_authToken=x\nx\n", "both secrets, by id and by source, and the cache mount")
		})
	}
}
