// Bundles src/main.js into content-hashed chunks (dist/assets/), copies
// public/ as it is, and writes dist/index.html, which loads the entry chunk
// by its hashed name: an edit changes the chunks that hold it, the entry
// that imports them, and the page.
import { build } from "esbuild";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

const result = await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  splitting: true,
  format: "esm",
  minify: true,
  outdir: "dist/assets",
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
});
const entry = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === "src/main.js")[0];
mkdirSync("dist", { recursive: true });
writeFileSync("dist/index.html", `<!doctype html>
<html>
<head><meta charset="utf-8"><title>Patchfile SPA example</title></head>
<body>
<img src="/logo.svg" alt="">
<h1 id="greeting">loading</h1>
<p id="catalog"></p>
<script type="module" src="/assets/${path.basename(entry)}"></script>
</body>
</html>
`);
cpSync("public", "dist", { recursive: true });
