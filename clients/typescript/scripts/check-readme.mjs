// The README compiles: every ```ts block of README.md is type-checked against the built
// package (dist/, imported as "@agentdesk/client") under strict settings (`strict`,
// `exactOptionalPropertyTypes`, `noUncheckedIndexedAccess`), each block as a module of its own,
// with the names the examples take as given declared in scripts/readme-prelude.d.ts. README
// code may not use `!` non-null assertions, `as` / `<T>` casts, `any`, or `@ts-…` comments:
// those fail the check too. Run `npm run build` first.
//   node scripts/check-readme.mjs             check README.md
//   node scripts/check-readme.mjs --extract-quick-start <file>
//                                             write the quick-start block (the first ```ts block
//                                             after "## Quick start") to <file>, for the
//                                             contract tests that run it against a server
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const HERE = join(dirname(fileURLToPath(import.meta.url)), "..");
const README = join(HERE, "README.md");
// Inside the package, so that "@agentdesk/client" resolves to the package itself (its exports).
const WORK = join(HERE, ".readme-check");

/** The ```ts blocks of `markdown`: `{ code, line }` (line: 1-based README line of the block's first code line), and the heading each is under. */
export function tsBlocks(markdown) {
  const lines = markdown.split("\n");
  const blocks = [];
  let heading = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, "").trim();
    const open = /^```(ts|typescript)\s*$/.exec(line);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    if (end >= lines.length) throw new Error(`README.md:${i + 1}: unclosed code block`);
    blocks.push({ code: lines.slice(start, end).join("\n"), line: start + 1, heading });
    i = end;
  }
  return blocks;
}

/** Forbidden constructs in README code: `!` assertions, casts, `any`, `@ts-…` comments. */
function forbidden(block, file) {
  const source = ts.createSourceFile(file, block.code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found = [];
  const at = (node, what) => {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
    found.push(`README.md:${block.line + line}: ${what}: ${node.getText(source).slice(0, 80)}`);
  };
  const visit = (node) => {
    if (ts.isNonNullExpression(node)) at(node, "a `!` non-null assertion");
    else if (ts.isAsExpression(node)) at(node, "an `as` cast");
    else if (ts.isTypeAssertionExpression(node)) at(node, "a `<T>` cast");
    else if (node.kind === ts.SyntaxKind.AnyKeyword) at(node, "`any`");
    ts.forEachChild(node, visit);
  };
  visit(source);
  block.code.split("\n").forEach((text, i) => {
    if (/@ts-(ignore|expect-error|nocheck)/.test(text)) found.push(`README.md:${block.line + i}: a @ts-… comment`);
  });
  return found;
}

async function check() {
  const blocks = tsBlocks(await readFile(README, "utf8"));
  if (blocks.length === 0) throw new Error("README.md has no ```ts block");
  await rm(WORK, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });
  const files = [];
  const errors = [];
  for (const [i, block] of blocks.entries()) {
    const file = join(WORK, `block-${String(i + 1).padStart(2, "0")}.ts`);
    // `export {}` makes every block a module: its own scope, top-level await allowed.
    await writeFile(file, `${block.code}\nexport {};\n`);
    files.push({ file, block });
    errors.push(...forbidden(block, file));
  }
  const options = {
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    noImplicitReturns: true,
    noFallthroughCasesInSwitch: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts"],
    types: [],
    skipLibCheck: false,
  };
  const program = ts.createProgram([join(HERE, "scripts/readme-prelude.d.ts"), ...files.map((f) => f.file)], options);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const owner = files.find((f) => f.file === d.file?.fileName);
    if (owner && d.file && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      errors.push(`README.md:${owner.block.line + line}: TS${d.code}: ${message}`);
    } else {
      errors.push(`${d.file ? relative(HERE, d.file.fileName) : "(global)"}: TS${d.code}: ${message}`);
    }
  }
  if (errors.length > 0) {
    console.error(`README.md: ${errors.length} problem(s) in its \`\`\`ts blocks:\n${errors.join("\n")}`);
    process.exit(1);
  }
  await rm(WORK, { recursive: true, force: true });
  console.log(`README.md: ${blocks.length} \`\`\`ts blocks type-check (strict, exactOptionalPropertyTypes, noUncheckedIndexedAccess; no !, no casts, no any)`);
}

/** The quick start: the first ```ts block under the "Quick start" heading. */
export async function quickStart() {
  const block = tsBlocks(await readFile(README, "utf8")).find((b) => b.heading === "Quick start");
  if (!block) throw new Error('README.md has no ```ts block under "## Quick start"');
  return block;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--extract-quick-start");
  if (i > 0) {
    const out = process.argv[i + 1];
    if (!out) throw new Error("--extract-quick-start <file>");
    await writeFile(out, `${(await quickStart()).code}\n`);
  } else {
    await check();
  }
}
