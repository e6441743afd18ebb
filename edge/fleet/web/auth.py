"""Console log-in: scrypt password hashes (stdlib ``hashlib.scrypt``), in-memory sessions with a
per-session CSRF token, or a trusted upstream header (``web.auth_header``, e.g. from an SSO proxy).

Hash a password: ``python -m edge.fleet.web.auth`` (asks for it) and put the line in ``web.users``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

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


if __name__ == "__main__":  # python -m edge.fleet.web.auth
    import getpass

    print(hash_password(getpass.getpass("password: ")))
