"""The outbox's fallback while its file cannot be written: messages in memory, bounded.

Rows keep the ids the outbox gave them (increasing, above every id on disk), so the publisher
can send and acknowledge them like stored rows and the outbox can later write them to disk
under the same ids (order kept, no duplicates). The bound is in the outbox's accounted bytes
(topic + payload + per-row overhead); when a new row does not fit, the oldest go first: the
newest events are the ones worth keeping.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class Row(Protocol):
    """What the queue needs of a row."""

    @property
    def id(self) -> int: ...

    @property
    def created(self) -> float: ...


R = TypeVar("R", bound=Row)


class MemoryQueue(Generic[R]):
    """Rows in id order, at most ``max_bytes`` accounted bytes (not thread-safe: the outbox locks)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._rows: OrderedDict[int, tuple[R, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def push(self, row: R, size: int) -> int:
        """Append ``row`` (its id above every held one); returns how many of the oldest rows
        (``row`` itself if it alone exceeds the bound) were evicted to keep the bound."""
        self._rows[row.id] = (row, size)
        self.bytes += size
        evicted = 0
        while self.bytes > self.max_bytes and self._rows:
            _, (_, old_size) = self._rows.popitem(last=False)
            self.bytes -= old_size
            evicted += 1
        return evicted

    def after(self, after_id: int, limit: int) -> list[R]:
        """Up to ``limit`` rows with an id above ``after_id``, oldest first."""
        out: list[R] = []
        for row_id, (row, _) in self._rows.items():
            if len(out) >= limit:
                break
            if row_id > after_id:
                out.append(row)
        return out

    def oldest(self, n: int) -> list[tuple[R, int]]:
        """The ``n`` oldest (row, size) pairs, without removing them."""
        out: list[tuple[R, int]] = []
        for item in self._rows.values():
            if len(out) >= n:
                break
            out.append(item)
        return out

    def discard(self, ids: Iterable[int]) -> list[int]:
        """Remove the rows with these ids; returns the ids that were not held here."""
        missing = []
        for row_id in ids:
            item = self._rows.pop(row_id, None)
            if item is None:
                missing.append(row_id)
            else:
                self.bytes -= item[1]
        return missing

    def oldest_created(self) -> float | None:
        """Creation time of the oldest row (None when empty)."""
        for row, _ in self._rows.values():
            return row.created
        return None
