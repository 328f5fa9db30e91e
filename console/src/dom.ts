// Small DOM helpers and the error area. No innerHTML anywhere: text goes in as text.
import type { Problem } from "../../clients/typescript/src/index.js";

/** The element with this id (it is in index.html; a missing one is a bug). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
}

type Attrs = Record<string, string | number | boolean | undefined>;

/** Creates an element: `h("td", { class: "x", "data-seq": 3 }, "text", child)`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | undefined)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== undefined) el.append(child);
  return el;
}

/** Shows or hides an element (the `hidden` attribute). */
export function show(el: HTMLElement, visible: boolean): void {
  el.hidden = !visible;
}

/** A problem or an exception as one line: `title: detail (code)`. */
export function describe(error: Problem | unknown): string {
  if (typeof error === "object" && error !== null && "title" in error && "code" in error) {
    const p = error as Problem;
    return `${p.title}: ${p.detail}${p.code ? ` (${p.code})` : ""}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Shows `error` in the error area (`data-testid="error"`), with its problem code as `data-code`. */
export function showError(error: Problem | unknown, prefix?: string): void {
  const area = byId("error");
  const text = describe(error);
  byId("error-text").textContent = prefix ? `${prefix}: ${text}` : text;
  const code = typeof error === "object" && error !== null && "code" in error ? String((error as Problem).code) : "";
  area.dataset["code"] = code;
  show(area, true);
}

export function clearError(): void {
  show(byId("error"), false);
  byId("error-text").textContent = "";
  delete byId("error").dataset["code"];
}

/** `2026-01-01T12:34:56Z` → local `12:34:56` (today) or a short date and time. */
export function formatTime(iso: string | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

/** Resolves after `ms`, or at once when `signal` aborts: the SDK's own. */
export { sleep } from "../../clients/typescript/src/index.js";

/** Exponential backoff for reconnects: 250 ms, 500 ms, 1 s, 2 s, 4 s, then 5 s; `reset()` after a success. */
export class Backoff {
  #failures = 0;
  constructor(
    readonly initialMs = 250,
    readonly maxMs = 5_000,
  ) {}
  next(): number {
    const ms = Math.min(this.maxMs, this.initialMs * 2 ** this.#failures);
    this.#failures += 1;
    return ms;
  }
  reset(): void {
    this.#failures = 0;
  }
}
