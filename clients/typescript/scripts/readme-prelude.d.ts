// What the README's ```ts examples take as given (checked by scripts/check-readme.mjs): ids of
// things made earlier, a logged-in client, and the app's own functions. Nothing here is SDK API.
// A script (no top-level import), so these are global and `declare module` is ambient.

/** An organization the caller belongs to. */
declare const orgId: string;
/** An agent of that organization. */
declare const agentId: string;
/** A session of that organization. */
declare const sessionId: string;
/** Another member's user id. */
declare const bobId: string;
/** A logged-in client. */
declare const client: import("@agentdesk/client").AgentdeskClient;
/** Carol's logged-in client. */
declare const carolsClient: import("@agentdesk/client").AgentdeskClient;
/** The agent's model: the next command for a screenshot (PNG bytes, scale), or undefined when done. */
declare function decide(png: Uint8Array, scale: number): Promise<import("@agentdesk/client").CommandIn | undefined>;
/** The app's way of getting a link to a person. */
declare function send(url: string): void;
/** Node's environment (the README's examples read a few variables). */
declare const process: { env: Record<string, string | undefined> };

declare module "@novnc/novnc" {
  /** The part of noVNC's RFB class the README uses. */
  export default class RFB {
    constructor(target: Element, urlOrChannel: string | WebSocket);
    viewOnly: boolean;
    scaleViewport: boolean;
  }
}
