"""The console: Starlette routes over :class:`edge.fleet.store.FleetStore`.

Starlette (with uvicorn) because it is small, well kept, typed, installs from PyPI as pure
Python, and has what the console needs and no more: routing, forms, streaming responses for
server-sent events and Jinja2 templates; the ingest threads stay plain threads beside it.

Every page and API call needs a session (scrypt log-in) or the trusted upstream header; every
POST needs the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``), and the
session cookie is HttpOnly and SameSite=Strict. Actions become MQTT commands to the device that
owns the anomaly or the event (signed when ``commands.secret`` is set); replies arrive through
the ingest worker into the ``commands`` table and reach the page through ``/stream``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from edge.commands.signing import sign
from edge.fleet import export
from edge.fleet.config import FleetConfig
from edge.fleet.store import FleetStore, epoch
from edge.fleet.web.auth import Session, Sessions, verify_password

HERE = Path(__file__).resolve().parent
COOKIE = "edge_fleet"
SendCommand = Callable[[str, dict[str, Any]], None]


def create_app(cfg: FleetConfig, store: FleetStore, send: SendCommand, *, poll: float = 1.0) -> Starlette:
    """The console app; ``send(device, command)`` publishes a command (JSON object) to a device."""
    web = cfg.web
    sessions = Sessions(web.session_hours)
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

    async def login_page(request: Request) -> Response:
        pre = request.cookies.get(COOKIE + "_pre") or secrets.token_urlsafe(16)
        resp = templates.TemplateResponse(request, "login.html", {"csrf": pre, "error": request.query_params.get("e")})
        resp.set_cookie(COOKIE + "_pre", pre, httponly=True, samesite="strict", secure=web.secure_cookie)
        return resp

    async def login(request: Request) -> Response:
        form = await request.form()
        pre = request.cookies.get(COOKIE + "_pre") or ""
        if not pre or not hmac.compare_digest(str(form.get("csrf") or ""), pre):
            return RedirectResponse("/login?e=expired", status_code=303)
        user, password = str(form.get("username") or ""), str(form.get("password") or "")
        stored = web.users.get(user)
        ok = await asyncio.to_thread(verify_password, password, stored or "scrypt$16384$8$1$00$00")
        if stored is None or not ok:
            return RedirectResponse("/login?e=wrong", status_code=303)
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
        async def wrapped(request: Request) -> Response:
            if session_of(request) is None:
                return denied()
            try:
                data = await asyncio.to_thread(fn, request)
            except ValueError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            return JSONResponse(data)

        return wrapped

    def time_arg(request: Request, name: str) -> float | None:
        v = request.query_params.get(name)
        if not v:
            return None
        try:
            return float(v)
        except ValueError:
            t = epoch(v if ("Z" in v or "+" in v[10:]) else v + "Z")
            if t is None:
                raise ValueError(f"{name}: not a time ({v!r}); use ISO 8601 or epoch seconds") from None
            return t

    def get_summary(_r: Request) -> Any:
        return store.summary()

    def get_devices(_r: Request) -> Any:
        now = time.time()
        out = []
        for d in store.devices():
            st = d["stats"] or {}
            cams = st.get("cameras") or {}
            out.append(
                {
                    "device": d["device"], "status": d["status"] or "?",
                    "last_seen": d["last_seen"], "ago": None if d["last_seen"] is None else round(now - d["last_seen"]),
                    "cameras": len(cams), "cameras_up": sum(1 for c in cams.values() if c.get("up")),
                    "outbox": (st.get("outbox") or {}).get("depth"),
                    "outbox_age": (st.get("outbox") or {}).get("oldest_age"),
                    "open": st.get("open"),
                }
            )  # fmt: skip
        return out

    def get_visits(r: Request) -> Any:
        q = r.query_params
        rows = store.visits(
            device=q.get("device") or None, since=time_arg(r, "since"), until=time_arg(r, "until"),
            plate=q.get("plate") or None, vtype=q.get("type") or None, origin=q.get("origin") or None,
            limit=min(int(q.get("limit") or 200), 2000),
        )  # fmt: skip
        snaps = store.visit_snapshots(rows)
        for v in rows:
            v["snapshot"] = snaps.get(v["id"])
            v["time_in_iso"], v["time_out_iso"] = export.iso(v["time_in"]), export.iso(v["time_out"])
        return rows

    def get_anomalies(r: Request) -> Any:
        rows = store.anomalies(open_only=r.query_params.get("open") == "1", limit=500)
        for a in rows:
            a["raised_iso"] = export.iso(a["raised"])
        return rows

    def get_commands(_r: Request) -> Any:
        return [{**c, "body": json.loads(c["body"])} for c in store.commands(30)]

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
            since, until = time_arg(request, "since"), time_arg(request, "until")
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
        cmd_id = uuid.uuid4().hex
        cmd: dict[str, Any] = {"id": cmd_id, **body, "ts": int(time.time())}
        if secret:
            cmd["sig"] = sign(cmd, secret)
        await asyncio.to_thread(store.add_command, cmd_id, device, cmd, s.user)
        await asyncio.to_thread(send, device, cmd)
        return JSONResponse({"id": cmd_id, "device": device, "sent": cmd})

    async def anomaly_action(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return denied()
        if not await csrf_ok(request, s):
            return JSONResponse({"error": "bad CSRF token"}, status_code=403)
        action = request.path_params["action"]
        if action not in ("ack", "resolve"):
            return JSONResponse({"error": "action: ack or resolve"}, status_code=400)
        a = await asyncio.to_thread(store.anomaly, request.path_params["id"])
        if a is None:
            return JSONResponse({"error": "unknown anomaly"}, status_code=404)
        return await command(request, a["origin"], {"cmd": action, "anomaly": a["id"], "by": s.user[:64]}, s)

    async def visit_feedback(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return denied()
        if not await csrf_ok(request, s):
            return JSONResponse({"error": "bad CSRF token"}, status_code=403)
        try:
            data = await request.json()
        except ValueError:
            data = dict(await request.form())
        field, value = str(data.get("field") or ""), str(data.get("value") or "").strip()
        if field not in ("type", "plate", "color") or not value or len(value) > 64:
            return JSONResponse({"error": "field: type, plate or color; value: 1-64 characters"}, status_code=400)
        v = await asyncio.to_thread(store.visit, request.path_params["id"])
        if v is None:
            return JSONResponse({"error": "unknown visit"}, status_code=404)
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
        Route("/api/anomalies/{id}/{action}", anomaly_action, methods=["POST"]),
        Route("/api/visits/{id}/feedback", visit_feedback, methods=["POST"]),
        Route("/snapshot/{event_id}.jpg", snapshot),
        Route("/export/{what}.{fmt}", download),
        Route("/stream", stream),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes)
