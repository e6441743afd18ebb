"""The console's guards, over real HTTP (uvicorn on loopback) and real SQLite/PostgreSQL: log-in
back-off per user and per client address (429 + Retry-After, counted on ``/metrics``), security
headers, bounded list sizes, a device list that survives odd stored stats, and
``edge fleet hash-password`` fed through stdin or a terminal."""

from __future__ import annotations

import http.client
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from edge.fleet.config import FleetConfig, parse_fleet_config
from edge.fleet.migrations.m001_initial import devices, visits
from edge.fleet.service import Fleet
from edge.fleet.store import FleetStore
from edge.fleet.web import create_app, throttle
from edge.fleet.web.auth import hash_password, verify_password
from tests.conftest import ROOT
from tests.fixtures.mqtt import Broker, free_port
from tests.test_fleet_fixtures import postgres

__all__ = ["postgres"]  # fixture used here
PASSWORD = "correct horse"
USERS = {"alice": hash_password(PASSWORD), "bob": hash_password("b0b")}


@contextmanager
def console(cfg: FleetConfig, store: FleetStore) -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """The console app alone (no ingest) served by uvicorn on ``cfg.web.port``; yields (base URL, commands sent)."""
    import uvicorn

    sent: list[tuple[str, dict[str, Any]]] = []
    app = create_app(cfg, store, lambda device, cmd: sent.append((device, cmd)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=cfg.web.port, log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{cfg.web.port}", sent
    finally:
        server.should_exit = True
        thread.join(10)


def web_config(tmp_path: Path, database: str | None = None, **web: Any) -> FleetConfig:
    return parse_fleet_config(
        {
            "database": database or f"sqlite:///{tmp_path / 'fleet.sqlite3'}",
            "web": {"port": free_port(), "users": USERS, **web},
        }
    )


def log_in(port: int, user: str, password: str, source: str = "127.0.0.1") -> http.client.HTTPResponse:
    """The browser's log-in (form page, then POST) from the loopback address ``source``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request("GET", "/login")
    page = conn.getresponse()
    html = page.read().decode()
    pre = page.headers["set-cookie"].split(";")[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"csrf": csrf, "username": user, "password": password})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": pre}
    conn.request("POST", "/login", body=form, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def metric(base: str, name: str, **labels: str) -> float:
    """A sample from the fleet's ``/metrics`` at ``base``."""
    text = requests.get(base + "/metrics", timeout=10).text
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{want} not in /metrics:\n{text}")


def test_login_backs_off_per_user_and_per_address_and_counts_failures(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle, "BASE_LOCK", 3.0)  # a busy test machine cannot outlast a lock between two requests
    port, metrics_port = free_port(), free_port()
    cfg = parse_fleet_config(
        {
            "database": f"sqlite:///{tmp_path / 'fleet.sqlite3'}",
            "mqtt": {"host": broker.host, "port": broker.port},
            "web": {"port": port, "users": USERS},
            "metrics": {"enabled": True, "port": metrics_port},
        }
    )
    fleet = Fleet(cfg).start()
    base, scrape = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    try:
        # one address tries five user names: the address is locked, even for bob's right password
        for i in range(5):
            assert log_in(port, f"guess{i}", "x", "127.0.0.8").status == 303  # back to the form
        locked = log_in(port, "bob", "b0b", "127.0.0.8")
        assert locked.status == 429 and int(locked.headers["Retry-After"]) >= 2
        assert log_in(port, "bob", "b0b", "127.0.0.9").status == 303  # another address is not
        # one user guessed from five addresses: the user is locked, from any address
        for i in range(5):
            assert log_in(port, "alice", "wrong", f"127.0.0.{20 + i}").headers["location"] == "/login?e=wrong"
        locked = log_in(port, "alice", PASSWORD, "127.0.0.30")
        wait = int(locked.headers["Retry-After"])
        assert locked.status == 429 and wait >= 2
        assert metric(scrape, "edge_fleet_login_failures_total", reason="password") == 10
        assert metric(scrape, "edge_fleet_login_failures_total", reason="locked") == 2
        # the page says why (a browser shows the 429 body)
        r = requests.Session()
        form = r.get(base + "/login", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        page = r.post(base + "/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD}, timeout=10)
        assert page.status_code == 429 and "Too many failed log-ins" in page.text
        # after Retry-After, the right password works again (and clears alice's failures)
        time.sleep(wait + 0.2)
        ok = log_in(port, "alice", PASSWORD, "127.0.0.31")
        assert ok.status == 303 and ok.headers["location"] == "/" and "edge_fleet=" in ok.headers["set-cookie"]
        assert log_in(port, "alice", "wrong", "127.0.0.32").status == 303  # counting starts again
    finally:
        fleet.stop()


def test_every_response_has_security_headers_and_no_inline_script(tmp_path: Path) -> None:
    cfg = web_config(tmp_path, auth_header="X-Remote-User")
    store = FleetStore(cfg.database)
    try:
        with console(cfg, store) as (base, _sent):
            user = {"X-Remote-User": "carol"}
            for path, headers in [
                ("/login", {}), ("/", user), ("/api/visits", {}), ("/api/visits", user), ("/static/console.js", {}),
                ("/export/visits.csv", user), ("/healthz", {}), ("/nowhere", {}),
            ]:  # fmt: skip
                r = requests.get(base + path, headers=headers, timeout=10, allow_redirects=False)
                csp = r.headers.get("Content-Security-Policy", "")
                assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, r.headers)
                assert "unsafe-inline" not in csp
                assert r.headers.get("X-Frame-Options") == "DENY", path
                assert r.headers.get("X-Content-Type-Options") == "nosniff", path
            pages = [requests.get(base + p, headers=user, timeout=10).text for p in ("/", "/login")]
            for page in pages:
                assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # every script is a file: CSP can forbid inline
                assert not re.search(r"\son[a-z]+=|style=", page)
            odd = requests.get(base + "/", headers={"X-Remote-User": '<img src=x onerror="x()">'}, timeout=10).text
            assert "&lt;img src=x onerror=&#34;x()&#34;&gt;" in odd and "<img" not in odd  # templates autoescape
    finally:
        store.close()


def test_list_sizes_are_bounded_and_bad_values_are_a_clear_400(tmp_path: Path) -> None:
    cfg = web_config(tmp_path, auth_header="X-Remote-User")
    store = FleetStore(cfg.database)
    with store.engine.begin() as conn:
        for i in range(3):
            conn.execute(
                visits.insert().values(
                    id=f"{i:032x}", origin="d", device="d", status="open", time_in=1000.0 + i, updated=1.0, body="{}"
                )
            )
    try:
        with console(cfg, store) as (base, _sent):
            user = {"X-Remote-User": "carol"}
            for path in ("/api/visits", "/api/anomalies", "/api/commands"):
                for bad in ("-1", "0", "1001", "abc", "1e3", " 5", "99999999999999999999"):
                    r = requests.get(f"{base}{path}?limit={urllib.parse.quote(bad)}", headers=user, timeout=10)
                    assert r.status_code == 400, (path, bad, r.text)
                    assert r.json() == {"error": f"limit: a whole number from 1 to 1000 (got {bad!r})"}
                assert requests.get(f"{base}{path}?limit=1000", headers=user, timeout=10).status_code == 200
            assert len(requests.get(f"{base}/api/visits?limit=2", headers=user, timeout=10).json()) == 2
            assert len(requests.get(f"{base}/api/visits", headers=user, timeout=10).json()) == 3
            r = requests.get(f"{base}/api/visits?since=yesterday", headers=user, timeout=10)
            assert r.status_code == 400 and "since: not a time" in r.json()["error"]
    finally:
        store.close()


ODD_STATS = {
    "list": "[1,2]",
    "text": '"online"',
    "number": "42",
    "not-json": "{not json",
    "wrong-types": '{"cameras": [1, 2], "outbox": "deep", "open": {"visits": "x", "anomalies": 1}}',
    "odd-values": '{"cameras": {"a": 5, "b": {"up": "yes"}, "c": {"up": true}}, '
    '"outbox": {"depth": "3", "oldest_age": Infinity}, "open": [1]}',
}
GOOD_STATS = (
    '{"cameras": {"gate": {"up": true}, "yard": {"up": false}}, "outbox": {"depth": 3, "oldest_age": 12.5}, '
    '"open": {"visits": 2, "anomalies": 1}}'
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
    return str(request.getfixturevalue("postgres").database())


def test_device_list_shows_what_is_valid_when_stored_stats_are_odd(tmp_path: Path, database: str) -> None:
    cfg = web_config(tmp_path, database, auth_header="X-Remote-User")
    store = FleetStore(cfg.database)
    now = time.time()
    with store.engine.begin() as conn:  # what older versions stored from devices, unchecked
        for name, stats in {**ODD_STATS, "good": GOOD_STATS}.items():
            conn.execute(devices.insert().values(device=name, status="online", last_seen=now - 5, stats=stats))
        conn.execute(devices.insert().values(device="bare", status=None, last_seen=None, stats=None))
    try:
        with console(cfg, store) as (base, _sent):
            r = requests.get(base + "/api/devices", headers={"X-Remote-User": "carol"}, timeout=10)
            assert r.status_code == 200, r.text
            got = {d["device"]: d for d in r.json()}
    finally:
        store.close()
    assert set(got) == {*ODD_STATS, "good", "bare"}
    good = got["good"]
    assert (good["status"], good["cameras"], good["cameras_up"], good["outbox"], good["outbox_age"]) == (
        "online", 2, 1, 3, 12.5
    )  # fmt: skip
    assert good["open"] == {"visits": 2, "anomalies": 1} and 4 <= good["ago"] <= 60
    for name in ("list", "text", "number", "not-json", "wrong-types"):
        d = got[name]
        assert (d["status"], d["cameras"], d["cameras_up"], d["outbox"], d["open"]) == ("online", 0, 0, None, None)
    odd = got["odd-values"]
    assert (odd["cameras"], odd["cameras_up"], odd["outbox"], odd["outbox_age"]) == (3, 1, None, None)
    assert odd["open"] is None
    assert (got["bare"]["status"], got["bare"]["ago"], got["bare"]["cameras"]) == ("?", None, 0)


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )


def test_hash_password_reads_stdin_and_python_m_auth_is_an_alias() -> None:
    for cmd in (["-m", "edge", "fleet", "hash-password"], ["-m", "edge.fleet.web.auth"]):
        done = _run(*cmd, stdin=PASSWORD + "\n")
        assert done.returncode == 0 and done.stderr == "", done
        (line,) = done.stdout.splitlines()
        assert verify_password(PASSWORD, line) and not verify_password(PASSWORD + "\n", line)
        helped = _run(*cmd, "--help")
        assert helped.returncode == 0 and "stdin" in helped.stdout and "web.users" in helped.stdout
        empty = _run(*cmd, stdin="")
        assert empty.returncode == 2 and empty.stdout == "" and len(empty.stderr.splitlines()) == 1
        assert "empty password" in empty.stderr and "Traceback" not in empty.stderr
    crlf = _run("-m", "edge", "fleet", "hash-password", stdin="p w\r\n")  # a Windows-made file
    assert verify_password("p w", crlf.stdout.strip())
    bare = _run("-m", "edge", "fleet")
    assert bare.returncode == 2 and bare.stderr.strip() == (
        "edge: error: edge fleet needs --config FILE (or a subcommand: edge fleet hash-password)"
    )


def _on_terminal(answers: list[str]) -> tuple[int, str]:
    """``edge fleet hash-password`` with a terminal as its controlling tty: answer each prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command (the pty is its terminal)
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "edge", "fleet", "hash-password"], dict(os.environ))
    out = b""
    deadline = time.monotonic() + 60
    answered = 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
        if answered < min(len(answers), out.count(b"password: ") + out.count(b"again: ")):
            os.write(fd, answers[answered].encode() + b"\n")
            answered += 1
    _pid, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_hash_password_on_a_terminal_asks_twice_without_echo() -> None:
    code, out = _on_terminal([PASSWORD, PASSWORD])
    assert code == 0, out
    assert "password:" in out and "again:" in out and PASSWORD not in out  # not echoed
    (line,) = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("scrypt$")]
    assert verify_password(PASSWORD, line)
    code, out = _on_terminal([PASSWORD, "correct h0rse"])
    assert code == 2 and "the two passwords differ" in out and "scrypt$" not in out
