// Type-level checks of the public API (compiled by `npm test`, never run).
import { createClient, type Problem, type SessionOut } from "../dist/index.js";
const client = createClient({ baseUrl: "http://x", accessToken: "t", refreshToken: "r", onTokenRefresh: (t) => console.log(t.access_token) });
async function main(org: string, agent: string): Promise<SessionOut | Problem> {
  const { data, error, response } = await client.sessions.create(org, { agent_id: agent, timeout_s: 60 }, { idempotencyKey: "k" });
  if (error) {
    if (error.code === "session_limit_reached") console.log(response.headers.get("retry-after"));
    const f: string | undefined = error.errors?.[0]?.field;
    void f;
    return error;
  }
  const id: string = data.id;
  void id;
  const del = await client.agents.delete(org, agent);
  const nothing: undefined = del.data;
  void nothing;
  // @ts-expect-error kind must be a known EventKind
  await client.events.append(org, data.id, { events: [{ kind: "nope", payload: {} }] });
  // @ts-expect-error apiKey and accessToken are exclusive
  createClient({ baseUrl: "x", apiKey: "k", accessToken: "t" });
  const end = await client.events.stream(org, data.id, { onEvent: (e) => console.log(e.seq, e.kind, e.payload) });
  if (end.error) console.log(end.error.code);
  const raw = await client.raw.GET("/v1/orgs/{org_id}", { params: { path: { org_id: org } } });
  console.log(raw.data?.name);
  return data;
}
void main;
