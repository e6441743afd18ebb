"""Keep credentials out of logs, errors and events.

Two layers:

* Structural: ``redact_url`` / ``redact_text`` replace the userinfo of ``scheme://user:pw@host``.
  Camera passwords often contain characters that break URL parsing (space, ``?``, ``#``,
  ``/``, ``@``), so credentials are split off the *raw configured string* (``split_userinfo``:
  the userinfo ends at the LAST ``@`` before the host), never from a re-parse.
* By value: every password seen there is registered (``register_secret``) in a process-wide
  set, and every occurrence of it (as configured, percent-encoded or decoded) is replaced by
  ``***`` in free text (``redact_text``) and in every log record of every logger
  (``install_log_scrubber``, installed on the first registration), whatever formats it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

MASK = "***"
# Shorter secrets are not scrubbed by value (a 1-3 character password would blank out that
# text everywhere in the logs); the structural URL redaction still hides them.
MIN_SECRET_LEN = 4

# Free text: scheme://userinfo@ up to the last '@' before a '/' or whitespace (greedy, so an
# '@' inside the password does not leave its tail behind). Linear time on hostile text (a
# megabyte camera name): a match may only start where a run of scheme characters starts (the
# lookbehind), so a long run is not re-scanned from each of its characters; the letter that
# starts the scheme may follow digits or '+.-' (kept, in ``lead``), as in ``1rtsp://``.
_USERINFO = re.compile(
    r"(?<![a-zA-Z0-9+.-])(?P<lead>[0-9+.-]*)(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s]+)@"
)
_SEPARATOR = re.compile(r"[/?#]")  # ends the authority (host[:port]) of a URL
# The end of the userinfo: the last '@' followed by a plausible host[:port] up to the next
# separator (a newline may end the host: a URL at the end of a YAML block scalar). One
# backtracking search from the right, in C: each '@' tried reads only the host-like run after
# it (which stops at the next '@'), so a URL of a million '@' takes linear time.
_USERINFO_END = re.compile(
    r"(?s:.*)@(?=(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::[0-9]*)?\n?(?:[/?#]|\Z))"
)

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_ordered: tuple[str, ...] = ()  # longest first: a secret containing another is masked whole
_installed = False


class UrlParts(NamedTuple):
    """A URL split on the raw string: ``prefix`` (``scheme://``), credentials, the rest."""

    prefix: str
    user: str | None
    password: str | None
    rest: str  # host[:port][/path][?query]


def split_userinfo(url: str) -> UrlParts:
    """Split ``scheme://[user[:password]@]rest`` without URL-parsing the credentials.

    The userinfo ends at the last ``@`` whose following text, up to the next ``/``, is a
    plausible ``host[:port]``; the password is everything after the first ``:`` of the
    userinfo. So ``rtsp://viewer:S3cr t/P@W@cam:554/live`` gives password ``S3cr t/P@W``.
    Trade-off: after ``host:port``, an ``@`` in the path or query must be written ``%40``
    (an unencoded one would be taken for the end of a password; camera passwords with
    ``@``, ``/`` or ``?`` are far more common). After a bare host (no ``:``) it is fine.
    """
    if "://" not in url:
        return UrlParts("", None, None, url)
    scheme, after = url.split("://", 1)
    prefix = scheme + "://"
    first = _SEPARATOR.search(after)
    authority = after[: first.start()] if first else after
    if "@" not in authority and ":" not in authority:
        # A plain host: no password can end later on, any '@' is in the path or query.
        return UrlParts(prefix, None, None, after)
    end = _USERINFO_END.match(after)
    if end is None:
        return UrlParts(prefix, None, None, after)
    at = end.end() - 1
    user, colon, password = after[:at].partition(":")
    return UrlParts(prefix, user, password if colon else None, after[at + 1 :])


def encode_credentials(url: str) -> str:
    """``url`` with user and password percent-encoded, as ffmpeg and RFC 3986 expect.

    Credentials are decoded first, so an already-encoded ``p%40ss`` is not encoded twice
    (a password literally containing ``%`` + two hex digits would be misread; documented).
    """
    parts = split_userinfo(url)
    if parts.user is None:
        return url
    userinfo = quote(unquote(parts.user), safe="")
    if parts.password is not None:
        userinfo += ":" + quote(unquote(parts.password), safe="")
    return f"{parts.prefix}{userinfo}@{parts.rest}"


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` (and its percent-encoded/decoded forms) in all later text and log records."""
    global _secrets, _ordered
    if not secret:
        return
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}
    forms = {f for f in forms if len(f) >= MIN_SECRET_LEN}
    with _lock:
        if forms <= _secrets:
            return
        _secrets = _secrets | forms
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))
    install_log_scrubber()


def register_url(url: str) -> None:
    """Register the password embedded in ``url`` (if any) as a secret."""
    register_secret(split_userinfo(url).password)


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (user names are kept).

    The password is also registered, so it is masked wherever else it shows up.
    """
    parts = split_userinfo(url)
    if parts.user is None:
        return scrub(url)
    register_secret(parts.password)
    userinfo = MASK if parts.password is None else f"{parts.user}:{MASK}"
    return f"{parts.prefix}{userinfo}@{scrub(parts.rest)}"


def redact_text(text: str) -> str:
    """Redact credentials in free text (e.g. an OpenCV/FFmpeg error): registered secrets, and
    the userinfo of every ``scheme://user:pw@host`` URL."""
    return _USERINFO.sub(lambda m: m["lead"] + m["scheme"] + MASK + "@", scrub(text))


# -- logging ---------------------------------------------------------------------------------


def _scrub_record(record: logging.LogRecord) -> None:
    """Mask secrets in a record's message (args included) and exception text, in place."""
    if not _ordered:
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string: logging reports it later
        message = str(record.msg)
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        # Formatters cache the traceback in exc_text: when it holds a secret, fill that cache
        # masked before any handler formats it (otherwise leave it to the handler's formatter).
        text = logging.Formatter().formatException(record.exc_info)
        if scrub(text) != text:
            record.exc_text = scrub(text)
    elif record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


class SecretFilter(logging.Filter):
    """A logging filter that masks registered secrets (for handlers configured elsewhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_record(record)
        return True


_FILTER = SecretFilter()


def install_log_scrubber() -> None:
    """Mask registered secrets in every log record, whichever logger or handler it reaches.

    A filter on the root logger does not see records propagated from child loggers, so the
    record factory is wrapped (every record is scrubbed once, at creation); the filter is
    also added to the root handlers present now, in case something replaces the factory.
    Idempotent.
    """
    global _installed
    with _lock:
        if not _installed:
            previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                _scrub_record(record)
                return record

            logging.setLogRecordFactory(factory)
            _installed = True
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
