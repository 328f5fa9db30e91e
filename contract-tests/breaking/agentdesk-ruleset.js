'use strict';
// The ruleset the gate runs (loaded by Optic through optic.yml): Optic's `breaking-changes`
// rules, with its property-enum rule replaced by one that matches the project's policy
// (README.md, "What counts as breaking"):
//
// - Optic's "request and response property enums" fails a response enum that gains a value and
//   ignores enums on array items. Agentdesk lets response enums grow (clients must accept new
//   values), and `capabilities: [Capability]` is an array of an enum a client sends.
// - "prevent narrowing request enums" below fails, in request bodies only, a property or the
//   items of an array that lose an enum value, or a free-form value that gains an enum.
//
// Optic has no rule for three more things the project calls breaking, added below:
// - "prevent operationId changes": an operationId is the SDK's method name (ARCHITECTURE §4).
// - "prevent parameter removal": a removed query, header or cookie parameter is ignored by the
//   server, so a client that relies on it (`?status=` filtering, `If-Match`) silently loses it.
// - "prevent response header removal": `ETag`, `Location`, `RateLimit` headers clients read.
//
// Everything else (operations, status codes, required fields and parameters, types, response
// properties) is Optic's own rules, unchanged. Built without `matches`, the ruleset also runs
// when `info.version` changes major: `/v1` never takes a breaking change, whatever its version.
const { Ruleset, OperationRule, RequestRule, ResponseRule, RuleError } = require('@useoptic/rulesets-base');
const { BreakingChangesRuleset } = require('@useoptic/standard-rulesets');

const REPLACED_RULE = 'request and response property enums';

const enumValues = (schema) => {
  if (!schema || typeof schema !== 'object') return null;
  if (Array.isArray(schema.enum)) return schema.enum;
  if ('const' in schema) return [schema.const];
  return null;
};

// Union members are Optic's union rules' business (as in its own enum rule).
const inUnion = (fact) =>
  /\/(oneOf|anyOf)\//.test(fact.location.jsonPath) ||
  Boolean(fact.raw && (fact.raw.oneOf || fact.raw.anyOf));

function checkNarrowing(before, after, what) {
  if (inUnion(before) || inUnion(after)) return;
  const was = enumValues(before.raw);
  const now = enumValues(after.raw);
  if (!was && now) {
    throw new RuleError({ message: `cannot add an enum to ${what}. This is a breaking change.` });
  }
  if (!was || !now) return;
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const removed = was.filter((v) => !now.some((n) => same(n, v)));
  if (removed.length > 0) {
    throw new RuleError({
      message: `cannot remove enum option${removed.length > 1 ? 's' : ''} '${removed.join(', ')}' from ${what}. This is a breaking change.`,
    });
  }
}

// Request bodies only. Properties are fields (`role`); array items (`capabilities/items`) are
// schemas to Optic, which a property rule never sees.
const preventRequestEnumNarrowing = new RequestRule({
  name: 'prevent narrowing request enums',
  rule: (request) => {
    request.property.changed((before, after) =>
      checkNarrowing(before, after, `request property '${after.value.key}'`),
    );
    request.schema.changed((before, after) => {
      // Optic also lists fields among schemas: items only, or a field would be reported twice.
      if (!after.location.jsonPath.endsWith('/items')) return;
      checkNarrowing(before, after, `request schema '${after.location.conceptualLocation.jsonSchemaTrail.join('/')}'`);
    });
  },
});

const preventOperationIdChange = new OperationRule({
  name: 'prevent operationId changes',
  rule: (operation) => {
    operation.changed((before, after) => {
      if (before.value.operationId !== after.value.operationId) {
        throw new RuleError({
          message: `cannot change operationId '${before.value.operationId}' to '${after.value.operationId}' (the SDK method name). This is a breaking change.`,
        });
      }
    });
  },
});

const preventParameterRemoval = new OperationRule({
  name: 'prevent parameter removal',
  rule: (operation) => {
    for (const where of ['query', 'header', 'cookie']) {
      operation[`${where}Parameter`].removed((parameter) => {
        throw new RuleError({
          message: `cannot remove ${where} parameter '${parameter.value.name}'. This is a breaking change.`,
        });
      });
    }
  },
});

const preventResponseHeaderRemoval = new ResponseRule({
  name: 'prevent response header removal',
  rule: (response) => {
    response.header.removed((header) => {
      throw new RuleError({
        message: `cannot remove response header '${header.value.name}'. This is a breaking change.`,
      });
    });
  },
});

function agentdeskBreakingChanges() {
  const optic = new BreakingChangesRuleset().rules;
  const kept = optic.filter((r) => r.name !== REPLACED_RULE);
  if (kept.length !== optic.length - 1) {
    // Optic renamed or dropped the rule: fail loudly rather than run a different ruleset.
    throw new Error(`Optic's breaking-changes ruleset has no rule named '${REPLACED_RULE}'`);
  }
  return new Ruleset({
    name: 'Agentdesk breaking changes',
    rules: [
      ...kept,
      preventRequestEnumNarrowing,
      preventOperationIdChange,
      preventParameterRemoval,
      preventResponseHeaderRemoval,
    ],
  });
}

module.exports = {
  configSchema: { type: 'object' },
  rulesetConstructor: agentdeskBreakingChanges,
};
