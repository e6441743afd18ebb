"""Log-in back-off: after ``free`` failed log-ins, a user name or a client address is locked out for
an exponentially growing time (``base`` s, then twice as long after each further failure, up to
``max_lock`` s: 1 s, 2 s, 4 s ... by default).

Two keys per attempt, the user name (guessing one account from many addresses) and the client
address (trying many names from one address); a locked key is answered 429 with Retry-After
without checking the password, so the right password does not help a guesser either. A key is
forgotten ``forget`` s after its last failure, and a success clears the user's key. The table
is bounded (the oldest keys go first), so made-up names cannot grow it without limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE = 5  # failures before the first lock-out
BASE_LOCK = 1.0  # the first lock-out, s
MAX_LOCK = 900.0  # longest lock-out, s
FORGET = 900.0  # a key's failures are forgotten this long after the last one, s
MAX_KEYS = 10_000


@dataclass
class _Key:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    """Failure counts and lock-outs per user name and per client address (thread-safe)."""

    def __init__(
        self,
        free: int = FREE,
        base: float | None = None,
        max_lock: float = MAX_LOCK,
        forget: float = FORGET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.max_lock, self.forget, self.clock = free, max_lock, forget, clock
        self.base = BASE_LOCK if base is None else base
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(user: str, address: str) -> tuple[str, str]:
        """The two keys of an attempt (user names are cut to 100 characters)."""
        return f"user:{user[:100]}", f"addr:{address}"

    def retry_after(self, user: str, address: str) -> int:
        """Whole seconds until an attempt for ``user`` from ``address`` is allowed (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [k.locked_until - now for k in map(self._keys.get, self.keys(user, address)) if k]
        return max(0, math.ceil(max(waits, default=0.0)))

    def failed(self, user: str, address: str) -> int:
        """Count a failed attempt against both keys; lock them once past ``free`` failures.

        Returns the longest lock-out it set, in whole seconds (0: none)."""
        now = self.clock()
        locked = 0.0
        with self._lock:
            for name in self.keys(user, address):
                k = self._keys.pop(name, None) or _Key()
                if now - k.last > self.forget:
                    k.failures = 0
                k.failures += 1
                k.last = now
                if k.failures >= self.free:
                    lock = min(self.max_lock, self.base * 2.0 ** min(k.failures - self.free, 30))
                    k.locked_until, locked = now + lock, max(locked, lock)
                self._keys[name] = k  # most recent last
            while len(self._keys) > MAX_KEYS:
                self._keys.popitem(last=False)
        return math.ceil(locked)

    def succeeded(self, user: str) -> None:
        """A correct log-in clears the user's failures (the address keeps its count)."""
        with self._lock:
            self._keys.pop(self.keys(user, "")[0], None)
