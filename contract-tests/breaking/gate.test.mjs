// Proves the breaking-change gate can fail: each case writes an edited copy of openapi/v1.yaml
// to a temporary directory and runs gate.sh on it against openapi/releases/. Breaking edits must
// exit 1 with the Optic finding that names them; other edits must exit 0, and Optic must have
// seen them (so a pass is not a diff that compared nothing).
//
//   cd contract-tests/breaking && npm ci && node --test gate.test.mjs
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'js-yaml';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const GATE = path.join(HERE, 'gate.sh');
const SPEC = path.join(ROOT, 'openapi/v1.yaml');
const RELEASES = path.join(ROOT, 'openapi/releases');
const SOURCE = fs.readFileSync(SPEC, 'utf8');

let tmp;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentdesk-gate-test-'));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// Runs the gate on `specPath` (an edited copy of openapi/v1.yaml, or the file itself): its exit
// status and everything it printed.
function gate(specPath, releases = RELEASES, script = GATE) {
  return new Promise((resolve) => {
    // TMPDIR: the prepared specs a failing gate keeps go into this test's directory.
    const options = { maxBuffer: 64 << 20, env: { ...process.env, TMPDIR: tmp } };
    execFile(script, [specPath, releases], options, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

let caseNo = 0;
function writeEdited(edit) {
  const spec = YAML.load(SOURCE);
  edit(spec);
  const dir = path.join(tmp, `case-${++caseNo}`);
  fs.mkdirSync(dir);
  const file = path.join(dir, 'v1.yaml');
  fs.writeFileSync(file, YAML.dump(spec));
  return file;
}

// Edits fail loudly when the spec no longer has what they change.
const schema = (spec, name) => {
  const s = spec.components.schemas[name];
  assert.ok(s, `openapi/v1.yaml has no schema ${name}`);
  return s;
};
const without = (list, value) => {
  assert.ok(list?.includes(value), `${JSON.stringify(list)} does not contain ${value}`);
  return list.filter((v) => v !== value);
};
const pathItem = (spec, p) => {
  assert.ok(spec.paths[p], `openapi/v1.yaml has no path ${p}`);
  return spec.paths[p];
};
const removeProperty = (s, name) => {
  assert.ok(s.properties?.[name], `no property ${name}`);
  delete s.properties[name];
  if (s.required?.includes(name)) s.required = without(s.required, name);
};

const STOP = '/v1/orgs/{org_id}/sessions/{session_id}/stop';
const SESSION = '/v1/orgs/{org_id}/sessions/{session_id}';
const JOBS = '/v1/orgs/{org_id}/jobs';
const SESSIONS = '/v1/orgs/{org_id}/sessions';
const JSON_UTF8 = 'application/json; charset=utf-8';

const breaking = [
  {
    name: 'remove a required response field (SessionOut.last_seq, from properties and required)',
    edit: (s) => removeProperty(schema(s, 'SessionOut'), 'last_seq'),
    finding: /\[prevent removing response property\] cannot remove response property 'last_seq'/,
  },
  {
    name: 'remove a required response field (OrgOut.name)',
    edit: (s) => removeProperty(schema(s, 'OrgOut'), 'name'),
    finding: /cannot remove response property 'name'/,
  },
  {
    name: 'remove an optional response field (SessionOut.status_reason)',
    edit: (s) => removeProperty(schema(s, 'SessionOut'), 'status_reason'),
    finding: /cannot remove response property 'status_reason'/,
  },
  {
    name: 'make a required response field optional (OrgOut.required without name)',
    edit: (s) => {
      const o = schema(s, 'OrgOut');
      o.required = without(o.required, 'name');
    },
    finding: /\[prevent making response property optional\] cannot make required response property 'name' optional/,
  },
  {
    name: 'change a response field type (SessionOut.last_seq integer to string)',
    edit: (s) => {
      schema(s, 'SessionOut').properties.last_seq = { type: 'string', description: 'changed' };
    },
    finding: /\[prevent response property type changes\].*last_seq/,
  },
  {
    name: 'make a response field nullable (SessionOut.last_seq)',
    edit: (s) => {
      schema(s, 'SessionOut').properties.last_seq.nullable = true;
    },
    finding: /\[prevent response property type changes\] expected response body property 'last_seq' not to be expanded/,
  },
  {
    name: 'change a response media type (sessions.get 200 to plain application/json)',
    edit: (s) => {
      const r = pathItem(s, SESSION).get.responses['200'];
      assert.ok(r.content[JSON_UTF8]);
      r.content = { 'application/json': r.content[JSON_UTF8] };
    },
    finding: /cannot remove response property 'last_seq'/,
  },
  {
    name: 'add a required request field (AgentIn.runtime)',
    edit: (s) => {
      const a = schema(s, 'AgentIn');
      a.properties.runtime = { type: 'string', description: 'new and required' };
      a.required.push('runtime');
    },
    finding: /cannot add a required request property 'runtime' to an existing operation/,
  },
  {
    name: 'make an optional request field required (AgentIn.description)',
    edit: (s) => {
      const a = schema(s, 'AgentIn');
      assert.ok(a.properties.description && !a.required.includes('description'));
      a.required.push('description');
    },
    finding: /cannot make a request property required/,
  },
  {
    name: 'make an optional header parameter required (Idempotency-Key of sessions.create)',
    edit: (s) => {
      const p = pathItem(s, SESSIONS).post.parameters.find((x) => x.in === 'header' && x.name === 'Idempotency-Key');
      assert.ok(p && !p.required, 'sessions.create has no optional Idempotency-Key header');
      p.required = true;
    },
    finding: /\[prevent requiring existing header parameters\] cannot make optional header parameter 'Idempotency-Key' required/,
  },
  {
    name: 'remove an operation (sessions.stop)',
    edit: (s) => {
      assert.equal(pathItem(s, STOP).post?.operationId, 'sessions.stop');
      delete s.paths[STOP];
    },
    finding: /POST \/v1\/orgs\/\{org_id\}\/sessions\/\{session_id\}\/stop: removed\s+x \[prevent operation removal\]/,
  },
  {
    name: 'remove a documented status code (sessions.get 404)',
    edit: (s) => {
      const r = pathItem(s, SESSION).get.responses;
      assert.ok(r['404']);
      delete r['404'];
    },
    finding: /must not remove response status code 404/,
  },
  {
    name: 'narrow a request enum behind allOf (ResultStatus without failed: commands.complete)',
    edit: (s) => {
      const r = schema(s, 'ResultStatus');
      r.enum = without(r.enum, 'failed');
    },
    finding: /\[prevent narrowing request enums\] cannot remove enum option 'failed' from request property 'status'/,
  },
  {
    name: 'narrow a request array-items enum (Capability without desktop:files: agents.create)',
    edit: (s) => {
      const c = schema(s, 'Capability');
      c.enum = without(c.enum, 'desktop:files');
    },
    finding: /cannot remove enum option 'desktop:files' from request schema 'capabilities\/items'/,
  },
  {
    name: 'narrow a query parameter enum (JobStatusName without dead: jobs.list ?status=)',
    edit: (s) => {
      const j = schema(s, 'JobStatusName');
      j.enum = without(j.enum, 'dead');
    },
    finding: /cannot remove enum option 'dead' from query parameter 'status'/,
  },
  {
    name: 'change a request field type (AgentIn.name string to integer)',
    edit: (s) => {
      schema(s, 'AgentIn').properties.name = { type: 'integer', description: 'changed' };
    },
    finding: /\[prevent request property type changes\].*'name'/,
  },
  {
    name: 'remove a query parameter (jobs.list ?status=)',
    edit: (s) => {
      const op = pathItem(s, JOBS).get;
      const before = op.parameters.length;
      op.parameters = op.parameters.filter((p) => !(p.in === 'query' && p.name === 'status'));
      assert.equal(op.parameters.length, before - 1);
    },
    finding: /\[prevent parameter removal\] cannot remove query parameter 'status'/,
  },
  {
    name: 'rename an operationId (sessions.stop to sessions.halt)',
    edit: (s) => {
      const op = pathItem(s, STOP).post;
      assert.equal(op.operationId, 'sessions.stop');
      op.operationId = 'sessions.halt';
    },
    finding: /cannot change operationId 'sessions.stop' to 'sessions.halt'/,
  },
  {
    name: 'remove a response header (ETag of sessions.get)',
    edit: (s) => {
      const headers = pathItem(s, SESSION).get.responses['200'].headers;
      const etag = Object.keys(headers ?? {}).find((h) => h.toLowerCase() === 'etag');
      assert.ok(etag, 'sessions.get 200 documents no ETag header');
      delete headers[etag];
    },
    finding: /\[prevent response header removal\] cannot remove response header 'etag'/i,
  },
  {
    name: 'a major info.version does not excuse a breaking change (2.0.0, sessions.stop removed)',
    edit: (s) => {
      s.info.version = '2.0.0';
      delete pathItem(s, STOP).post;
      delete s.paths[STOP];
    },
    finding: /cannot remove an operation/,
  },
];

const compatible = [
  {
    name: 'add an optional request field (AgentIn.labels)',
    edit: (s) => {
      schema(s, 'AgentIn').properties.labels = {
        type: 'object',
        description: 'new and optional',
        additionalProperties: { type: 'string' },
      };
    },
    seen: /property \/schema\/properties\/labels: added/,
  },
  {
    name: 'add an operation (GET …/sessions/{session_id}/desktop)',
    edit: (s) => {
      const get = structuredClone(pathItem(s, SESSION).get);
      s.paths[`${SESSION}/desktop`] = { get: { ...get, operationId: 'sessions.desktop' } };
    },
    seen: /GET \/v1\/orgs\/\{org_id\}\/sessions\/\{session_id\}\/desktop: added/,
  },
  {
    name: 'add a response field (SessionOut.region)',
    edit: (s) => {
      schema(s, 'SessionOut').properties.region = { type: 'string', description: 'new' };
    },
    seen: /property \/schema\/properties\/region: added/,
  },
  {
    name: 'add an enum value (SessionStatus paused: responses and sessions.list ?status=)',
    edit: (s) => {
      schema(s, 'SessionStatus').enum.push('paused');
    },
    seen: /\/schema\/enum\/\d+ added/,
  },
];

describe('breaking-change gate', { concurrency: Math.max(2, os.availableParallelism()) }, () => {
  it('passes the current openapi/v1.yaml against the newest release', async () => {
    const { code, out } = await gate(SPEC);
    assert.equal(code, 0, out);
    assert.match(out, /gate: passed/);
  });

  for (const c of breaking) {
    it(`fails: ${c.name}`, async () => {
      const { code, out } = await gate(writeEdited(c.edit));
      assert.equal(code, 1, `expected exit 1 (breaking), got ${code}\n${out}`);
      assert.match(out, c.finding, out);
    });
  }

  for (const c of compatible) {
    it(`passes: ${c.name}`, async () => {
      const { code, out } = await gate(writeEdited(c.edit));
      assert.equal(code, 0, `expected exit 0 (compatible), got ${code}\n${out}`);
      assert.match(out, c.seen, `Optic did not see the edit:\n${out}`);
    });
  }

  it('diffs against the newest release by semantic version (v1.10.0 over v1.9.0, v2 ignored)', async () => {
    // v1.9.0 is the current spec; v1.10.0 also has an operation the current spec lacks, so only
    // a numeric comparison of minor versions picks it and fails. v2.0.0 is another major.
    const releases = path.join(tmp, 'releases');
    fs.mkdirSync(releases);
    const withExtraOp = YAML.load(SOURCE);
    const extra = `${SESSION}/extra`;
    withExtraOp.paths[extra] = structuredClone({ get: pathItem(withExtraOp, SESSION).get });
    withExtraOp.paths[extra].get.operationId = 'sessions.extra';
    fs.writeFileSync(path.join(releases, 'v1.9.0.yaml'), SOURCE);
    fs.writeFileSync(path.join(releases, 'v1.10.0.yaml'), YAML.dump(withExtraOp));
    fs.writeFileSync(path.join(releases, 'v2.0.0.yaml'), 'not: a spec\n');
    const { code, out } = await gate(SPEC, releases);
    assert.equal(code, 1, out);
    assert.match(out, /against .*v1\.10\.0\.yaml/);
    assert.match(out, /GET \/v1\/orgs\/\{org_id\}\/sessions\/\{session_id\}\/extra: removed/);
  });

  it('fails when Optic cannot load the ruleset, which Optic itself lets pass (exit 2)', async () => {
    // A copy of the gate whose ruleset throws, as it would if Optic renamed the replaced rule.
    const copy = path.join(tmp, 'broken-gate');
    fs.mkdirSync(copy);
    for (const f of ['gate.sh', 'prepare.mjs', 'optic.yml']) fs.copyFileSync(path.join(HERE, f), path.join(copy, f));
    fs.chmodSync(path.join(copy, 'gate.sh'), 0o755);
    fs.symlinkSync(path.join(HERE, 'node_modules'), path.join(copy, 'node_modules'));
    const ruleset = fs.readFileSync(path.join(HERE, 'agentdesk-ruleset.js'), 'utf8');
    const broken = ruleset.replace(/const REPLACED_RULE = '[^']*';/, "const REPLACED_RULE = 'no such rule';");
    assert.notEqual(broken, ruleset);
    fs.writeFileSync(path.join(copy, 'agentdesk-ruleset.js'), broken);
    const { code, out } = await gate(SPEC, RELEASES, path.join(copy, 'gate.sh'));
    assert.equal(code, 2, out);
    assert.match(out, /gate: the ruleset did not load/);
  });

  it('refuses to run without a release to compare with (exit 2)', async () => {
    const empty = path.join(tmp, 'no-releases');
    fs.mkdirSync(empty);
    const { code, out } = await gate(SPEC, empty);
    assert.equal(code, 2, out);
    assert.match(out, /no release v1\.<minor>\.<patch>\.yaml/);
  });
});
