// An org's sessions: the table (sessions.list) kept live by the org's status stream
// (events.stream_org), starting a session for an agent (sessions.create) and stopping one.
import type { AgentOut, SessionOut, SessionStatus } from "../../clients/typescript/src/index.js";
import type { App, View } from "./app.js";
import { Backoff, byId, describe, formatTime, h, show, sleep } from "./dom.js";

const LIVE: readonly SessionStatus[] = ["pending", "provisioning", "running"];

export function sessionsView(app: App, orgId: string): View {
  const controller = new AbortController();
  const signal = controller.signal;
  const body = byId<HTMLTableSectionElement>("sessions-body");
  const streamState = byId("org-stream-state");
  const agentSelect = byId<HTMLSelectElement>("start-agent");
  const startForm = byId<HTMLFormElement>("start-form");
  const agents = new Map<string, AgentOut>();
  body.replaceChildren();

  function statusBadge(status: string): HTMLElement {
    return h("span", { class: `status status-${status}`, "data-testid": "session-status" }, status);
  }

  function row(s: SessionOut): HTMLTableRowElement {
    const open = h("a", { href: `#/orgs/${orgId}/sessions/${s.id}`, "data-testid": "session-open" }, "Open");
    const stop = h("button", { type: "button", class: "danger", "data-testid": "session-stop-row" }, "Stop");
    stop.hidden = !LIVE.includes(s.status);
    stop.addEventListener("click", () => void stopSession(s.id, stop));
    return h(
      "tr",
      { "data-testid": "session-row", "data-session-id": s.id, "data-status": s.status },
      h("td", {}, h("code", { title: s.id }, s.id.slice(-12))),
      h("td", {}, agents.get(s.agent_id)?.name ?? s.agent_id),
      h("td", { class: "status-cell" }, statusBadge(s.status)),
      h("td", {}, formatTime(s.started_at ?? s.created_at)),
      h("td", { class: "actions" }, open, stop),
    );
  }

  function setStatus(sessionId: string, status: SessionStatus): boolean {
    const tr = body.querySelector<HTMLTableRowElement>(`tr[data-session-id="${CSS.escape(sessionId)}"]`);
    if (!tr) return false;
    tr.dataset["status"] = status;
    tr.querySelector(".status-cell")?.replaceChildren(statusBadge(status));
    const stop = tr.querySelector<HTMLButtonElement>('[data-testid="session-stop-row"]');
    if (stop) stop.hidden = !LIVE.includes(status);
    return true;
  }

  async function stopSession(sessionId: string, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    const stopped = app.ok(await app.client.sessions.stop(orgId, sessionId), "Stop session");
    button.disabled = false;
    if (stopped) setStatus(sessionId, stopped.status);
  }

  async function loadAgents(): Promise<void> {
    const listed = app.ok(await app.client.agents.list(orgId, { limit: 200 }, { signal }), "Agents");
    if (!listed) return;
    agents.clear();
    agentSelect.replaceChildren();
    for (const a of listed.items) {
      agents.set(a.id, a);
      agentSelect.append(h("option", { value: a.id }, a.name));
    }
    show(startForm, listed.items.length > 0);
  }

  let listing: Promise<void> | undefined;
  /** Re-reads the table (concurrent calls share one read). */
  function reload(): Promise<void> {
    listing ??= (async () => {
      try {
        const listed = app.ok(await app.client.sessions.list(orgId, { limit: 50 }, { signal }), "Sessions");
        if (!listed || signal.aborted) return;
        body.replaceChildren(...listed.items.map(row));
        show(byId("sessions-empty"), listed.items.length === 0);
      } finally {
        listing = undefined;
      }
    })();
    return listing;
  }

  /** Follows the org's status stream for as long as the view is shown, restarting it when it ends. */
  async function follow(): Promise<void> {
    const backoff = new Backoff(250, 5_000);
    while (!signal.aborted) {
      streamState.textContent = "Live";
      streamState.dataset["state"] = "live";
      try {
        const end = await app.client.events.streamOrg(orgId, {
          signal,
          reconnect: { maxRetries: 3, initialDelayMs: 250, maxDelayMs: 5_000 },
          onReconnect: () => reload(),
          onEvent: (e) => {
            backoff.reset();
            if (!setStatus(e.session_id, e.status)) void reload();
          },
        });
        if (end.reason === "aborted") return;
        if (end.reason === "problem" && end.error.status !== 429 && end.error.status < 500) {
          app.fail(end.error, "Live updates");
          streamState.textContent = `Live updates stopped: ${describe(end.error)}`;
          streamState.dataset["state"] = "stopped";
          return;
        }
      } catch (error) {
        if (signal.aborted) return;
        streamState.textContent = `Reconnecting (${describe(error)})…`;
      }
      streamState.dataset["state"] = "reconnecting";
      await sleep(backoff.next(), signal);
      if (!signal.aborted) await reload();
    }
  }

  const onStart = async (event: SubmitEvent) => {
    event.preventDefault();
    const agentId = agentSelect.value;
    if (!agentId) return;
    const button = byId<HTMLButtonElement>("start-session");
    button.disabled = true;
    const created = app.ok(
      await app.client.sessions.create(orgId, { agent_id: agentId }, { idempotencyKey: crypto.randomUUID() }),
      "Start session",
    );
    button.disabled = false;
    if (created) {
      if (!setStatus(created.id, created.status)) body.prepend(row(created));
      show(byId("sessions-empty"), false);
    }
  };
  startForm.addEventListener("submit", onStart);

  void (async () => {
    await loadAgents();
    await reload();
    await follow();
  })();

  return {
    section: byId("sessions-view"),
    leave() {
      controller.abort();
      startForm.removeEventListener("submit", onStart);
    },
  };
}
