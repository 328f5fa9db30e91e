// One session: its live desktop (view, Take control, Release), its event timeline, a chat box
// (a `message` event) and a command box for the kinds the agent's capabilities allow.
import type { Capability, CommandIn, CommandKindName, SessionStatus } from "../../clients/typescript/src/index.js";
import type { App, View } from "./app.js";
import { byId, clearError, h, show, showError } from "./dom.js";
import { Timeline } from "./timeline.js";
import { DesktopViewer } from "./viewer.js";

/** The capability each command kind needs (see `CommandIn` in the spec). */
const KIND_CAPABILITY: Record<CommandKindName, Capability> = {
  screenshot: "desktop:screen.capture",
  click: "desktop:input.pointer",
  move: "desktop:input.pointer",
  scroll: "desktop:input.pointer",
  type: "desktop:input.keyboard",
  key: "desktop:input.keyboard",
  clipboard_set: "desktop:clipboard",
  shell: "desktop:shell",
  open_url: "browser:navigate",
};

/** The arguments a kind's box starts with. */
const EXAMPLE_ARGS: Record<CommandKindName, object> = {
  screenshot: {},
  click: { x: 100, y: 100 },
  move: { x: 100, y: 100 },
  scroll: { x: 100, y: 100, dx: 0, dy: 3 },
  type: { text: "hello" },
  key: { keys: "Return" },
  clipboard_set: { text: "hello" },
  shell: { command: "uname -a" },
  open_url: { url: "https://example.com" },
};

const LIVE: readonly SessionStatus[] = ["pending", "provisioning", "running"];

export function sessionView(app: App, orgId: string, sessionId: string): View {
  const controller = new AbortController();
  const signal = controller.signal;
  const title = byId("session-title");
  const badge = byId("session-status");
  const stopButton = byId<HTMLButtonElement>("session-stop");
  const pane = byId("desktop").parentElement as HTMLElement;
  const modeEl = byId("desktop-mode");
  const stateEl = byId("desktop-state");
  const take = byId<HTMLButtonElement>("take-control");
  const release = byId<HTMLButtonElement>("release-control");
  const reconnect = byId<HTMLButtonElement>("desktop-reconnect");
  const chatForm = byId<HTMLFormElement>("chat-form");
  const chatInput = byId<HTMLInputElement>("chat-input");
  const commandForm = byId<HTMLFormElement>("command-form");
  const kindSelect = byId<HTMLSelectElement>("command-kind");
  const argsBox = byId<HTMLTextAreaElement>("command-args");
  let status: SessionStatus | undefined;
  /** Status events up to the loaded session's `last_seq` are history, not changes. */
  let loadedSeq = Number.MAX_SAFE_INTEGER;

  title.textContent = `Session ${sessionId.slice(-12)}`;
  badge.textContent = "";
  kindSelect.replaceChildren();
  argsBox.value = "";

  const viewer = new DesktopViewer(app.client, orgId, sessionId, byId("desktop"), {
    onState(state, mode, note) {
      modeEl.dataset["mode"] = mode;
      modeEl.textContent = mode === "control" ? "In control" : "View only";
      stateEl.dataset["state"] = state;
      stateEl.textContent = note;
      const busy = state === "connecting" || state === "reconnecting";
      take.hidden = mode === "control";
      release.hidden = mode !== "control";
      take.disabled = busy || status !== "running";
      release.disabled = busy;
      reconnect.hidden = state !== "closed" || status !== "running";
      pane.classList.toggle("controlling", mode === "control" && state === "connected");
    },
    onProblem: (problem, context) => app.fail(problem, context),
  });

  function setStatus(next: SessionStatus): void {
    const was = status;
    status = next;
    badge.textContent = next;
    badge.className = `status status-${next}`;
    badge.dataset["status"] = next;
    stopButton.hidden = !LIVE.includes(next);
    take.disabled = next !== "running" || viewer.state !== "connected";
    if (next === "running" && was !== "running" && (viewer.state === "idle" || viewer.state === "closed")) {
      viewer.connect("view");
    }
  }

  const timeline = new Timeline(app.client, orgId, sessionId, byId<HTMLOListElement>("timeline"), {
    onEvent(event) {
      const next = event.kind === "status" ? (event.payload as { status?: SessionStatus }).status : undefined;
      if (next && event.seq > loadedSeq) setStatus(next);
    },
    onState(state, note) {
      const el = byId("timeline-state");
      el.dataset["state"] = state;
      el.textContent = state === "live" ? "" : `(${note})`;
    },
    onProblem: (problem) => app.fail(problem, "Timeline"),
  });

  async function load(): Promise<void> {
    const session = app.ok(await app.client.sessions.get(orgId, sessionId, { signal }), "Session");
    if (!session || signal.aborted) return;
    loadedSeq = session.last_seq;
    setStatus(session.status);
    if (session.status !== "running") {
      viewer.close();
      stateEl.textContent = "The desktop is shown while the session is running.";
    }
    void timeline.follow();
    const agent = app.ok(await app.client.agents.get(orgId, session.agent_id, { signal }), "Agent");
    if (!agent || signal.aborted) return;
    title.textContent = `${agent.name} · ${sessionId.slice(-12)}`;
    const kinds = (Object.keys(KIND_CAPABILITY) as CommandKindName[]).filter((k) => agent.capabilities.includes(KIND_CAPABILITY[k]));
    kindSelect.replaceChildren(...kinds.map((k) => h("option", { value: k }, k)));
    show(byId("command-none"), kinds.length === 0);
    byId<HTMLButtonElement>("command-send").disabled = kinds.length === 0;
    if (kinds[0]) argsBox.value = JSON.stringify(EXAMPLE_ARGS[kinds[0]]);
  }

  const onKind = () => {
    argsBox.value = JSON.stringify(EXAMPLE_ARGS[kindSelect.value as CommandKindName] ?? {});
  };
  const onCommand = async (event: SubmitEvent) => {
    event.preventDefault();
    let args: unknown;
    try {
      args = argsBox.value.trim() === "" ? {} : JSON.parse(argsBox.value);
    } catch (error) {
      showError(error, "Arguments are not valid JSON");
      return;
    }
    const body = { kind: kindSelect.value, args } as CommandIn;
    const sent = app.ok(
      await app.client.commands.create(orgId, sessionId, body, { idempotencyKey: crypto.randomUUID() }),
      `Command ${kindSelect.value}`,
    );
    if (sent) clearError();
  };
  const onChat = async (event: SubmitEvent) => {
    event.preventDefault();
    const text = chatInput.value.trim();
    if (!text) return;
    const button = byId<HTMLButtonElement>("chat-send");
    button.disabled = true;
    const payload: Record<string, unknown> = { text };
    if (app.me) payload["from"] = app.me.display_name || app.me.email;
    const sent = app.ok(
      await app.client.events.append(orgId, sessionId, { events: [{ kind: "message", payload }] }, { idempotencyKey: crypto.randomUUID() }),
      "Message",
    );
    button.disabled = false;
    if (sent) chatInput.value = "";
  };
  const onStop = async () => {
    stopButton.disabled = true;
    const stopped = app.ok(await app.client.sessions.stop(orgId, sessionId), "Stop session");
    stopButton.disabled = false;
    if (stopped) setStatus(stopped.status);
  };
  const onTake = () => viewer.connect("control");
  const onRelease = () => viewer.connect("view");
  const onReconnect = () => viewer.connect(viewer.mode);

  kindSelect.addEventListener("change", onKind);
  commandForm.addEventListener("submit", onCommand);
  chatForm.addEventListener("submit", onChat);
  stopButton.addEventListener("click", onStop);
  take.addEventListener("click", onTake);
  release.addEventListener("click", onRelease);
  reconnect.addEventListener("click", onReconnect);
  void load();

  return {
    section: byId("session-view"),
    leave() {
      controller.abort();
      viewer.close();
      timeline.close();
      kindSelect.removeEventListener("change", onKind);
      commandForm.removeEventListener("submit", onCommand);
      chatForm.removeEventListener("submit", onChat);
      stopButton.removeEventListener("click", onStop);
      take.removeEventListener("click", onTake);
      release.removeEventListener("click", onRelease);
      reconnect.removeEventListener("click", onReconnect);
    },
  };
}
