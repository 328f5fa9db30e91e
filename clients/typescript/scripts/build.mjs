// Builds dist/ for both module systems, from src/:
//   dist/esm/  ES2022 modules + .d.ts (tsc): the `import` condition, browsers and bundlers.
//   dist/cjs/  one CommonJS file, index.cjs (esbuild), with .d.cts declarations (tsc's, relative
//              imports pointed at .cjs): the `require` condition. It bundles the ES module
//              builds of openapi-fetch and eventsource-parser (both MIT), so it needs no
//              CommonJS interop with them (esbuild's Node-mode interop would hand the SDK
//              openapi-fetch's whole `exports` object as its default export).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const HERE = join(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(HERE, "dist");
const ESM = join(DIST, "esm");
const CJS = join(DIST, "cjs");
const pkg = JSON.parse(await readFile(join(HERE, "package.json"), "utf8"));

await rm(DIST, { recursive: true, force: true });
execFileSync(process.execPath, [join(HERE, "node_modules/typescript/bin/tsc"), "-p", join(HERE, "tsconfig.json")], { stdio: "inherit" });

/** The CommonJS bundle's header: what it is and the notices of what it includes. */
function banner() {
  const dep = (name) => JSON.parse(readFileSync(join(HERE, "node_modules", name, "package.json"), "utf8"));
  const fetchPkg = dep("openapi-fetch");
  const parserPkg = dep("eventsource-parser");
  return [
    `/*! ${pkg.name} ${pkg.version}, CommonJS build (the ES module build is dist/esm/). It includes:`,
    ` *  openapi-fetch ${fetchPkg.version}: Copyright (c) Drew Powers, MIT License.`,
    ` *  eventsource-parser ${parserPkg.version}: Copyright (c) Espen Hovlandsdal, MIT License. */`,
  ].join("\n");
}

const result = await esbuild.build({
  absWorkingDir: HERE,
  entryPoints: [join(HERE, "src/index.ts")],
  outfile: join(CJS, "index.cjs"),
  bundle: true,
  format: "cjs",
  platform: "neutral",
  mainFields: ["module", "main"],
  conditions: ["import"],
  target: "es2022",
  sourcemap: true,
  legalComments: "none",
  logLevel: "warning",
  banner: { js: banner() },
});
if (result.errors.length) throw new Error("esbuild failed");

/** Every file under `dir`, relative to it. */
async function files(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await files(path)).map((f) => join(entry.name, f)));
    else out.push(entry.name);
  }
  return out;
}

// The declarations again as .d.cts: in a CommonJS program, `import … from "./x.js"` would
// name an ES module (this package is "type": "module"), so the copies point at "./x.cjs",
// which TypeScript resolves to "./x.d.cts".
let declarations = 0;
for (const file of (await files(ESM)).filter((f) => f.endsWith(".d.ts"))) {
  const text = await readFile(join(ESM, file), "utf8");
  const cts = text
    .replace(/(from\s+["'])(\.{1,2}\/[^"']+)\.js(["'])/g, "$1$2.cjs$3")
    .replace(/(import\(["'])(\.{1,2}\/[^"']+)\.js(["']\))/g, "$1$2.cjs$3")
    .replace(/^\/\/# sourceMappingURL=.*$/m, "");
  const target = join(CJS, file.replace(/\.d\.ts$/, ".d.cts"));
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, cts);
  declarations += 1;
}
// Every package an emitted declaration names must be a dependency: a type inferred through a
// transitive package (openapi-fetch's openapi-typescript-helpers, say) would not resolve in a
// project whose installer does not hoist it (pnpm), or once openapi-fetch stops depending on it.
const allowed = new Set(Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies }));
const strays = [];
for (const [dir, suffix] of [[ESM, ".d.ts"], [CJS, ".d.cts"]]) {
  for (const file of (await files(dir)).filter((f) => f.endsWith(suffix))) {
    const text = await readFile(join(dir, file), "utf8");
    for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+|reference\s+types=)["']([^"'.][^"']*)["']/g)) {
      const spec = m[1];
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
      if (!allowed.has(name)) strays.push(`${relative(HERE, join(dir, file))}: "${spec}"`);
    }
  }
}
if (strays.length) {
  throw new Error(`emitted declarations import packages that are not dependencies (give the helper an explicit type):\n  ${strays.join("\n  ")}`);
}
console.log(`built ${relative(HERE, ESM)}/ (tsc) and ${relative(HERE, CJS)}/index.cjs (esbuild) with ${declarations} .d.cts files`);
