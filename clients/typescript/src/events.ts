// A session's events typed per `kind`. The server writes `status` events only, so their
// payload is exact; it also writes `action`, `result` and `screenshot` events for commands,
// but clients may append events of those kinds with any payload (`events.append`), so their
// payload type says so, and the type guards below narrow to the server's shape after checking
// it. `message` and `log` are free-form.
import type { components } from "./generated/v1.js";

type S = components["schemas"];

/** A JSON object (what `events.append` accepts as a payload). */
export type JsonObject = { [key: string]: unknown };

/** An event kind: `status`, `action`, `result`, `screenshot`, `message` or `log`. */
export type EventKind = S["EventKind"];
/** A session's lifecycle status: `pending`, `provisioning`, `running`, `stopping`, `stopped`, `failed`. */
export type SessionStatus = S["SessionStatus"];

/** The payload of a `status` event (written by the server only): `status`, `previous_status`, `reason`. */
export type StatusEventPayload = S["StatusEventPayload"];
/** The payload of the `action` event the server writes when it accepts a command: `command_id`, `kind`, `args`. */
export type ActionEventPayload = S["ActionEventPayload"];
/**
 * The payload of the `result` event the server writes when a command finishes: `command_id`,
 * `kind`, `status` (`succeeded` | `failed`), `output` (an external executor's, verbatim, or
 * `null`), `result` (the built-in executor's outcome typed per kind, as `CommandOut.result`, or
 * `null`), `error`, `error_code`. (`result` is restated here: the generator reads the spec's
 * nullable reference to the `kind`-discriminated `CommandResult` as an `Omit` of `kind`.)
 */
export type ResultEventPayload = Omit<S["ResultEventPayload"], "result"> & {
  /** The built-in executor's typed outcome (narrow on `result.kind`); `null` for an external executor. */
  result: S["CommandResult"] | null;
};
/** The payload of the `screenshot` event the server writes for a screenshot command: `command_id`, `artifact_id`, `width`, `height` (pixels), `scale`, `media_type`, `bytes`. */
export type ScreenshotEventPayload = S["ScreenshotEventPayload"];

/**
 * The payload type per event kind: exact for `status`; for `action`, `result` and `screenshot`
 * the server's shape or any JSON object a client appended (narrow with {@link isCommandAction},
 * {@link isCommandResult}, {@link isCommandScreenshot}); any JSON object for `message` and `log`.
 */
export interface EventPayloads {
  /** Written by the server only. */
  status: StatusEventPayload;
  /** The server's (a command accepted), or a client's. */
  action: ActionEventPayload | JsonObject;
  /** The server's (a command finished), or a client's. */
  result: ResultEventPayload | JsonObject;
  /** The server's (a screenshot command's image), or a client's. */
  screenshot: ScreenshotEventPayload | JsonObject;
  /** Free-form (e.g. chat: `{ text, from }`). */
  message: JsonObject;
  /** Free-form (e.g. `{ line, level }`). */
  log: JsonObject;
}

/**
 * One event of a session's log, of kind `K`: `seq` (gapless from 1, the SSE `id:`), `kind`,
 * `payload` (typed per kind, see {@link EventPayloads}) and `created_at` (RFC 3339, UTC).
 */
export interface EventOf<K extends EventKind> extends Omit<S["EventOut"], "kind" | "payload"> {
  /** The kind (the SSE `event:`). */
  kind: K;
  /** The event's data, typed per kind. */
  payload: EventPayloads[K];
}

/**
 * One event of a session's log: a union discriminated by `kind`, so `if (e.kind === "status")`
 * narrows `e.payload` to {@link StatusEventPayload}.
 */
export type SessionEvent = { [K in EventKind]: EventOf<K> }[EventKind];

const isObject = (value: unknown): value is JsonObject => typeof value === "object" && value !== null && !Array.isArray(value);
const isString = (value: unknown): value is string => typeof value === "string";
const isNumber = (value: unknown): value is number => typeof value === "number";

/** Whether `event` is the `action` event the server wrote for an accepted command (checks the payload's shape). */
export function isCommandAction(event: SessionEvent): event is EventOf<"action"> & { payload: ActionEventPayload } {
  if (event.kind !== "action") return false;
  const p: JsonObject = event.payload;
  return isString(p["command_id"]) && isString(p["kind"]) && isObject(p["args"]);
}

/** Whether `event` is the `result` event the server wrote for a finished command (checks the payload's shape). */
export function isCommandResult(event: SessionEvent): event is EventOf<"result"> & { payload: ResultEventPayload } {
  if (event.kind !== "result") return false;
  const p: JsonObject = event.payload;
  const result = p["result"];
  return (
    isString(p["command_id"]) &&
    isString(p["kind"]) &&
    isString(p["status"]) &&
    (result === undefined || result === null || (isObject(result) && isString(result["kind"])))
  );
}

/** Whether `event` is the `screenshot` event the server wrote for a screenshot command (checks the payload's shape). */
export function isCommandScreenshot(event: SessionEvent): event is EventOf<"screenshot"> & { payload: ScreenshotEventPayload } {
  if (event.kind !== "screenshot") return false;
  const p: JsonObject = event.payload;
  return (
    isString(p["command_id"]) &&
    isString(p["artifact_id"]) &&
    isNumber(p["width"]) &&
    isNumber(p["height"]) &&
    isNumber(p["scale"])
  );
}

/** `stopped` or `failed`: nothing follows. */
export function isFinalStatus(status: SessionStatus): boolean {
  return status === "stopped" || status === "failed";
}

/** Whether `event` is the session's final `status` event (`stopped` or `failed`): the log ends with it. */
export function isFinalEvent(event: SessionEvent): boolean {
  return event.kind === "status" && isFinalStatus(event.payload.status);
}

const NEXT: Record<SessionStatus, readonly SessionStatus[]> = {
  pending: ["provisioning", "stopping", "failed"],
  provisioning: ["running", "stopping", "failed"],
  running: ["stopping", "failed"],
  stopping: ["stopped", "failed"],
  stopped: [],
  failed: [],
};

/**
 * Whether a session in status `from` can still reach `to` (or is in it), by the server's
 * state machine: `pending → provisioning → running → stopping → stopped`, `stopping` from any
 * of the first three, `failed` from any live status.
 */
export function canReach(from: SessionStatus, to: SessionStatus): boolean {
  if (from === to) return true;
  const seen = new Set<SessionStatus>([from]);
  const todo: SessionStatus[] = [from];
  for (let s = todo.pop(); s !== undefined; s = todo.pop()) {
    for (const next of NEXT[s]) {
      if (next === to) return true;
      if (!seen.has(next)) {
        seen.add(next);
        todo.push(next);
      }
    }
  }
  return false;
}

/** Parses one `data:` of the session stream (an `EventOut` as JSON). */
export function parseEvent(data: string): SessionEvent {
  return JSON.parse(data) as SessionEvent;
}
