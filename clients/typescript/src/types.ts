// Schema types as the SDK hands them out: request types that accept `undefined` for absent
// optional fields (projects with `exactOptionalPropertyTypes`), and commands typed per kind.
import type { components, operations } from "./generated/v1.js";

type S = components["schemas"];

/**
 * `T` for input: every optional property also accepts `undefined` (meaning absent; it is not
 * sent), at every depth, so `{ timeout_s: options.timeout }` compiles under
 * `exactOptionalPropertyTypes`. Unions (e.g. `CommandIn` by `kind`) stay discriminated.
 */
export type Loose<T> = T extends readonly (infer U)[]
  ? Loose<U>[]
  : T extends object
    ? { [K in keyof T]: Loose<T[K]> | ({} extends Pick<T, K> ? undefined : never) }
    : T;

/** The query parameters of an operation, as input. */
export type Query<K extends keyof operations> = Loose<NonNullable<operations[K]["parameters"]["query"]>>;

/** A command's kind: `screenshot`, `click`, `move`, `scroll`, `type`, `key`, `clipboard_set`, `shell`, `open_url`. */
export type CommandKindName = S["CommandKindName"];
/** A command's state: `queued`, `dispatched`, `succeeded`, `failed`, `cancelled`, `expired`. */
export type CommandStatusName = S["CommandStatusName"];
/** A command to send (`commands.create`, `commands.run`): `{ kind, args }`, `args` typed per `kind`. */
export type CommandIn = S["CommandIn"];
/** The built-in executor's outcome of a finished command, typed per `kind` (narrow on `result.kind`). */
export type CommandResult = S["CommandResult"];
/** The built-in executor's outcome for a command of kind `K` (e.g. `CommandResultOf<"shell">`: `stdout`, `stderr`, `exit_code`, `truncated`). */
export type CommandResultOf<K extends CommandKindName> = Extract<CommandResult, { kind: K }>;

/**
 * A command of kind `K` as the server reports it: `result` (the built-in executor's typed
 * outcome, present once it finished) has the same kind; `output` is what an external executor
 * reported, verbatim (any JSON).
 */
export interface CommandOfKind<K extends CommandKindName> extends Omit<S["CommandOut"], "kind" | "result"> {
  /** What to do. */
  kind: K;
  /** The built-in executor's outcome once finished, of the command's own kind; absent for external executors (see `output`). */
  result?: CommandResultOf<K>;
}

/**
 * A command as the server reports it, discriminated by `kind`: `if (c.kind === "shell")`
 * narrows `c.result` to the shell outcome. `CommandOut<"shell">` is the shell command alone.
 */
export type CommandOut<K extends CommandKindName = CommandKindName> = K extends CommandKindName ? CommandOfKind<K> : never;

/** A page of commands (`commands.list`), typed per kind. */
export interface CommandList extends Omit<S["CommandList"], "items"> {
  /** The commands, oldest first. */
  items: CommandOut[];
}

/**
 * `Spec` when the spec declares a closed set (an enum), else `Documented`: the values the
 * spec's description lists for a field it still types as `string`. The SDK then follows the
 * spec by itself once the field becomes an enum there.
 */
type ClosedSet<Spec, Documented extends string> = string extends Spec ? Documented : Spec;

/** Who acted in an audit event: `user`, `api_key`, `anonymous` (e.g. a failed login) or `erased_user` (an account erased by `me.delete`). */
export type AuditActorType = ClosedSet<S["AuditActor"]["type"], "user" | "api_key" | "anonymous" | "erased_user">;
/** What an audit event acted on. */
export type AuditTargetType = ClosedSet<
  S["AuditTarget"]["type"],
  "user" | "organization" | "membership" | "agent" | "session" | "command" | "job" | "role" | "api_key" | "invitation"
>;
/** How the audited action ended: `success` or `failure`. */
export type AuditOutcome = ClosedSet<S["AuditEventOut"]["outcome"], "success" | "failure">;

/** Who acted (`type` closed, `id` the user's or API key's when known). */
export interface AuditActor extends Omit<S["AuditActor"], "type"> {
  /** `user`, `api_key`, `anonymous` or `erased_user` (`id` is then a pseudonym). */
  type: AuditActorType;
}

/** What was acted on (`type` closed, `id` when there is one). */
export interface AuditTarget extends Omit<S["AuditTarget"], "type"> {
  /** The kind of thing (for `membership`, `id` is the member's user id). */
  type: AuditTargetType;
}

/** One audit event, its actor, target and outcome typed as closed sets. */
export interface AuditEventOut extends Omit<S["AuditEventOut"], "actor" | "target" | "outcome"> {
  /** Who acted. */
  actor: AuditActor;
  /** What was acted on. */
  target: AuditTarget;
  /** `success` or `failure`. */
  outcome: AuditOutcome;
}

/** A page of audit events (`audit.list`), newest first. */
export interface AuditEventList extends Omit<S["AuditEventList"], "items"> {
  /** The events, newest first. */
  items: AuditEventOut[];
}

/** `Problem.current_status`: the session's status (`invalid_transition`, `session_not_live`, `status_unreachable`). */
export type ProblemCurrentStatus = ClosedSet<NonNullable<S["Problem"]["current_status"]>, S["SessionStatus"]>;
