// What the views share: the client, the caller, and how a refused call is shown.
import type { AgentdeskClient, Problem, Result, UserOut } from "../../clients/typescript/src/index.js";

export interface App {
  readonly client: AgentdeskClient;
  /** The logged-in user (`me.get`). */
  readonly me: UserOut | undefined;
  /** The call's data, or undefined after showing its problem (a 401 ends the login). */
  ok<T>(result: Result<T>, what: string): T | undefined;
  /** Shows a problem (a 401 ends the login). */
  fail(problem: Problem, what: string): void;
}

/** A page of the console: its section, and how to leave it (abort streams, close sockets). */
export interface View {
  readonly section: HTMLElement;
  leave(): void;
}
