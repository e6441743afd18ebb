"""systemd service notifications (``Type=notify``, ``WatchdogSec=``) over ``$NOTIFY_SOCKET``.

The protocol is one datagram of ``KEY=value`` lines sent to the unix socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace); see sd_notify(3). That
is a dozen lines of the stdlib ``socket`` module, so no dependency: ``systemd-python`` needs
libsystemd headers and a compiler on the device, ``cysystemd`` is a C extension too, and the
pure-Python ``sdnotify`` has not been released since 2017. Without ``$NOTIFY_SOCKET`` (not
started by systemd, tests, containers) every call is a no-op.

The watchdog is fed only while frames flow: :class:`SystemdWatchdog` pings when some camera delivered
a frame within the last watchdog interval, so systemd restarts an appliance whose cameras
have all been silent (or whose pipeline hangs) for ``WatchdogSec`` (plus up to one interval).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger("edge.systemd")


class Notifier:
    """Sends sd_notify messages to ``address`` (``None``: does nothing)."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._failed = False

    @classmethod
    def from_env(cls) -> Notifier:
        """The notifier systemd asked for in ``$NOTIFY_SOCKET`` (a no-op one without it)."""
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines (keys upper-cased); True when the datagram was sent."""
        if self.address is None:
            return False
        msg = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        addr = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(msg, addr)
        except OSError as err:  # systemd gone or socket unwritable: log once, keep running
            if not self._failed:
                self._failed = True
                log.warning("systemd notification to %s failed: %s", self.address, err)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """``READY=1``: start-up finished (``Type=notify`` units count as started now)."""
        return self.notify(ready=1, status=status) if status else self.notify(ready=1)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: feed the watchdog."""
        return self.notify(watchdog=1)

    def stopping(self, status: str = "") -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify(stopping=1, status=status) if status else self.notify(stopping=1)

    def status(self, text: str) -> bool:
        """``STATUS=``: the one-line status ``systemctl status`` shows."""
        return self.notify(status=text)


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """``WatchdogSec`` in seconds from ``$WATCHDOG_USEC`` when it is meant for this process."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
        pid = int(env.get("WATCHDOG_PID", "0") or 0)
    except ValueError:
        return None
    if usec <= 0 or (pid and pid != os.getpid()):
        return None
    return usec / 1e6


class SystemdWatchdog:
    """Feeds the systemd watchdog from the main loop, only while frames flow.

    ``tick(last_frame)`` (monotonic time of the newest frame of any camera) pings at most every
    quarter interval, and only when that frame is at most one interval old.
    """

    def __init__(
        self, notifier: Notifier, interval: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.notifier = notifier
        self.interval = interval if notifier.enabled else None
        self.clock = clock
        self.pings = 0
        self.starved = False
        self._last_ping = -1e18

    def tick(self, last_frame: float | None) -> bool:
        """Ping if due and frames are fresh; True when a ping was sent."""
        if self.interval is None:
            return False
        now = self.clock()
        fresh = last_frame is not None and now - last_frame <= self.interval
        if not fresh:
            if not self.starved:
                self.starved = True
                log.warning(
                    "no camera delivered a frame for %.0f s: not feeding the systemd watchdog", self.interval
                )
                self.notifier.status("no frames from any camera")
            return False
        if self.starved:
            self.starved = False
            log.info("frames flow again: feeding the systemd watchdog")
            self.notifier.status("frames flowing")
        if now - self._last_ping < self.interval / 4:
            return False
        self._last_ping = now
        self.pings += 1
        return self.notifier.watchdog()
