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
  // Roles are free strings now (built-in or custom); roles.update needs If-Match.
  // members.add (deprecated) invites: 202 InvitationCreatedOut; MemberOut only from the earlier contract.
  const added = await client.members.add(org, { email: "bob@example.com", role: "support-lead" });
  if (added.data && "token" in added.data) console.log(added.data.accept_url);
  const signedUp = await client.auth.signup({ email: "a@example.com", password: "at least 12 chars", display_name: "A" });
  const status: string | undefined = signedUp.data?.status;
  void status;
  const verified: undefined = (await client.auth.verifyEmail({ token: "ev_x" })).data;
  void verified;
  // @ts-expect-error verifyEmail needs the token
  await client.auth.verifyEmail({});
  const left = await client.me.leaveOrg(org);
  if (left.error?.code === "last_owner") console.log(left.error.detail);
  const resent = await client.me.sendVerification();
  if (resent.error?.code === "email_already_verified") console.log(resent.error.detail);
  const me = await client.me.get();
  const emailVerified: boolean | undefined = me.data?.email_verified;
  void emailVerified;
  const role = await client.roles.get(org, "support-lead");
  const etag = role.response.headers.get("etag") ?? `"${role.data?.version ?? 0}"`;
  await client.roles.update(org, "support-lead", { permissions: ["sessions:read"] }, { ifMatch: etag });
  // @ts-expect-error roles.update needs ifMatch
  await client.roles.update(org, "support-lead", { permissions: [] }, {});
  const key = await client.apiKeys.create(org, { name: "ci", role: "viewer" });
  if (key.data) createClient({ baseUrl: "x", apiKey: key.data.secret });
  const invite = await client.invitations.create(org, { email: "bob@example.com", role: "viewer" });
  const accepted = await client.invitations.accept(invite.data?.token ?? "");
  if (accepted.error?.code === "invitation_used") console.log(accepted.error.detail);
  const url: string = client.auth.oidcAuthorizeUrl("google", "https://app.example.com/sso");
  void url;
  const exported = await client.me.export();
  console.log(exported.data?.profile.email, (await client.permissions.list()).data?.items.length);
  // The live desktop: a ticket, or the WebSocket opened with one (for noVNC).
  const ticket = await client.desktop.ticket(org, data.id, "control");
  const protocols: string[] | undefined = ticket.data?.protocols;
  void protocols;
  // @ts-expect-error the mode is view | control
  await client.desktop.ticket(org, data.id, "watch");
  const socket = await client.desktop.open(org, data.id, { mode: "view" });
  if (socket.data) socket.data.addEventListener("close", (e) => console.log(e.code));
  else if (socket.error.code === "session_not_running") console.log(socket.error.detail);
  class OtherSocket {
    binaryType = "nodebuffer";
    constructor(readonly url: string, readonly protocols: string[]) {}
  }
  const other: OtherSocket | undefined = (await client.desktop.open(org, data.id, { mode: "control", WebSocket: OtherSocket })).data;
  void other;
  const providers = await client.auth.oidcProviders();
  providers.data?.items.forEach((p) => console.log(client.auth.oidcAuthorizeUrl(p.name, "https://app.example.com/console/")));
  const raw = await client.raw.GET("/v1/orgs/{org_id}", { params: { path: { org_id: org } } });
  console.log(raw.data?.name);
  return data;
}
void main;
