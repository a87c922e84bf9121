package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// appSpec sizes a generated app. Everything is derived from Seed, so two
// runs (or two machines) build byte-identical contexts.
type appSpec struct {
	Seed int64
	// SourceFiles are JavaScript-like text files under src/, of
	// SourceMin..SourceMax bytes; they compress about 3x, like real sources.
	SourceFiles          int
	SourceMin, SourceMax int
	// Assets are incompressible binary files under public/ (images, fonts).
	Assets    int
	AssetSize int
	// Clip is public/media/clip.bin, the file the changed-bytes series
	// replaces; ClipSize is its size in the release.
	ClipSize int
	// Packages, FilesPerPackage and PackageKB shape the dependency stage:
	// it writes Packages*FilesPerPackage files of about PackageKB KiB each.
	Packages        int
	FilesPerPackage int
	PackageKB       int
	// BlockLines is the number of chained SHA-256 digests the dependency
	// stage computes first (its "download"): 65 bytes each, one shell
	// round trip each, so it sets how long the stage takes.
	BlockLines int
}

// editedFile is the one file the main comparison changes.
const editedFile = "src/m03/s2/f0007.js"

// clipFile is the file the changed-bytes series replaces.
const clipFile = "public/media/clip.bin"

// writeApp lays the app out in dir, which must not exist yet.
func writeApp(dir string, spec appSpec) error {
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0x9e3779b97f4a7c15))
	files := map[string][]byte{}
	// Sources in src/m<module>/s<sub>/f<n>.js, about 16 per directory, as
	// in a mid-sized web app.
	for i := range spec.SourceFiles {
		dirs := max(1, spec.SourceFiles/16)
		d := i % dirs
		name := fmt.Sprintf("src/m%02d/s%d/f%04d.js", d/10, d%10, i/dirs)
		size := spec.SourceMin + rng.IntN(spec.SourceMax-spec.SourceMin+1)
		files[name] = sourceText(rng, size)
	}
	if spec.SourceFiles > 0 {
		// The edited file exists whatever the layout.
		if _, ok := files[editedFile]; !ok {
			files[editedFile] = sourceText(rng, spec.SourceMin)
		}
	}
	for i := range spec.Assets {
		files[fmt.Sprintf("public/img/a%03d.png", i)] = randomBytes(rng, spec.AssetSize/2+rng.IntN(spec.AssetSize+1))
	}
	if spec.ClipSize > 0 {
		files[clipFile] = randomBytes(rng, spec.ClipSize)
	}
	files["public/index.html"] = []byte("<!doctype html><title>bench</title><script src=/src/main.js></script>\n")
	pkgJSON, lock := depsFiles(rng, spec)
	files["package.json"] = pkgJSON
	files["package-lock.json"] = lock
	files["npm-ci.sh"] = []byte(installScript(spec.BlockLines))
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// tinyApp is the app of the file-count series: n files of 100-300 bytes in
// directories of 100, and a dependency stage that takes a second or two, so
// that what grows is the app tree alone.
func writeTinyApp(dir string, n int, seed int64) error {
	spec := appSpec{Seed: seed, Packages: 2, FilesPerPackage: 2, PackageKB: 1, BlockLines: 64}
	if err := writeApp(dir, spec); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(n)))
	for i := range n {
		name := filepath.Join(dir, "src", fmt.Sprintf("d%04d", i/100), fmt.Sprintf("f%02d.js", i%100))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(name, sourceText(rng, 100+rng.IntN(201)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// words is the vocabulary of generated sources.
var words = strings.Fields(`const let function return import export from await async if else for of
	new this null undefined true false module require props state render value key index items
	request response error handler config options result data user session cart order price`)

// sourceText returns size bytes of JavaScript-looking text.
func sourceText(rng *rand.Rand, size int) []byte {
	var b bytes.Buffer
	for b.Len() < size {
		fmt.Fprintf(&b, "%s %s_%d = %s(%d);\n", words[rng.IntN(len(words))], words[rng.IntN(len(words))],
			rng.IntN(1000), words[rng.IntN(len(words))], rng.IntN(100000))
	}
	return b.Bytes()[:size]
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// depsFiles returns package.json and package-lock.json. The lock file has
// one package per line, which the install script reads with sed.
func depsFiles(rng *rand.Rand, spec appSpec) ([]byte, []byte) {
	var pkg, lock bytes.Buffer
	pkg.WriteString("{\n  \"name\": \"bench-app\",\n  \"version\": \"1.0.0\",\n  \"dependencies\": {\n")
	lock.WriteString("{\n  \"name\": \"bench-app\",\n  \"lockfileVersion\": 3,\n  \"packages\": {\n")
	for i := range spec.Packages {
		name := fmt.Sprintf("pkg-%03d", i)
		version := fmt.Sprintf("%d.%d.%d", 1+rng.IntN(4), rng.IntN(20), rng.IntN(10))
		sep := ","
		if i == spec.Packages-1 {
			sep = ""
		}
		fmt.Fprintf(&pkg, "    %q: \"^%s\"%s\n", name, version, sep)
		kb := max(1, spec.PackageKB/2+rng.IntN(spec.PackageKB+1))
		fmt.Fprintf(&lock, "    \"node_modules/%s\": {\"version\": \"%s\", \"files\": %d, \"kb\": %d}%s\n",
			name, version, spec.FilesPerPackage, kb, sep)
	}
	pkg.WriteString("  }\n}\n")
	lock.WriteString("  }\n}\n")
	return pkg.Bytes(), lock.Bytes()
}

// installScript stands in for `npm ci`: offline, deterministic, slow and
// big. It "downloads" a block of chained SHA-256 digests seeded by the lock
// file (slow: one shell round trip per line), then "unpacks" every package
// into node_modules one file at a time (dd slices of the block, transposed
// per package so packages differ), and writes an integrity file per
// package. /dev/urandom would not be reproducible; /dev/zero would
// compress to nothing and make pulls of the dependency layer unrealistically
// cheap (hex text compresses about 2x, like real node_modules).
func installScript(blockLines int) string {
	return fmt.Sprintf(`# Stand-in for npm ci (generated by bench/): offline and deterministic.
set -e
lock=package-lock.json
dl=/tmp/npm-download
mkdir -p "$dl"
h=$(sha256sum "$lock"); h=${h%%%% *}
n=0
while [ $n -lt %d ]; do
  h=$(echo "$h" | sha256sum); h=${h%%%% *}
  echo "$h"
  n=$((n+1))
done > "$dl/block"
blockkb=$(( $(wc -c < "$dl/block") / 1024 ))
alpha=0123456789abcdef
sed -n 's|.*"node_modules/\([^"]*\)": {"version": "\([^"]*\)", "files": \([0-9]*\), "kb": \([0-9]*\)}.*|\1 \2 \3 \4|p' "$lock" |
while read -r name version files kb; do
  d=node_modules/$name
  mkdir -p "$d/lib"
  r=$(printf %%s "$name" | sha256sum | cut -c1); r=$((0x$r))
  perm=$(echo "$alpha$alpha" | cut -c$((r+1))-$((r+16)))
  tr "$alpha" "$perm" < "$dl/block" > "$dl/pkg"
  printf '{"name": "%%s", "version": "%%s"}\n' "$name" "$version" > "$d/package.json"
  span=$(( blockkb > kb ? blockkb - kb : 1 ))
  i=0
  while [ $i -lt "$files" ]; do
    dd if="$dl/pkg" of="$d/lib/f$i.js" bs=1024 skip=$(( (i * 37 + r * 11) %% span )) count="$kb" 2>/dev/null
    i=$((i+1))
  done
  sha256sum "$d"/lib/* > "$d/.integrity"
done
rm -rf "$dl"
`, blockLines)
}
