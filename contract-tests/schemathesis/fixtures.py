#!/usr/bin/env python3
"""Fixtures for the schemathesis run (standard library only).

    fixtures.py setup BASE TEMPLATE CONFIG MAIL_DIR
                                             create users (their addresses verified with the
                                             links the server wrote into MAIL_DIR, its `dir`
                                             mail sender), orgs, agents, sessions, commands,
                                             custom roles, API keys and invitations on
                                             the server at BASE; write CONFIG from TEMPLATE with
                                             every @NAME@ replaced, and auth.json (the logins
                                             schemathesis performs) beside it; print `export`
                                             lines: ST_BEARER (the owner's token, for churn and
                                             state) and ST_FIXTURES (the ids, as JSON).
    fixtures.py churn BASE FIXTURES TOKEN    until killed: start and stop a session in the
                                             stream org every second, so that the live-only
                                             org event stream has status changes to send (logs
                                             in again when the run ended the token: me.logout_all
                                             and a password change end every access token)
    fixtures.py state BASE FIXTURES TOKEN    after the run: did the fixtures survive? (printed,
                                             never fails: it explains thin coverage, not errors)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
import urllib.error
import urllib.request
import uuid
from email.parser import BytesHeaderParser

ALL_CAPABILITIES = [
    "desktop:screen.capture",
    "desktop:input.pointer",
    "desktop:input.keyboard",
    "desktop:clipboard",
    "desktop:shell",
    "desktop:files",
    "browser:navigate",
]


class Api:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, body=None, token: str | None = None, expect=(200,)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        if status not in expect:
            raise SystemExit(f"fixtures: {method} {path} answered {status}, expected {expect}: {raw[:500]!r}")
        return json.loads(raw) if raw else None


def verification_token(mail_dir: str, email: str) -> str:
    """The token of the newest verification link mailed to `email` (`.eml` files named by UUIDv7)."""
    names = sorted(n for n in os.listdir(mail_dir) if n.endswith(".eml") and not n.startswith("."))
    for name in reversed(names):
        with open(os.path.join(mail_dir, name), "rb") as fd:
            headers = BytesHeaderParser().parse(fd)
        if headers.get("To", "").strip().lower() == f"<{email.lower()}>" and headers.get("X-Agentdesk-Kind") == "email_verification":
            link = headers.get("X-Agentdesk-Link", "")
            token = dict(p.split("=", 1) for p in link.partition("#")[2].split("&") if "=" in p).get("token")
            if token:
                return token
    raise SystemExit(f"fixtures: no verification link for {email} in {mail_dir}")


def register_and_login(api: Api, name: str, run_id: str, mail_dir: str, verify: bool = True) -> dict:
    # The deprecated auth.register (201 with the id; it mails a verification link like auth.signup).
    email = f"st-{name}-{run_id}@example.com"
    password = f"schemathesis-{name}-{run_id}"
    user = api.call("POST", "/v1/auth/register",
                    {"email": email, "password": password, "display_name": f"Schemathesis {name}"},
                    expect=(201,))
    if verify:  # accepting invitations needs a verified address
        api.call("POST", "/v1/auth/verify-email", {"token": verification_token(mail_dir, email)}, expect=(204,))
    tokens = api.call("POST", "/v1/auth/login", {"email": email, "password": password})
    return {"id": user["id"], "email": email, "password": password, "token": tokens["access_token"]}


def login(api: Api, email: str, password: str) -> str:
    return api.call("POST", "/v1/auth/login", {"email": email, "password": password})["access_token"]


def wait_running(api: Api, token: str, org: str, session: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        status = api.call("GET", f"/v1/orgs/{org}/sessions/{session}", token=token)["status"]
        if status == "running":
            return
        if status in ("failed", "stopped") or time.monotonic() > deadline:
            raise SystemExit(f"fixtures: session {session} is {status}, not running")
        time.sleep(0.2)


def wfc_auth(users: dict[str, dict]) -> dict:
    """A Web Fuzzing Commons auth document: schemathesis logs each user in itself."""
    return {"auth": [{
        "name": name,
        "loginEndpointAuth": {
            "endpoint": "/v1/auth/login",
            "verb": "POST",
            "contentType": "application/json",
            "payloadUserPwd": {"username": u["email"], "usernameField": "email",
                               "password": u["password"], "passwordField": "password"},
            "token": {"extractFrom": "body", "extractSelector": "/access_token",
                      "sendIn": "header", "sendName": "Authorization", "sendTemplate": "Bearer {token}"},
        },
    } for name, u in users.items()]}


def setup(base: str, template: str, config: str, mail_dir: str) -> None:
    api = Api(base)
    run_id = uuid.uuid4().hex[:8]
    a = register_and_login(api, "a", run_id, mail_dir)  # the owner: every request of the run
    b = register_and_login(api, "b", run_id, mail_dir)  # the member that members.* change and remove
    c = register_and_login(api, "c", run_id, mail_dir)  # logs in for auth.refresh / auth.logout
    d = register_and_login(api, "d", run_id, mail_dir)  # the outsider: member of nothing
    e = register_and_login(api, "e", run_id, mail_dir)  # owns the orgs that invite A (invitations.accept)
    # Unverified accounts whose links auth.verify_email spends (204 once each, then 400).
    verify_tokens = [verification_token(mail_dir, register_and_login(api, n, run_id, mail_dir, verify=False)["email"])
                     for n in ("g", "h")]
    tok = a["token"]
    # Refresh tokens of C's logins: me.update (run as A) revokes A's refresh tokens.
    refresh = [api.call("POST", "/v1/auth/login", {"email": c["email"], "password": c["password"]})["refresh_token"]
               for _ in range(5)]

    org = api.call("POST", "/v1/orgs", {"name": "schemathesis"}, token=tok, expect=(201,))["id"]
    org_members = api.call("POST", "/v1/orgs", {"name": "schemathesis members"}, token=tok, expect=(201,))["id"]
    # members.add (deprecated) invites (202); B joins by accepting.
    b_invite = api.call("POST", f"/v1/orgs/{org_members}/members", {"email": b["email"], "role": "viewer"},
                        token=tok, expect=(202,))
    api.call("POST", f"/v1/invitations/{b_invite['token']}/accept", token=b["token"])
    # The org whose event stream the run reads while `churn` starts and stops sessions in it.
    org_stream = api.call("POST", "/v1/orgs", {"name": "schemathesis stream"}, token=tok, expect=(201,))["id"]
    # Every fixture org holds a live session: orgs.delete answers 409 `org_has_live_sessions`.
    keepers = {}
    for keep_org in (org_members, org_stream):
        keeper = api.call("POST", f"/v1/orgs/{keep_org}/agents", {"name": "keeper", "model": "test-model"},
                          token=tok, expect=(201,))["id"]
        kept = api.call("POST", f"/v1/orgs/{keep_org}/sessions", {"agent_id": keeper}, token=tok, expect=(202,))["id"]
        wait_running(api, tok, keep_org, kept)
        keepers[keep_org] = keeper

    def agent(name: str, capabilities: list[str]) -> str:
        return api.call("POST", f"/v1/orgs/{org}/agents",
                        {"name": name, "model": "test-model", "capabilities": capabilities},
                        token=tok, expect=(201,))["id"]

    agent_main = agent("main", ALL_CAPABILITIES)
    agent_edit = agent("edit", ALL_CAPABILITIES)
    agent_delete = agent("delete", [])

    def session() -> str:
        sid = api.call("POST", f"/v1/orgs/{org}/sessions", {"agent_id": agent_main}, token=tok, expect=(202,))["id"]
        wait_running(api, tok, org, sid)
        return sid

    session_main = session()
    session_stop = session()
    cmds = f"/v1/orgs/{org}/sessions/{session_main}/commands"
    api.call("POST", cmds, {"kind": "screenshot"}, token=tok, expect=(202,))
    dispatched = api.call("POST", f"{cmds}/claim?wait_s=0", token=tok)["id"]
    queued = api.call("POST", cmds, {"kind": "type", "args": {"text": "hello"}}, token=tok, expect=(202,))["id"]
    # A log to replay: events.stream answers at once instead of waiting for live events.
    api.call("POST", f"/v1/orgs/{org}/sessions/{session_main}/events",
             {"events": [{"kind": "log", "payload": {"n": n}} for n in range(5)]}, token=tok, expect=(201,))
    jobs = api.call("GET", f"/v1/orgs/{org}/jobs?session_id={session_main}", token=tok)["items"]
    if not jobs:
        raise SystemExit("fixtures: the main session has no job")

    # Custom roles. In both the main and the members org: `st-reader` (roles.get, and the role
    # members, keys and invitations are given). In the main org: `st-edit` (roles.update, from
    # version 1), `st-delete-1`/`-2` (roles.delete: 204, then 404) and `st-in-use`. Every role
    # but the victims is held by an API key, so roles.delete answers 409 `role_in_use` for them.
    def role(org_id: str, name: str, permissions: list[str]) -> None:
        api.call("POST", f"/v1/orgs/{org_id}/roles",
                 {"name": name, "description": f"schemathesis {name}", "permissions": permissions},
                 token=tok, expect=(201,))

    reader = ["orgs:read", "sessions:read", "agents:read"]
    for role_org in (org, org_members):
        role(role_org, "st-reader", reader)
    for name in ("st-edit", "st-delete-1", "st-delete-2", "st-in-use"):
        role(org, name, reader)

    def api_key(name: str, role_name: str) -> str:
        return api.call("POST", f"/v1/orgs/{org}/api-keys", {"name": name, "role": role_name},
                        token=tok, expect=(201,))["id"]

    for held in ("st-reader", "st-edit", "st-in-use"):
        api_key(f"holds {held}", held)
    key_revoke = api_key("revoke", "viewer")  # api_keys.revoke: 204, again 204 once revoked

    # Invitations of the main org: a pending one (invitations.revoke: 204, then 204 again) and one
    # C accepted (409 `invitation_used`).
    def invite(org_id: str, email: str, role_name: str, token: str, **extra) -> dict:
        return api.call("POST", f"/v1/orgs/{org_id}/invitations", {"email": email, "role": role_name, **extra},
                        token=token, expect=(201,))

    inv_pending = invite(org, f"st-invitee-{run_id}@example.com", "st-reader", tok)["id"]
    inv_accepted = invite(org, c["email"], "viewer", tok)
    api.call("POST", f"/v1/invitations/{inv_accepted['token']}/accept", token=c["token"])
    # Tokens for invitations.accept (run as A), each in an org of E's own: three invitations to
    # A's email (200 once each, then 410 `invitation_used`); in a fourth org one revoked (410
    # `invitation_revoked`), one that expires a minute into the run (200 before, 410
    # `invitation_expired` after) and one for D's email (403 `invitation_email_mismatch`).
    # Accepting makes A a viewer of E's orgs, nothing more.
    def inviter_org(n: int) -> str:
        return api.call("POST", "/v1/orgs", {"name": f"schemathesis inviter {n}"}, token=e["token"],
                        expect=(201,))["id"]

    accept_tokens = [invite(inviter_org(n), a["email"], "viewer", e["token"])["token"] for n in range(3)]
    inviter_org = inviter_org(3)
    revoked = invite(inviter_org, a["email"], "viewer", e["token"])
    api.call("DELETE", f"/v1/orgs/{inviter_org}/invitations/{revoked['id']}", token=e["token"], expect=(204,))
    expiring = invite(inviter_org, a["email"], "viewer", e["token"], expires_in_s=60)
    mismatch = invite(inviter_org, d["email"], "viewer", e["token"])
    # An org of E's that A joined, for me.leave_org (204 once, then 404).
    org_leave = api.call("POST", "/v1/orgs", {"name": "schemathesis leave"}, token=e["token"], expect=(201,))["id"]
    api.call("POST", f"/v1/invitations/{invite(org_leave, a['email'], 'viewer', e['token'])['token']}/accept", token=tok)

    values = {
        "ORG_ID": org,
        "ORG_MEMBERS_ID": org_members,
        "ORG_STREAM_ID": org_stream,
        "ORG_LEAVE_ID": org_leave,
        "STREAM_AGENT_ID": keepers[org_stream],
        "AGENT_ID": agent_main,
        "AGENT_EDIT_ID": agent_edit,
        "AGENT_DELETE_ID": agent_delete,
        "SESSION_ID": session_main,
        "SESSION_STOP_ID": session_stop,
        "COMMAND_DISPATCHED_ID": dispatched,
        "COMMAND_QUEUED_ID": queued,
        "JOB_ID": jobs[0]["id"],
        "USER_A_ID": a["id"],
        "USER_A_EMAIL": a["email"],
        "USER_A_PASSWORD": a["password"],
        "USER_B_ID": b["id"],
        "USER_B_EMAIL": b["email"],
        "KEY_REVOKE_ID": key_revoke,
        "INVITATION_PENDING_ID": inv_pending,
        "INVITATION_ACCEPTED_ID": inv_accepted["id"],
        **{f"INVITE_TOKEN_{n + 1}": token for n, token in enumerate(accept_tokens)},
        "INVITE_TOKEN_REVOKED": revoked["token"],
        "INVITE_TOKEN_EXPIRING": expiring["token"],
        "INVITE_TOKEN_MISMATCH": mismatch["token"],
        **{f"REFRESH_TOKEN_{n + 1}": token for n, token in enumerate(refresh)},
        **{f"VERIFY_TOKEN_{n + 1}": token for n, token in enumerate(verify_tokens)},
        **{f"NEW_EMAIL_{n}": f"st-new{n}-{run_id}@example.com" for n in (1, 2, 3)},
    }
    auth_path = os.path.join(os.path.dirname(os.path.abspath(config)), "auth.json")
    with open(auth_path, "w", encoding="utf-8") as fd:
        json.dump(wfc_auth({"owner": a, "outsider": d}), fd, indent=2)
    text = open(template, encoding="utf-8").read()
    for key, value in {**values, "AUTH_FILE": auth_path}.items():
        text = text.replace(f"@{key}@", value)
    missing = sorted(set(re.findall(r"@([A-Z][A-Z0-9_]*)@", text)))
    if missing:
        raise SystemExit(f"fixtures: no value for {missing} in {template}")
    with open(config, "w", encoding="utf-8") as fd:
        fd.write(f"# Rendered by fixtures.py for {base}\n")
        fd.write("# fixtures: " + json.dumps({k: v for k, v in values.items() if "PASSWORD" not in k and "TOKEN" not in k}) + "\n")
        fd.write(text)
    print(f"export ST_BEARER={shlex.quote(tok)}")
    print(f"export ST_FIXTURES={shlex.quote(json.dumps(values))}")


def churn(base: str, fixtures: str, token: str) -> None:
    api = Api(base)
    f = json.loads(fixtures)
    sessions = f"/v1/orgs/{f['ORG_STREAM_ID']}/sessions"
    while True:
        try:
            sid = api.call("POST", sessions, {"agent_id": f["STREAM_AGENT_ID"]}, token=token, expect=(202,))["id"]
            time.sleep(0.5)
            api.call("POST", f"{sessions}/{sid}/stop", token=token, expect=(202, 409))
        except (SystemExit, OSError) as exc:
            # The run may have taken the org or the agent away: keep trying, quietly. A 401: the
            # run ended the owner's access tokens (me.logout_all, a password change): log in again.
            if "answered 401" in str(exc):
                try:
                    token = login(api, f["USER_A_EMAIL"], f["USER_A_PASSWORD"])
                except (SystemExit, OSError):
                    pass
        time.sleep(0.5)


def state(base: str, fixtures: str, token: str) -> None:
    api = Api(base)
    f = json.loads(fixtures)
    org, anyst = f["ORG_ID"], tuple(range(200, 600))
    original = token
    try:  # the run may have ended the setup's token (me.logout_all, a password change)
        token = login(api, f["USER_A_EMAIL"], f["USER_A_PASSWORD"])
    except (SystemExit, OSError) as exc:
        print(f"fixtures after the run: the owner cannot log in: {exc}")

    def get(path: str):
        try:
            return api.call("GET", path, token=token, expect=anyst)
        except Exception as exc:  # noqa: BLE001 - informative only
            return {"error": str(exc)}

    def role(org_id: str) -> str:
        members = get(f"/v1/orgs/{org_id}/members?limit=200").get("items", [])
        return next((m["role"] for m in members if m.get("user_id") == f["USER_A_ID"]), "not a member")

    me = get("/v1/me")
    try:
        setup_bearer = "id" in api.call("GET", "/v1/me", token=original, expect=anyst)
    except Exception:  # noqa: BLE001 - informative only
        setup_bearer = False
    main = get(f"/v1/orgs/{org}/sessions/{f['SESSION_ID']}")
    agent = get(f"/v1/orgs/{org}/agents/{f['AGENT_ID']}")
    sessions = get(f"/v1/orgs/{org}/sessions?limit=200").get("items", [])
    print("fixtures after the run:")
    print(f"  the setup's bearer still valid: {setup_bearer}; the owner can log in: {'id' in me}, "
          f"address verified: {me.get('email_verified')}; the owner's role in the main org: {role(org)}, "
          f"in the members org: {role(f['ORG_MEMBERS_ID'])}, in the stream org: {role(f['ORG_STREAM_ID'])}")
    stream = get(f"/v1/orgs/{f['ORG_STREAM_ID']}/sessions?limit=200").get("items", [])
    print(f"  sessions started in the stream org (by the churn): {len(stream)}")
    print(f"  main session: {main.get('status', main)}; main agent capabilities: "
          f"{len(agent.get('capabilities', []))}/{len(ALL_CAPABILITIES)}")
    print(f"  sessions in the main org: {len(sessions)}")
    orgs = get("/v1/orgs?limit=200").get("items", [])
    edit = get(f"/v1/orgs/{org}/roles/st-edit")
    print(f"  orgs the owner is in: {len(orgs)} (viewer of {sum(o.get('role') == 'viewer' for o in orgs)}: "
          f"invitations accepted); role st-edit at version {edit.get('version', edit)}")
    print(f"  the owner left the leave org (me.leave_org): {all(o.get('id') != f['ORG_LEAVE_ID'] for o in orgs)}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "setup":
        setup(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "state":
        state(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "churn":
        churn(*sys.argv[2:])
    else:
        raise SystemExit(__doc__)
