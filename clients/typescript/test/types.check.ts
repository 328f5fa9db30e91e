// Type-level checks of the public API (compiled by `npm test`, never run).
import {
  AgentdeskError,
  createClient,
  isCommandAction,
  isCommandResult,
  storageTokenStore,
  indexedDbTokenStore,
  IDEMPOTENT_POST_PATHS,
  type AgentdeskClient,
  type CommandOut,
  type EventOf,
  type InvitationCreatedOut,
  type LogoutInfo,
  type MemberOut,
  type Result,
  type paths,
  type Problem,
  type ProblemCode,
  type SessionEvent,
  type SessionOut,
  type SessionStatus,
} from "../dist/esm/index.js";
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
  const signedUp = await client.auth.signup({ email: "a@example.com", password: "ten chars!", display_name: "A" });
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

// ── 2.0: closed problem codes, typed events and commands, `| undefined` options, unwrap ──
async function v2(org: string, session: string, maybe: number | undefined, etag: string | null, env: string | undefined) {
  const c = createClient({ baseUrl: "http://x", apiKey: env, maxRetries: undefined, headers: undefined });
  createClient({ baseUrl: "http://x", tokenStore: storageTokenStore(localStorage) });
  createClient({ baseUrl: "http://x", tokenStore: indexedDbTokenStore({ database: "app", key: undefined }) });
  // @ts-expect-error a token store and tokens are exclusive
  createClient({ baseUrl: "x", tokenStore: storageTokenStore(localStorage), accessToken: "t" });
  const created = await c.sessions.create(org, { agent_id: "a", timeout_s: maybe, metadata: undefined }, { idempotencyKey: undefined, signal: undefined });
  await c.orgs.update(org, { name: "n" }, { ifMatch: etag ?? undefined });
  await c.sessions.list(org, { status: undefined, limit: maybe, cursor: undefined });
  if (created.error) {
    const code: ProblemCode = created.error.code;
    // @ts-expect-error a misspelt code does not compile (the union is closed)
    if (created.error.code === "sesion_limit_reached") console.log(code);
    // @ts-expect-error no code outside the spec's and the client's own
    const bad: ProblemCode = "no_such_code";
    void bad;
    const clientMade: ProblemCode[] = ["unexpected_response", "timeout", "status_unreachable", "command_failed", "route_not_found", "method_not_allowed"];
    void clientMade;
  }
  const running: SessionOut = await c.sessions.waitFor(org, session, "running", { timeoutMs: 60_000, signal: undefined }).unwrap();
  // @ts-expect-error not a session status
  await c.sessions.waitFor(org, session, "runing");
  const shell = await c.commands.run(org, running.id, { kind: "shell", args: { command: "ls", timeout_s: maybe } }).unwrap();
  const stdout: string | undefined = shell.result?.stdout;
  const shellKind: "shell" = shell.kind;
  void [stdout, shellKind];
  const click = await c.commands.run(org, running.id, { kind: "click", args: { x: 1, y: 2 } }).unwrap();
  const clickKind: "click" | undefined = click.result?.kind;
  // @ts-expect-error a click's result has no typed stdout
  const clickOut: string | undefined = click.result?.stdout;
  void [clickKind, clickOut];
  // @ts-expect-error shell needs its command
  await c.commands.run(org, running.id, { kind: "shell", args: {} });
  const listed = await c.commands.list(org, session).unwrap();
  for (const cmd of listed.items) {
    if (cmd.kind === "screenshot" && cmd.result) console.log(cmd.result.artifact_id, cmd.result.width);
    if (cmd.result?.kind === "shell") console.log(cmd.result.exit_code);
  }
  const one: CommandOut<"shell"> = shell;
  void one;
  for await (const e of c.events.iterate(org, session, { afterSeq: undefined })) {
    if (e.kind === "status") {
      const now: SessionStatus = e.payload.status;
      const before: SessionStatus | null = e.payload.previous_status;
      void [now, before];
    }
    if (e.kind === "action") {
      // @ts-expect-error an action payload may be a client's: not known to be a string without the guard
      const id: string = e.payload["command_id"];
      void id;
    }
    if (isCommandAction(e)) {
      const id: string = e.payload.command_id;
      void id;
    }
    if (isCommandResult(e) && e.payload.result?.kind === "shell") console.log(e.payload.result.stdout);
    if (e.kind === "message") console.log(e.payload["text"]);
  }
  const seqs: number[] = (await c.events.listAll(org, session, { kind: "status" }).toArray()).map((e: SessionEvent) => e.seq);
  void seqs;
  const status: EventOf<"status"> | undefined = undefined;
  void status;
  for await (const s of c.sessions.listAll(org, { status: "running" })) {
    const id: string = s.id;
    void id;
  }
  try {
    await c.orgs.get(org).unwrap();
  } catch (e) {
    if (e instanceof AgentdeskError && e.code === "not_found") console.log(e.problem.detail, e.requestId);
  }
  const p: Problem | undefined = (await c.me.get()).error;
  if (p?.code === "invalid_transition") {
    const was: SessionStatus | undefined = p.current_status;
    void was;
  }
  for await (const a of c.audit.listAll(org)) {
    const who: "user" | "api_key" | "anonymous" | "erased_user" = a.actor.type;
    const outcome: "success" | "failure" = a.outcome;
    // @ts-expect-error the actor types are a closed set
    if (a.actor.type === "usr") console.log(who, outcome);
  }
}
void v2;

// The POSTs the transport retries are exactly the spec's operations that declare an
// `Idempotency-Key` header: a new one in the spec fails here until IDEMPOTENT_POST_PATHS lists it.
type IdempotentSpecPost = {
  [P in keyof paths]: paths[P] extends { post: { parameters: { header?: infer H } } }
    ? [NonNullable<H>] extends [never]
      ? never
      : "Idempotency-Key" extends keyof NonNullable<H>
        ? P
        : never
    : never;
}[keyof paths];
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const idempotentPathsMatchSpec: Equal<(typeof IDEMPOTENT_POST_PATHS)[number], IdempotentSpecPost> = true;
void idempotentPathsMatchSpec;

// members.add (deprecated) has an explicit type: no import of a package that is not a dependency.
async function membersAddType(c: AgentdeskClient, org: string) {
  const added: Result<InvitationCreatedOut | MemberOut> = await c.members.add(org, { email: "b@example.com", role: "viewer" });
  void added;
}
void membersAddType;

// onLogout is told why, with the problem; onTokenRefresh may be async.
createClient({
  baseUrl: "http://x",
  tokenStore: indexedDbTokenStore(),
  onTokenRefresh: async (t) => void t.refresh_token,
  onLogout: (info: LogoutInfo) => console.log(info.reason === "refresh_refused", info.problem.code),
});

// timeoutMs: Infinity waits without a limit.
async function unbounded(c: AgentdeskClient, org: string) {
  const waited = await c.sessions.waitFor(org, "s", "running", { timeoutMs: Infinity });
  void waited;
}
void unbounded;
