// Responses a fake `fetch` answers with, shared by the offline tests (`node --test` also loads
// this file as a test file: it has none).

/** The base URL the offline tests give the client. */
export const BASE = "http://agentdesk.test";

/** An RFC 9457 problem body with `code`. */
export const problemBody = (status, code, extra = {}) => ({
  type: `urn:agentdesk:problem:${code}`,
  title: "T",
  status,
  detail: `d-${code}`,
  code,
  ...extra,
});

/** A JSON response. */
export const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

/** A problem+json response; `extra` adds members to the body. */
export const problem = (status, code, headers = {}, extra = {}) =>
  new Response(JSON.stringify(problemBody(status, code, extra)), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });

/** The token pair number `n` (`access-n`, `refresh-n`) of a fake `auth.login`/`auth.refresh`. */
export const tokens = (n) => ({
  access_token: `access-${n}`,
  token_type: "Bearer",
  expires_in: 900,
  refresh_token: `refresh-${n}`,
  refresh_expires_in: 86400,
});
