"""Schemathesis hooks for the Agentdesk run (loaded through `hooks` in schemathesis.toml).

Two narrow adjustments, each for a reason the spec cannot change:

1. `before_load_schema`: the SSE responses are translated into the form schemathesis validates.
2. `filter_failure`: "schema-valid request rejected" (ST202) is dropped when, and only when, the
   server's RFC 9457 problem names a rejection that depends on server *state* rather than on the
   request's shape. The summary counts what was dropped ("N dropped by filter_failure").
"""

from __future__ import annotations

import json
import re
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData


# 1. Server-sent events -----------------------------------------------------------------------
#
# poem-openapi writes an `EventStream<T>` response as
#     text/event-stream: {schema: {type: array, format: event-stream, items: T}}
# (OpenAPI 3.0 has no standard for event streams). Schemathesis reads the `schema` of an
# OpenAPI < 3.2 event stream as the schema of *one event* — the `{event, id, data}` object of
# the SSE wire format, as OpenAPI 3.2's `itemSchema` does — so it would report every event as
# "not of type array". The translation keeps the meaning (each event's `data` is T as JSON)
# and keeps T validated, through schemathesis' own `contentMediaType`/`contentSchema` support.
@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    for path_item in raw_schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                media = response.get("content", {}).get("text/event-stream")
                schema = media.get("schema") if media else None
                if not schema or schema.get("format") != "event-stream" or "items" not in schema:
                    continue
                media["schema"] = {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "event": {"type": "string"},
                        "id": {"type": "string"},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": schema["items"],
                        },
                    },
                }


# 2. Rejections that depend on state, not on the request's shape ------------------------------
#
# A schema says which requests are well formed; it cannot say which ids exist, which password
# is current or which keys were already used. Each entry: (problem `code`, field pattern,
# message pattern); `None` matches any. A 4xx is forgiven only if *every* field error it names
# is listed, so a shape error in the same request still fails the run.
STATE_DEPENDENT = [
    # Idempotency-Key already used by this caller for a different request (method, path or
    # body): schemathesis reuses simple values like "0" or "000…0" across operations and cases.
    ("idempotency_key_reused", None, None),
    # Cursors are opaque tokens minted by the server; any other string is refused.
    ("invalid_parameter", r"cursor", r"is not a cursor returned by this list"),
    # References to other resources that must exist (sessions.create, members.add).
    ("validation_failed", r"agent_id", r"no such agent in this organization"),
    ("validation_failed", r"email", r"no account has this email address"),
    # Role names are free strings (built-in or the org's custom roles): members.add/update,
    # api_keys.create and invitations.create name one that must exist in the organization.
    ("validation_failed", r"role", r'no built-in or custom role named ".*" in this organization'),
    # One-time values minted by the server: the single sign-on code of auth.oidc_exchange, and
    # invitation tokens, which answer 410 once accepted, revoked or expired (the fixture tokens
    # are accepted early in the run, one expires a minute into it).
    ("invalid_grant", None, None),
    ("invitation_used", None, None),
    ("invitation_revoked", None, None),
    ("invitation_expired", None, None),
    # Email verification links are one-time server-minted tokens too (auth.verify_email: 400
    # once spent, or for any string the server did not mint).
    ("invalid_verification_token", None, None),
    # Times relative to now: an API key's `expires_at` must be in the future.
    ("validation_failed", r"expires_at", r"must be in the future"),
    # me.update: the password must be the current one, and is needed with `new_password`
    # (a dependency between two optional fields, which poem-openapi cannot declare).
    ("validation_failed", r"current_password", r".*"),
    # Email addresses: the spec's pattern gives the shape; the Unicode rules on top of it
    # (README, "Emails are compared in one canonical form": UTS #39 identifier status, single
    # script, whole-script look-alikes, IDNA for the domain) cannot be written as a JSON Schema
    # pattern, and are described on every email field.
    (
        "validation_failed",
        r"email",
        r"(must not contain invisible|the part before @ mixes scripts|the part before @ is written in look-alike letters|the part after @ is not a valid internationalized domain).*",
    ),
    # commands.create: a point must lie inside the session's own desktop, whose size is the
    # agent's (the spec can only bound pixels by the largest desktop, 16384).
    ("validation_failed", r"args\.[xy]", r"must lie inside the \d+×\d+ desktop: 0 to \d+"),
    # commands.create `key`: the names a chord may use are a table (README), not a pattern.
    ("validation_failed", r"args\.keys", r"(unknown key name .*|key chord .* has an empty key name)"),
    # desktop.connect is a WebSocket upgrade: an HTTP client that does not send the handshake
    # headers (Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version: not parameters
    # of the operation) is told so; the relay itself is tested with real WebSocket clients.
    ("websocket_upgrade_required", None, None),
    # Byte limits on free-form JSON objects (`metadata` 16 KiB, event `payload` 256 KiB by
    # default): JSON Schema can bound lengths and counts, not serialized size.
    ("validation_failed", r"metadata|events\[\d+\]\.payload", r"must be at most \d+ bytes as JSON"),
]


def _problem(response: Any) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except (ValueError, TypeError):
        return None
    return body if isinstance(body, dict) else None


def _forgiven(problem: dict[str, Any]) -> bool:
    code = problem.get("code")
    rules = [(f, m) for c, f, m in STATE_DEPENDENT if c == code]
    if not rules:
        return False
    errors = problem.get("errors") or []
    if not errors:
        return any(f is None for f, _ in rules)
    return all(
        any(
            (f is None or re.fullmatch(f, str(e.get("field", ""))))
            and (m is None or re.fullmatch(m, str(e.get("message", ""))))
            for f, m in rules
        )
        for e in errors
    )


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if isinstance(failure, RejectedPositiveData) and 400 <= response.status_code < 500:
        problem = _problem(response)
        if problem is not None and _forgiven(problem):
            return False
    return True
