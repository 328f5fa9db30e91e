// The Agentdesk console: log in (password or single sign-on), pick an org, watch its
// sessions, open one (live desktop, timeline, chat, commands). Routes live in the hash:
// `#/orgs/<org>` and `#/orgs/<org>/sessions/<session>`. Tokens stay in sessionStorage (this
// tab only) and are rotated by the SDK.
import {
  type AgentdeskClient,
  type OrgOut,
  type Problem,
  type Result,
  type TokenOut,
  type UserOut,
  createClient,
} from "../../clients/typescript/src/index.js";
import type { App, View } from "./app.js";
import { byId, clearError, h, show, showError } from "./dom.js";
import { sessionView } from "./session.js";
import { sessionsView } from "./sessions.js";

const TOKENS_KEY = "agentdesk.console.tokens";
const ORG_KEY = "agentdesk.console.org";

type StoredTokens = { access_token: string; refresh_token?: string | undefined };

function storedTokens(): StoredTokens | undefined {
  try {
    const parsed = JSON.parse(sessionStorage.getItem(TOKENS_KEY) ?? "null") as StoredTokens | null;
    return parsed && typeof parsed.access_token === "string" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function storeTokens(tokens: StoredTokens): void {
  sessionStorage.setItem(TOKENS_KEY, JSON.stringify({ access_token: tokens.access_token, refresh_token: tokens.refresh_token }));
}

function newClient(): AgentdeskClient {
  const stored = storedTokens();
  return createClient({
    baseUrl: location.origin,
    ...(stored ? { accessToken: stored.access_token, refreshToken: stored.refresh_token } : {}),
    onTokenRefresh: (tokens: TokenOut) => storeTokens(tokens),
  });
}

let client = newClient();
let me: UserOut | undefined;
let orgs: OrgOut[] = [];
let view: View | undefined;

const app: App = {
  get client() {
    return client;
  },
  get me() {
    return me;
  },
  ok<T>(result: Result<T>, what: string): T | undefined {
    if (!result.error) return result.data;
    app.fail(result.error, what);
    return undefined;
  },
  fail(problem: Problem, what: string) {
    if (problem.status === 401) loggedOut("Your login has ended: log in again.");
    else showError(problem, what);
  },
};

const SECTIONS = ["login-view", "sessions-view", "session-view", "no-orgs-view"];
function showOnly(id: string | undefined): void {
  for (const s of SECTIONS) show(byId(s), s === id);
}

function leaveView(): void {
  view?.leave();
  view = undefined;
}

/** Where single sign-on sends the browser back to: this page, without query or hash. */
function redirectUri(): string {
  return new URL("./", location.href).href;
}

async function showLogin(): Promise<void> {
  leaveView();
  showOnly("login-view");
  show(byId("logout"), false);
  show(byId("org-label"), false);
  byId("whoami").textContent = "";
  const providers = await client.auth.oidcProviders();
  const names = providers.data?.items.map((p) => p.name) ?? [];
  const buttons = names.map((name) => {
    const b = h("button", { type: "button", class: "secondary", "data-testid": `sso-${name}`, "data-provider": name }, `Log in with ${name}`);
    b.addEventListener("click", () => location.assign(client.auth.oidcAuthorizeUrl(name, redirectUri())));
    return b;
  });
  byId("sso-buttons").replaceChildren(...buttons);
  show(byId("sso"), buttons.length > 0);
}

function loggedOut(message?: string): void {
  sessionStorage.removeItem(TOKENS_KEY);
  client = newClient();
  me = undefined;
  orgs = [];
  void showLogin();
  if (message) showError(message);
}

/** After a login: who am I, which orgs, then the route. */
async function enter(): Promise<void> {
  const who = await client.me.get();
  if (who.error) {
    if (who.error.status === 401) loggedOut();
    else showError(who.error, "Your account");
    return;
  }
  me = who.data;
  byId("whoami").textContent = me.display_name ? `${me.display_name} <${me.email}>` : me.email;
  show(byId("logout"), true);
  const listed = app.ok(await client.orgs.list({ limit: 200 }), "Organizations");
  if (!listed) return;
  orgs = listed.items;
  const picker = byId<HTMLSelectElement>("org-picker");
  picker.replaceChildren(...orgs.map((o) => h("option", { value: o.id }, o.name)));
  show(byId("org-label"), orgs.length > 0);
  route();
}

/** Shows the page the hash names (the remembered or first org when it names none). */
function route(): void {
  if (!me) return;
  const m = /^#\/orgs\/([^/]+)(?:\/sessions\/([^/]+))?/.exec(location.hash);
  const orgId = m?.[1];
  const sessionId = m?.[2];
  if (!orgId || !orgs.some((o) => o.id === orgId)) {
    const remembered = sessionStorage.getItem(ORG_KEY);
    const pick = orgs.find((o) => o.id === remembered) ?? orgs[0];
    if (!pick) {
      leaveView();
      showOnly("no-orgs-view");
      return;
    }
    location.replace(`#/orgs/${pick.id}`);
    return;
  }
  sessionStorage.setItem(ORG_KEY, orgId);
  byId<HTMLSelectElement>("org-picker").value = orgId;
  leaveView();
  clearError();
  view = sessionId ? sessionView(app, orgId, sessionId) : sessionsView(app, orgId);
  showOnly(view.section.id);
}

async function onLogin(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const button = byId<HTMLButtonElement>("login-submit");
  button.disabled = true;
  const email = byId<HTMLInputElement>("login-email").value.trim();
  const password = byId<HTMLInputElement>("login-password").value;
  try {
    const login = await client.auth.login({ email, password });
    if (login.error) {
      showError(login.error, "Log in");
      return;
    }
    storeTokens(login.data);
    byId<HTMLInputElement>("login-password").value = "";
    clearError();
    await enter();
  } catch (error) {
    showError(error, "Log in");
  } finally {
    button.disabled = false;
  }
}

/** `?code=` (or `?error=`) on the way back from single sign-on: exchange it, then drop it from the URL. */
async function finishSso(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return;
  history.replaceState(null, "", location.pathname + location.hash);
  if (error) {
    showError(`${error}${params.get("error_description") ? `: ${params.get("error_description")}` : ""}`, "Single sign-on");
    return;
  }
  const exchanged = await client.auth.oidcExchange({ code: code ?? "" });
  if (exchanged.error) showError(exchanged.error, "Single sign-on");
  else storeTokens(exchanged.data);
}

async function boot(): Promise<void> {
  byId<HTMLFormElement>("login-form").addEventListener("submit", (e) => void onLogin(e));
  byId("logout").addEventListener("click", async () => {
    await client.auth.logout().catch(() => undefined);
    loggedOut();
  });
  byId<HTMLSelectElement>("org-picker").addEventListener("change", (e) => {
    location.hash = `#/orgs/${(e.target as HTMLSelectElement).value}`;
  });
  byId("error-dismiss").addEventListener("click", clearError);
  window.addEventListener("hashchange", route);
  try {
    await finishSso();
    if (client.tokens.accessToken) await enter();
    else await showLogin();
  } catch (error) {
    showError(error, "Cannot reach the server");
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => void boot());
else void boot();
