#!/usr/bin/env node
// Prepares a release spec and the current spec for `optic diff` (called by gate.sh).
//
//   node prepare.mjs <release.yaml> <current.yaml> <out-dir>
//   → <out-dir>/release.json and <out-dir>/current.json
//
// Two rewrites, applied to both sides alike:
//
// 1. poem-openapi wraps every described `$ref` field as `allOf: [{$ref}, {description}]`.
//    Optic 1.0.9 merges only object-typed `allOf` members and drops the others ("invalid allOf
//    variant"), so a field like `role: allOf: [$ref RoleName, {description}]` reaches its rules
//    as an empty object: the enum is gone and narrowing it goes unnoticed. Members that carry
//    only annotations (description, title, …) constrain nothing, so they are moved onto the
//    field itself, leaving `allOf: [{$ref}]`, which Optic resolves to the referenced schema.
//
// 2. Path items whose content, with every `$ref` resolved, is the same on both sides are left
//    out. The breaking-changes rules only fire on what changed, so this changes no finding;
//    it only spares Optic the work (about 17 s of CPU on the full spec, under 1 s after).
//    Every path item is kept when the top-level `security` differs, or when the environment
//    sets AGENTDESK_GATE_ALL_PATHS=1 (to check that the left-out paths change nothing).
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'js-yaml';

const [releasePath, currentPath, outDir] = process.argv.slice(2);
if (!releasePath || !currentPath || !outDir) {
  console.error('usage: node prepare.mjs <release.yaml> <current.yaml> <out-dir>');
  process.exit(2);
}

const ANNOTATIONS = new Set(['description', 'title', 'example', 'deprecated', 'externalDocs']);
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const annotationOnly = (m) =>
  isObject(m) && Object.keys(m).length > 0 && Object.keys(m).every((k) => ANNOTATIONS.has(k));

function flattenAnnotationAllOf(node) {
  let count = 0;
  if (Array.isArray(node)) {
    for (const item of node) count += flattenAnnotationAllOf(item);
    return count;
  }
  if (!isObject(node)) return 0;
  if (Array.isArray(node.allOf) && node.allOf.length > 1) {
    const notes = node.allOf.filter(annotationOnly);
    const keep = node.allOf.filter((m) => !annotationOnly(m));
    if (notes.length > 0 && keep.length > 0) {
      for (const note of notes) {
        for (const [k, v] of Object.entries(note)) if (!(k in node)) node[k] = v;
      }
      node.allOf = keep;
      count += 1;
    }
  }
  for (const value of Object.values(node)) count += flattenAnnotationAllOf(value);
  return count;
}

function lookup(spec, ref) {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported, found ${ref}`);
  let node = spec;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObject(node) || !(key in node)) throw new Error(`unresolvable $ref ${ref}`);
    node = node[key];
  }
  return node;
}

// The node with every $ref replaced by its target (a cycle becomes {$cycle: ref}), as JSON.
function resolvedJson(spec, node) {
  const resolve = (n, stack) => {
    if (Array.isArray(n)) return n.map((x) => resolve(x, stack));
    if (!isObject(n)) return n;
    if (typeof n.$ref === 'string') {
      if (stack.includes(n.$ref)) return { $cycle: n.$ref };
      const target = resolve(lookup(spec, n.$ref), [...stack, n.$ref]);
      const siblings = Object.fromEntries(Object.entries(n).filter(([k]) => k !== '$ref'));
      return Object.keys(siblings).length ? { ...target, $siblings: resolve(siblings, stack) } : target;
    }
    return Object.fromEntries(Object.entries(n).map(([k, v]) => [k, resolve(v, stack)]));
  };
  return JSON.stringify(resolve(node, []));
}

const load = (file) => YAML.load(fs.readFileSync(file, 'utf8'));
const release = load(releasePath);
const current = load(currentPath);
for (const [name, spec] of [['release', release], ['current', current]]) {
  if (!isObject(spec) || !isObject(spec.paths)) {
    console.error(`prepare: ${name} spec has no paths object`);
    process.exit(2);
  }
}

const flattened = [flattenAnnotationAllOf(release), flattenAnnotationAllOf(current)];

let unchanged = 0;
const total = new Set([...Object.keys(release.paths), ...Object.keys(current.paths)]).size;
const keepAll =
  process.env.AGENTDESK_GATE_ALL_PATHS === '1' ||
  JSON.stringify(release.security) !== JSON.stringify(current.security);
if (!keepAll) {
  for (const p of Object.keys(release.paths)) {
    if (!(p in current.paths)) continue;
    if (resolvedJson(release, release.paths[p]) === resolvedJson(current, current.paths[p])) {
      delete release.paths[p];
      delete current.paths[p];
      unchanged += 1;
    }
  }
}

fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'release.json'), JSON.stringify(release, null, 2) + '\n');
fs.writeFileSync(path.join(outDir, 'current.json'), JSON.stringify(current, null, 2) + '\n');
console.error(
  `prepare: ${unchanged} of ${total} paths identical after resolving $refs (left out of the diff); ` +
    `${flattened[0]}/${flattened[1]} annotation-only allOf wrappers inlined (release/current)`,
);
