// Builds the console into dist/: exactly index.html, console.js and console.css, the same bytes
// for the same sources (no timestamps, no source maps, paths relative to this directory).
//   node build.mjs           write dist/
//   node build.mjs --check   build into a temp dir and fail if dist/ differs (CI)
// The SDK comes from its TypeScript sources (../clients/typescript/src); its runtime
// dependencies, openapi-fetch and eventsource-parser, are resolved from this package's
// node_modules (same pins), so the build needs only `npm ci` here.
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = join(HERE, "src");
const DIST = join(HERE, "dist");
const OUTPUTS = ["console.css", "console.js", "index.html"];

const pkg = JSON.parse(await readFile(join(HERE, "package.json"), "utf8"));
const novnc = JSON.parse(await readFile(join(HERE, "node_modules/@novnc/novnc/package.json"), "utf8"));
const openapiFetch = JSON.parse(await readFile(join(HERE, "node_modules/openapi-fetch/package.json"), "utf8"));
const sseParser = JSON.parse(await readFile(join(HERE, "node_modules/eventsource-parser/package.json"), "utf8"));
const sdk = JSON.parse(await readFile(join(HERE, "../clients/typescript/package.json"), "utf8"));
for (const name of Object.keys(sdk.dependencies)) {
  if (sdk.dependencies[name] !== pkg.devDependencies[name]) {
    throw new Error(`the SDK depends on ${name} ${sdk.dependencies[name]}, console/package.json pins ${pkg.devDependencies[name]}: pin the same version`);
  }
}
for (const [name, got] of [
  ["@novnc/novnc", novnc.version],
  ["openapi-fetch", openapiFetch.version],
  ["eventsource-parser", sseParser.version],
]) {
  if (got !== pkg.devDependencies[name]) throw new Error(`${name} ${got} is installed, package.json pins ${pkg.devDependencies[name]}: run npm ci`);
}

const BANNER = `/*!
 * Agentdesk console (console/ in the Agentdesk repository), bundled by esbuild from its
 * sources, the @agentdesk/client SDK (clients/typescript) and these npm packages:
 *
 * noVNC ${novnc.version} (@novnc/novnc): Copyright (C) The noVNC authors.
 *   The noVNC core library is licensed under the Mozilla Public License 2.0
 *   (https://mozilla.org/MPL/2.0/); it is included here unmodified, in source form, as the
 *   modules below marked node_modules/@novnc/novnc/core/…; its source is also at
 *   https://github.com/novnc/noVNC (tag v${novnc.version}) and in the npm package.
 *   It includes pako (vendor/pako), Copyright (C) 2014-2016 by Vitaly Puzrin and Andrei
 *   Tuputcyn, MIT License (https://opensource.org/licenses/MIT).
 *
 * openapi-fetch ${openapiFetch.version}: Copyright (c) Drew Powers, MIT License.
 *
 * eventsource-parser ${sseParser.version}: Copyright (c) Espen Hovlandsdal, MIT License.
 */`;

/** Resolves the SDK's `openapi-fetch` and `eventsource-parser` imports from this package, whatever is installed beside the SDK. */
const sdkDependencies = {
  name: "sdk-dependencies",
  setup(build) {
    build.onResolve({ filter: /^(openapi-fetch|eventsource-parser)$/ }, (args) => {
      if (args.pluginData?.pinned) return undefined;
      return build.resolve(args.path, { kind: args.kind, resolveDir: HERE, pluginData: { pinned: true } });
    });
  },
};

/** The CSP the server sends (no inline script or style): refuse HTML that would break under it. */
function assertCspClean(html) {
  const problems = [];
  if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html)) problems.push("an inline <script>");
  if (/<style[\s>]/i.test(html)) problems.push("a <style> element");
  if (/\sstyle\s*=/i.test(html)) problems.push("a style= attribute");
  if (/\son[a-z]+\s*=/i.test(html)) problems.push("an on…= event handler attribute");
  if (/(src|href)\s*=\s*["']?(https?:)?\/\//i.test(html)) problems.push("an external URL");
  if (problems.length) throw new Error(`src/index.html has ${problems.join(", ")}: the console's CSP forbids it`);
}

async function build(outDir) {
  await mkdir(outDir, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: HERE,
    entryPoints: [join(SRC, "main.ts")],
    outfile: join(outDir, "console.js"),
    bundle: true,
    format: "esm", // noVNC uses top-level await
    platform: "browser",
    target: "es2022",
    charset: "utf8",
    legalComments: "eof",
    sourcemap: false,
    minify: false,
    banner: { js: BANNER },
    plugins: [sdkDependencies],
    // One fixed set of TypeScript settings for every file (tsconfig.json's `paths` are for tsc only).
    tsconfigRaw: { compilerOptions: { target: "ES2022", useDefineForClassFields: true, verbatimModuleSyntax: true } },
    logLevel: "warning",
    write: true,
  });
  if (result.errors.length) throw new Error("esbuild failed");
  const html = await readFile(join(SRC, "index.html"), "utf8");
  assertCspClean(html);
  await writeFile(join(outDir, "index.html"), html);
  await writeFile(join(outDir, "console.css"), await readFile(join(SRC, "console.css")));
}

if (process.argv.includes("--check")) {
  const tmp = await mkdtemp(join(tmpdir(), "agentdesk-console-"));
  try {
    await build(tmp);
    const committed = (await readdir(DIST).catch(() => [])).sort();
    const stale = [];
    if (committed.join() !== OUTPUTS.join()) stale.push(`dist/ holds [${committed.join(", ")}], expected [${OUTPUTS.join(", ")}]`);
    for (const name of OUTPUTS) {
      const fresh = await readFile(join(tmp, name));
      const old = await readFile(join(DIST, name)).catch(() => undefined);
      if (!old || !fresh.equals(old)) stale.push(`dist/${name} differs from a fresh build`);
    }
    if (stale.length) {
      console.error(`console: ${stale.join("; ")}. Run \`npm run build\` in console/ and commit dist/.`);
      process.exit(1);
    }
    console.log("console: dist/ is up to date");
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
} else {
  await rm(DIST, { recursive: true, force: true });
  await build(DIST);
  console.log(`console: wrote ${OUTPUTS.map((n) => `dist/${n}`).join(", ")}`);
}
