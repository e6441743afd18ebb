"""Console log-in: scrypt password hashes (stdlib ``hashlib.scrypt``), in-memory sessions with a
per-session CSRF token, or a trusted upstream header (``web.auth_header``, e.g. from an SSO proxy).

Hash a password with ``edge fleet hash-password`` (or ``python -m edge.fleet.web.auth``): it
reads the password from stdin when that is not a terminal, else asks twice; put the printed
line in ``web.users``.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from edge.errors import EdgeError

N, R, P = 2**14, 8, 1  # ~16 MiB, ~50 ms per check: slow for guessing, fine for a log-in


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt hex>$<hash hex>``."""
    salt = salt or secrets.token_bytes(16)
    h = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${salt.hex()}${h.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check against :func:`hash_password`'s output; False for a malformed hash."""
    try:
        kind, n, r, p, salt, want = stored.split("$")
        if kind != "scrypt":
            return False
        h = hashlib.scrypt(
            password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(want) // 2
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(h.hex(), want)


@dataclass
class Session:
    user: str
    csrf: str
    expires: float


class Sessions:
    """Random session tokens (cookie) -> user and CSRF token; forgotten on restart."""

    def __init__(self, hours: float) -> None:
        self.ttl = hours * 3600
        self._s: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        s = Session(user, secrets.token_urlsafe(24), time.time() + self.ttl)
        with self._lock:
            now = time.time()
            self._s = {k: v for k, v in self._s.items() if v.expires > now}
            self._s[token] = s
        return token, s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            s = self._s.get(token)
        return s if s is not None and s.expires > time.time() else None

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._s.pop(token or "", None)


MAX_PASSWORD = 1024  # characters
HASH_HELP = (
    "Print a scrypt hash for the fleet config's web.users. The password is read from stdin when "
    "stdin is not a terminal (its first line), else asked for twice without echo."
)


def read_password(stdin: TextIO | None = None, ask: bool | None = None) -> str:
    """The password to hash: asked twice (no echo) on a terminal, else stdin's first line."""
    stdin = stdin or sys.stdin
    try:
        if ask if ask is not None else stdin.isatty():
            password = getpass.getpass("password: ")
            if password != getpass.getpass("again: "):
                raise EdgeError("the two passwords differ; nothing printed")
        else:
            password = stdin.readline(MAX_PASSWORD + 2).removesuffix("\n").removesuffix("\r")
    except EOFError:
        raise EdgeError("no password given (end of input)") from None
    if not password:
        raise EdgeError("empty password: type one, or pipe it into stdin")
    if len(password) > MAX_PASSWORD:
        raise EdgeError(f"password longer than {MAX_PASSWORD} characters")
    return password


def hash_password_main(argv: Sequence[str] | None = None, prog: str = "edge fleet hash-password") -> int:
    """``edge fleet hash-password`` / ``python -m edge.fleet.web.auth``: print a hash of a password."""
    argparse.ArgumentParser(prog=prog, description=HASH_HELP).parse_args(argv)
    try:
        print(hash_password(read_password()))
    except EdgeError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # python -m edge.fleet.web.auth: same as edge fleet hash-password
    sys.exit(hash_password_main(prog="python -m edge.fleet.web.auth"))
