// The CommonJS build, as a CommonJS program loads it: require("@agentdesk/client") resolves
// through the package's `exports` (`require` condition) to dist/cjs/index.cjs. Run `npm run
// build` first. A strict TypeScript CommonJS project compiling against it: contract-tests/sdk-projects.
const assert = require("node:assert/strict");
const { test } = require("node:test");
const sdk = require("@agentdesk/client");

const BASE = "http://agentdesk.test";

test("require() loads the CommonJS build with the whole API", () => {
  assert.equal(require.resolve("@agentdesk/client"), require("node:path").join(__dirname, "..", "dist", "cjs", "index.cjs"));
  for (const name of ["createClient", "unwrap", "AgentdeskError", "storageTokenStore", "memoryTokenStore", "isCommandResult", "sleep"]) {
    assert.equal(typeof sdk[name], "function", name);
  }
  assert.throws(() => sdk.createClient({ baseUrl: `${BASE}/v1` }), /ends in \/v1/);
});

test("a call, a problem thrown by .unwrap(), an error of the ES module build recognised by the CommonJS class", async () => {
  const fetch = async (req) =>
    new URL(req.url).pathname === "/v1/me"
      ? new Response(JSON.stringify({ id: "u", email: "a@example.com" }), { status: 200, headers: { "content-type": "application/json" } })
      : new Response(JSON.stringify({ type: "t", title: "Not Found", status: 404, detail: "no such org", code: "not_found" }), {
          status: 404,
          headers: { "content-type": "application/problem+json" },
        });
  const client = sdk.createClient({ baseUrl: BASE, accessToken: "t", fetch });
  assert.equal((await client.me.get().unwrap()).email, "a@example.com");
  await assert.rejects(client.orgs.get("o").unwrap(), (e) => e instanceof sdk.AgentdeskError && e.code === "not_found");
  const esm = await import("@agentdesk/client");
  assert.notEqual(esm.AgentdeskError, sdk.AgentdeskError, "two builds, two classes");
  const fromEsm = new esm.AgentdeskError({ type: "t", title: "t", status: 409, detail: "d", code: "last_owner" });
  assert.ok(fromEsm instanceof sdk.AgentdeskError, "instanceof works across the builds");
});
