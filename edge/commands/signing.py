"""Optional HMAC-SHA256 signatures on commands, and replay protection.

The signature is ``hex(HMAC-SHA256(secret, canonical))`` where ``canonical`` is the command
without its ``sig`` key as compact JSON: keys sorted, no spaces, non-ASCII kept as UTF-8
(Python: ``json.dumps(cmd, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``).
Signed commands must carry ``ts`` (epoch seconds; use an integer so every language prints it the
same). A command is accepted while ``now - max_age_s <= ts <= now + max_clock_skew_s``: older
ones are stale, and one dated further ahead is refused too (a future-dated command would stay
valid for longer than its id is remembered). The ``id`` of every command is remembered for the
whole acceptance window, ``max_age_s + max_clock_skew_s`` after it was first seen, so a captured
command cannot be sent again while its ``ts`` would still be accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


def canonical(command: dict[str, Any]) -> bytes:
    """The signed bytes: ``command`` without ``sig``, sorted keys, no spaces, UTF-8."""
    body = {k: v for k, v in command.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(command: dict[str, Any], secret: str | bytes) -> str:
    """Hex HMAC-SHA256 of :func:`canonical` (what an operator's tool puts in ``sig``)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, canonical(command), hashlib.sha256).hexdigest()


class Unauthorized(Exception):
    """The command is not signed, wrongly signed, too old or replayed (message names the field)."""


def verify(command: dict[str, Any], secret: str | bytes, now: float, max_age_s: float, max_skew_s: float) -> None:
    """Raise :class:`Unauthorized` unless ``command`` carries a valid, fresh signature."""
    sig = command.get("sig")
    if not isinstance(sig, str) or not sig:
        raise Unauthorized("sig: missing signature (commands.secret is set, so commands must be signed)")
    if not hmac.compare_digest(sign(command, secret), sig.lower()):
        raise Unauthorized("sig: signature does not match")
    check_fresh(command.get("ts"), now, max_age_s, max_skew_s, "command")


def check_fresh(ts: Any, now: float, max_age_s: float, max_skew_s: float, what: str) -> None:
    """Raise :class:`Unauthorized` unless ``ts`` (epoch seconds) lies in the acceptance window
    ``[now - max_age_s, now + max_skew_s]``; ``what`` names the message in the error."""
    if isinstance(ts, bool) or not isinstance(ts, int | float) or ts != ts:  # ts != ts: NaN
        raise Unauthorized(f"ts: signed {what}s need ts (epoch seconds)")
    if now - ts > max_age_s:
        raise Unauthorized(f"ts: {what} is {now - ts:.0f} s old (max {max_age_s:.0f} s)")
    if ts - now > max_skew_s:
        raise Unauthorized(f"ts: {what} is {ts - now:.0f} s in the future (max {max_skew_s:.0f} s; check the clocks)")


class ReplayGuard:
    """Ids seen in the last ``window_s`` seconds, kept in SQLite so a restart forgets none.

    ``window_s`` must cover the whole time a message's ``ts`` is accepted (``max_age_s +
    max_clock_skew_s``): an id forgotten earlier could be replayed while still fresh."""

    def __init__(self, path: str | Path, window_s: float) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL").fetchall()
        self._db.execute("PRAGMA synchronous=NORMAL").fetchall()  # a crash may forget the last ids, not corrupt
        self._db.execute("CREATE TABLE IF NOT EXISTS seen_commands (id TEXT PRIMARY KEY, seen REAL NOT NULL)")
        self._checks = 0

    def first_use(self, command_id: str, now: float) -> bool:
        """Remember ``command_id``; False if it was already used within ``window_s``."""
        with self._lock:
            self._checks += 1
            if self._checks % 100 == 1:  # forget ids older than the replay window now and then
                self._db.execute("DELETE FROM seen_commands WHERE seen < ?", (now - self.window_s,))
            row = self._db.execute("SELECT seen FROM seen_commands WHERE id = ?", (command_id,)).fetchone()
            if row is not None and now - row[0] <= self.window_s:
                return False
            self._db.execute("INSERT OR REPLACE INTO seen_commands (id, seen) VALUES (?, ?)", (command_id, now))
            return True

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
