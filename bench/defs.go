package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// The build definitions live in their own directory (buildctl's
// --local dockerfile=), not in the app, so that COPY . and APP . ship the
// same files and no definition edit ever counts as an app change.

// patchfile is the Patchfile of the benchmark app: the dependency stage sees
// the manifests and the install script only; the app goes in with APP.
const patchfile = `ARG BASE
ARG RELEASE
FROM ${BASE}
WORKDIR /app
DEPS package.json package-lock.json npm-ci.sh
RUN sh npm-ci.sh
APP . /app
PATCH ${RELEASE}
ENV NODE_ENV=production
EXPOSE 8080
CMD ["sh", "-c", "ls /app"]
`

// dockerfile is the best-practice anchor: dependency manifests first, the
// same install, then the app.
const dockerfile = `ARG BASE
FROM ${BASE}
WORKDIR /app
COPY package.json package-lock.json npm-ci.sh ./
RUN sh npm-ci.sh
COPY . /app
ENV NODE_ENV=production
EXPOSE 8080
CMD ["sh", "-c", "ls /app"]
`

// dockerfileLink is the same with COPY --link, BuildKit's fastest way to
// rebuild only the app layer.
const dockerfileLink = `ARG BASE
FROM ${BASE}
WORKDIR /app
COPY --link package.json package-lock.json npm-ci.sh ./
RUN sh npm-ci.sh
COPY --link . /app
ENV NODE_ENV=production
EXPOSE 8080
CMD ["sh", "-c", "ls /app"]
`

// writeDefs writes the three definitions into dir.
func writeDefs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, text := range map[string]string{"Patchfile": patchfile, "Dockerfile": dockerfile, "Dockerfile.link": dockerfileLink} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// editSource rewrites a text file for run n: new content of the same size,
// so exactly one file changes and its size does not. It returns the path.
func editSource(appDir, name string, n int) (string, error) {
	p := filepath.Join(appDir, filepath.FromSlash(name))
	old, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(old, byte(n)))
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:]), uint64(n)))
	data := sourceText(rng, len(old))
	copy(data, fmt.Sprintf("// edit %d\n", n))
	return name, os.WriteFile(p, data, 0o644)
}

// replaceFile gives a file size bytes of new incompressible content
// (seeded by size and n), as a rebuilt bundle or asset would be.
func replaceFile(appDir, name string, size, n int) (string, error) {
	rng := rand.New(rand.NewPCG(uint64(size), uint64(n)+1000))
	return name, os.WriteFile(filepath.Join(appDir, filepath.FromSlash(name)), randomBytes(rng, size), 0o644)
}
