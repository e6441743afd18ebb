"""The console: Starlette routes over :class:`edge.fleet.store.FleetStore`.

Starlette (with uvicorn) because it is small, well kept, typed, installs from PyPI as pure
Python, and has what the console needs and no more: routing, forms, streaming responses for
server-sent events and Jinja2 templates; the ingest threads stay plain threads beside it.

Every page and API call needs a session (scrypt log-in) or the trusted upstream header; every
POST needs the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``), and the
session cookie is HttpOnly and SameSite=Strict. Failed log-ins back off per user and per client
address (:mod:`edge.fleet.web.throttle`); every response carries the security headers of
:mod:`edge.fleet.web.headers`. Actions become MQTT commands to the device that owns the anomaly
or the event (signed when ``commands.secret`` is set); replies arrive through the ingest worker
into the ``commands`` table and reach the page through ``/stream``.

Ids come from devices, so they travel only as query parameters (``?device=...&id=...``), never
as URL path segments: a path segment cannot carry every string (a browser resolves ``..`` in
it, the server decodes ``%2F`` before routing), and an action names the device as well as the
id, so it acts only on that device's anomaly or visit.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from edge.commands.signing import sign
from edge.fleet import export
from edge.fleet.config import FleetConfig
from edge.fleet.store import FleetStore
from edge.fleet.web.auth import Session, Sessions, verify_password
from edge.fleet.web.counts_page import count_routes
from edge.fleet.web.headers import SecurityHeaders
from edge.fleet.web.throttle import LoginThrottle
from edge.fleet.web.views import device_view, limit_arg, time_arg

log = logging.getLogger("edge.fleet.web")
HERE = Path(__file__).resolve().parent
COOKIE = "edge_fleet"
DEVICE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # what a command topic level can be
SendCommand = Callable[[str, dict[str, Any]], None]


def create_app(
    cfg: FleetConfig,
    store: FleetStore,
    send: SendCommand,
    *,
    poll: float = 1.0,
    registry: CollectorRegistry | None = None,
    throttle: LoginThrottle | None = None,
) -> Starlette:
    """The console app; ``send(device, command)`` publishes a command (JSON object) to a device.

    ``registry``: where the console's counters go (the fleet's, served on its ``/metrics``).
    """
    web = cfg.web
    sessions = Sessions(web.session_hours)
    throttle = throttle or LoginThrottle()
    registry = registry if registry is not None else CollectorRegistry()
    login_failures = Counter(
        "edge_fleet_login_failures",
        "Console log-ins refused: reason=password (wrong user or password) or locked (back-off, answered 429)",
        ["reason"],
        registry=registry,
    )
    for reason in ("password", "locked"):
        login_failures.labels(reason)
    header_key = secrets.token_bytes(32)  # CSRF tokens for header-authenticated users
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    secret = cfg.commands.secret.get_secret_value() if cfg.commands.secret else None

    def session_of(request: Request) -> Session | None:
        if web.auth_header:
            user = request.headers.get(web.auth_header)
            if user:
                csrf = hmac.new(header_key, user.encode(), hashlib.sha256).hexdigest()[:32]
                return Session(user, csrf, float("inf"))
        return sessions.get(request.cookies.get(COOKIE))

    async def csrf_ok(request: Request, s: Session) -> bool:
        token = request.headers.get("x-csrf-token")
        if token is None:
            form = await request.form()
            token = str(form.get("csrf") or "")
        return hmac.compare_digest(token, s.csrf)

    def denied() -> JSONResponse:
        return JSONResponse({"error": "log in first"}, status_code=401)

    # --- pages ----------------------------------------------------------------------------------

    def login_form(request: Request, error: str | None, status: int = 200, retry: int = 0) -> Response:
        pre = request.cookies.get(COOKIE + "_pre") or secrets.token_urlsafe(16)
        ctx = {"csrf": pre, "error": error, "retry": retry}
        resp = templates.TemplateResponse(request, "login.html", ctx, status_code=status)
        resp.set_cookie(COOKIE + "_pre", pre, httponly=True, samesite="strict", secure=web.secure_cookie)
        if retry:
            resp.headers["Retry-After"] = str(retry)
        return resp

    async def login_page(request: Request) -> Response:
        return login_form(request, request.query_params.get("e"))

    async def login(request: Request) -> Response:
        form = await request.form()
        pre = request.cookies.get(COOKIE + "_pre") or ""
        if not pre or not hmac.compare_digest(str(form.get("csrf") or ""), pre):
            return RedirectResponse("/login?e=expired", status_code=303)
        user, password = str(form.get("username") or ""), str(form.get("password") or "")
        address = request.client.host if request.client else "?"
        wait = throttle.retry_after(user, address)
        if wait:  # locked: the password is not even checked
            login_failures.labels("locked").inc()
            return login_form(request, "locked", 429, wait)
        stored = web.users.get(user)
        ok = await asyncio.to_thread(verify_password, password, stored or "scrypt$16384$8$1$00$00")
        if stored is None or not ok:
            login_failures.labels("password").inc()
            locked = throttle.failed(user, address)
            if locked:  # the address only: a user field may hold a mistyped password
                log.warning("console log-in failed again from %s: locked for %d s", address, locked)
            return RedirectResponse("/login?e=wrong", status_code=303)
        throttle.succeeded(user)
        token, _s = sessions.create(user)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            COOKIE, token, max_age=int(sessions.ttl), httponly=True, samesite="strict", secure=web.secure_cookie
        )
        return resp

    async def logout(request: Request) -> Response:
        s = session_of(request)
        if s is None or not await csrf_ok(request, s):
            return denied()
        sessions.drop(request.cookies.get(COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    async def index(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return RedirectResponse("/login", status_code=303)
        return templates.TemplateResponse(
            request, "console.html", {"user": s.user, "csrf": s.csrf, "header_auth": bool(web.auth_header)}
        )

    # --- read API -------------------------------------------------------------------------------

    def api(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """A JSON read endpoint: session required, ValueError -> 400 with its message."""

        async def wrapped(request: Request) -> Response:
            if session_of(request) is None:
                return denied()
            try:
                data = await asyncio.to_thread(fn, request)
            except ValueError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            return JSONResponse(data)

        return wrapped

    def get_summary(_r: Request) -> Any:
        return store.summary()

    def get_devices(_r: Request) -> Any:
        now = time.time()
        return [device_view(d, now) for d in store.devices()]

    def get_visits(r: Request) -> Any:
        q = r.query_params
        rows = store.visits(
            device=q.get("device") or None, since=time_arg(q, "since"), until=time_arg(q, "until"),
            plate=q.get("plate") or None, vtype=q.get("type") or None, origin=q.get("origin") or None,
            limit=limit_arg(q, 200),
        )  # fmt: skip
        snaps = store.visit_snapshots(rows)
        for v in rows:
            v["snapshot"] = snaps.get(v["id"])
            v["origin_kind"] = "device" if v["origin"] == v["device"] else "fleet"
            v["time_in_iso"], v["time_out_iso"] = export.iso(v["time_in"]), export.iso(v["time_out"])
        return rows

    def get_anomalies(r: Request) -> Any:
        q = r.query_params
        rows = store.anomalies(open_only=q.get("open") == "1", limit=limit_arg(q, 500))
        for a in rows:
            a["raised_iso"] = export.iso(a["raised"])
        return rows

    def get_commands(r: Request) -> Any:
        return [{**c, "body": json.loads(c["body"])} for c in store.commands(limit_arg(r.query_params, 30))]

    async def snapshot(request: Request) -> Response:
        if session_of(request) is None:
            return denied()
        jpeg = await asyncio.to_thread(store.snapshot, request.path_params["event_id"])
        if jpeg is None:
            return PlainTextResponse("no snapshot", status_code=404)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    async def download(request: Request) -> Response:
        if session_of(request) is None:
            return denied()
        what, fmt = request.path_params["what"], request.path_params["fmt"]
        if what not in ("visits", "anomalies") or fmt not in ("csv", "json"):
            return PlainTextResponse("unknown export", status_code=404)
        try:
            since, until = time_arg(request.query_params, "since"), time_arg(request.query_params, "until")
        except ValueError as err:
            return PlainTextResponse(str(err), status_code=400)
        data = await asyncio.to_thread(export.rows, store, what, since, until)
        body = export.to_csv(data, what) if fmt == "csv" else export.to_json(data)
        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
        return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{what}.{fmt}"'})

    async def stream(request: Request) -> Response:
        """Server-sent events: ``summary`` whenever the stored data changes (polled every ``poll`` s)."""
        if session_of(request) is None:
            return denied()

        async def gen() -> Any:
            last = None
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                s = await asyncio.to_thread(store.summary)
                if s["mark"] != last:
                    last = s["mark"]
                    yield f"event: summary\ndata: {json.dumps(s)}\n\n"
                else:
                    yield ": keep-alive\n\n"
                await asyncio.sleep(poll)

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    # --- actions --------------------------------------------------------------------------------

    async def command(request: Request, device: str, body: dict[str, Any], s: Session) -> Response:
        if not DEVICE_NAME.fullmatch(device):  # a stored name that no command topic can carry
            return JSONResponse({"error": f"device {device[:40]!r} cannot take commands"}, status_code=409)
        cmd_id = uuid.uuid4().hex
        cmd: dict[str, Any] = {"id": cmd_id, **body, "ts": int(time.time())}
        if secret:
            cmd["sig"] = sign(cmd, secret)
        await asyncio.to_thread(store.add_command, cmd_id, device, cmd, s.user)
        await asyncio.to_thread(send, device, cmd)
        return JSONResponse({"id": cmd_id, "device": device, "sent": cmd})

    async def acting(request: Request) -> tuple[Session | None, Response | None, str, str]:
        """(session, refusal, device, id) of an action: session, CSRF token, ``?device=&id=``."""
        s = session_of(request)
        if s is None:
            return None, denied(), "", ""
        if not await csrf_ok(request, s):
            return None, JSONResponse({"error": "bad CSRF token"}, status_code=403), "", ""
        device, ident = request.query_params.get("device") or "", request.query_params.get("id") or ""
        if not device or not ident:
            return None, JSONResponse({"error": "?device= and ?id= are required"}, status_code=400), "", ""
        return s, None, device, ident

    async def anomaly_action(request: Request) -> Response:
        s, refused, device, ident = await acting(request)
        if s is None:
            return refused or denied()
        action = request.path_params["action"]
        if action not in ("ack", "resolve"):
            return JSONResponse({"error": "action: ack or resolve"}, status_code=400)
        a = await asyncio.to_thread(store.anomaly, ident, device)
        if a is None:
            return JSONResponse({"error": f"no such anomaly at device {device[:40]!r}"}, status_code=404)
        return await command(request, a["origin"], {"cmd": action, "anomaly": a["id"], "by": s.user[:64]}, s)

    async def visit_feedback(request: Request) -> Response:
        s, refused, device, ident = await acting(request)
        if s is None:
            return refused or denied()
        try:
            data = await request.json()
        except ValueError:
            data = dict(await request.form())
        field, value = str(data.get("field") or ""), str(data.get("value") or "").strip()
        if field not in ("type", "plate", "color") or not value or len(value) > 64:
            return JSONResponse({"error": "field: type, plate or color; value: 1-64 characters"}, status_code=400)
        v = await asyncio.to_thread(store.visit, ident, device)
        if v is None:
            return JSONResponse({"error": f"no such visit at device {device[:40]!r}"}, status_code=404)
        body: dict[str, Any] = {
            "cmd": "feedback",
            "event": v["evidence"] or v["event_id"],
            "field": field,
            "value": value,
        }
        note = str(data.get("note") or "").strip()
        body["note"] = (note or f"visit {v['id']} via console by {s.user}")[:500]
        return await command(request, v["device"], body, s)

    async def healthz(_r: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/", index),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/api/summary", api(get_summary)),
        Route("/api/devices", api(get_devices)),
        Route("/api/visits", api(get_visits)),
        Route("/api/anomalies", api(get_anomalies)),
        Route("/api/commands", api(get_commands)),
        Route("/api/anomalies/{action}", anomaly_action, methods=["POST"]),
        Route("/api/visits/feedback", visit_feedback, methods=["POST"]),
        Route("/snapshot/{event_id}.jpg", snapshot),
        Route("/export/{what}.{fmt}", download),
        Route("/stream", stream),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    # first: /export/counts.csv before the generic /export/{what}.{fmt}
    routes[:0] = count_routes(store, templates, api, lambda r: session_of(r) is not None)
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
