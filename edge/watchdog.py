"""The appliance's own watchdog: a hang ends the process so the service manager restarts it.

Three things end the process with :data:`EXIT_WATCHDOG` (70) after logging why, with the
stack of every thread (``faulthandler.dump_traceback`` to stderr, and the stuck thread's stack
in the log):

* start-up (models loaded, every camera started) not finished, and no progress (a model
  loaded or pulled) for ``startup_timeout``;
* a check reporting a stuck thread - ``edge.app`` checks that no camera thread spends more
  than ``stuck_timeout`` on one frame while its reader still delivers frames;
* a graceful shutdown (after SIGTERM, or when every source finished) still running
  ``shutdown_timeout`` after it began.

Those checks run on a Python thread, which needs the GIL. A native call that hangs *holding*
the GIL (a deadlock inside a runtime) would stop it too, and every other thread with it -
the process then answers nothing, not even SIGTERM. So the watchdog thread also keeps
``faulthandler.dump_traceback_later(..., exit=True)`` armed, a C-level timer that needs no
GIL: it is re-armed on every tick, and when the ticks stop it dumps every thread's stack and
exits with status 1.

This watchdog ends a hung process; :class:`edge.systemd.SystemdWatchdog` is the other side,
feeding systemd's ``WatchdogSec`` while frames flow.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger("edge.watchdog")

EXIT_WATCHDOG = 70  # EX_SOFTWARE: the service manager restarts us (Restart=on-failure)

# A check returns None when fine, else (what is wrong, ident of the thread to show or None).
Check = Callable[[], "tuple[str, int | None] | None"]

_TICK = 0.5  # s between checks
_NATIVE_GRACE = 5.0  # s the C-level timer waits beyond the Python deadline


class Watchdog:
    """Start with :meth:`start`; call :meth:`startup_done` and :meth:`shutdown_started`."""

    def __init__(
        self,
        startup_timeout: float,
        stuck_timeout: float,
        shutdown_timeout: float,
        *,
        exit: Callable[[int], None] = os._exit,
        native: bool = True,
    ) -> None:
        """``native`` arms the GIL-free faulthandler timer (only for a real process: it ends
        whatever process it runs in)."""
        self.startup_timeout = startup_timeout
        self.stuck_timeout = stuck_timeout
        self.shutdown_timeout = shutdown_timeout
        self._exit = exit
        self._native = native
        self._checks: list[Check] = []
        self._lock = threading.Lock()
        self._startup_deadline: float | None = None
        self._shutdown_deadline: float | None = None
        self._stop = threading.Event()
        self._fired = False
        self._thread = threading.Thread(target=self._run, name="edge-watchdog", daemon=True)

    # -- API ---------------------------------------------------------------------------------
    def add_check(self, check: Check) -> None:
        """Run ``check`` on every tick; a non-None answer ends the process."""
        with self._lock:
            self._checks.append(check)

    def start(self) -> Watchdog:
        """Begin watching start-up (its clock starts now)."""
        self._startup_deadline = time.monotonic() + self.startup_timeout
        self._arm()
        self._thread.start()
        return self

    def startup_progress(self) -> None:
        """Start-up made progress (a model loaded, a model file pulled): its clock starts over,
        so a slow first download is not a hang, a load that never returns is."""
        if self._startup_deadline is not None:
            self._startup_deadline = time.monotonic() + self.startup_timeout

    def startup_done(self) -> None:
        """Start-up finished in time."""
        if self._startup_deadline is not None:
            log.debug("start-up finished")
        self._startup_deadline = None

    def shutdown_started(self) -> None:
        """A graceful shutdown began: it must end within ``shutdown_timeout``. Idempotent."""
        if self._shutdown_deadline is None:
            self._shutdown_deadline = time.monotonic() + self.shutdown_timeout
            self._arm()

    def stop(self) -> None:
        """The process is about to end normally: stop watching."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        if self._native:
            faulthandler.cancel_dump_traceback_later()

    # -- thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(_TICK):
            self._arm()
            now = time.monotonic()
            if self._startup_deadline is not None and now > self._startup_deadline:
                self.fire(f"start-up did not finish within {self.startup_timeout:g} s")
            elif self._shutdown_deadline is not None and now > self._shutdown_deadline:
                self.fire(f"shutdown did not finish within {self.shutdown_timeout:g} s")
            else:
                with self._lock:
                    checks = list(self._checks)
                for check in checks:
                    try:
                        problem = check()
                    except Exception:  # a broken check must not take the appliance down
                        log.exception("watchdog check failed")
                        continue
                    if problem is not None:
                        self.fire(*problem)
                        break
            if self._fired:
                return

    def _arm(self) -> None:
        """(Re-)arm the GIL-free timer: it fires only if this thread stops ticking in time."""
        if not self._native or self._stop.is_set():
            return
        now = time.monotonic()
        timeout = self.stuck_timeout
        for deadline in (self._startup_deadline, self._shutdown_deadline):
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
        faulthandler.dump_traceback_later(timeout + _NATIVE_GRACE, exit=True)

    def fire(self, reason: str, thread_id: int | None = None) -> None:
        """Log ``reason`` with the stacks and end the process with EXIT_WATCHDOG."""
        self._fired = True
        log.critical("watchdog: %s; ending the process (exit %d) so it is restarted", reason, EXIT_WATCHDOG)
        frames = sys._current_frames()
        if thread_id is not None and thread_id in frames:
            name = next((t.name for t in threading.enumerate() if t.ident == thread_id), str(thread_id))
            stack = "".join(traceback.format_stack(frames[thread_id]))
            log.critical("watchdog: stack of thread %s:\n%s", name, stack.rstrip())
        try:
            sys.stderr.write(f"watchdog: {reason}; stacks of all threads:\n")
            sys.stderr.flush()
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        except (OSError, ValueError, AttributeError):  # no usable stderr
            pass
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001 - we are leaving anyway
                pass
        if self._native:
            faulthandler.cancel_dump_traceback_later()
        self._exit(EXIT_WATCHDOG)
