"""The open crossings batch of each camera at ``events.detail: crossings`` (edge.counts.batch),
delivered once like a count interval: with a state file, every crossing is written before it is
counted as done, and a closed batch stays in the file until its ``crossings`` event comes back
from the bus (so the sinks have it); a kill -9 in between re-sends it after the restart with the
same id. Without a state file (replays) :meth:`Batcher.close` emits the open batches.

Not thread-safe on its own: :class:`edge.counts.processor.CountProcessor` calls it under its lock.
"""

from __future__ import annotations

from edge.counts.batch import BATCH_S, Batch, batch_start
from edge.counts.store import CountStore
from edge.events.schema import Event


class Batcher:
    """Batches the ``line`` events of ``cameras`` per wall-clock ``seconds`` (a minute by default);
    ``late``: s a tick waits past a batch's end before closing it (the crossings of its last
    frames are in)."""

    def __init__(
        self, device: str, cameras: set[str], late: float, store: CountStore | None = None, seconds: float = BATCH_S
    ) -> None:
        self.device, self.cameras, self.late, self.store, self.seconds = device, cameras, late, store, seconds
        self._open: dict[str, Batch] = {}
        self._pending: dict[str, tuple[str, float]] = {}  # event id -> (camera, start): closed, not yet delivered
        self._resend: list[Event] = []
        self._closed_until: dict[str, float] = {}  # camera -> end of its last closed batch
        if store is not None:
            for camera, batch, closed in store.load_batches():
                self._closed_until[camera] = max(batch.end, self._closed_until.get(camera, 0.0))
                if not closed and camera in cameras and camera not in self._open:
                    self._open[camera] = batch  # a tick closes it when its minute is over
                else:
                    self._resend.append(self._closing(camera, batch))

    def add(self, event: Event, t: float) -> list[Event]:
        """Keep line event ``event`` (at epoch ``t``); returns the batch events it shows are over.
        A crossing that comes after its minute was closed goes into the open minute (a negative
        ``t`` in its row); a full batch is followed by one for the rest of its minute."""
        camera, out = event.camera, []
        batch = self._open.get(camera)
        if batch is not None and (t >= batch.end or batch.full()):
            out.append(self._close(camera))
            if t < batch.end:  # full: the rest of the minute, under a start (and id) of its own
                self._open[camera] = Batch(round(max(t, batch.start + 0.001), 3), batch.end)
        if camera not in self._open:
            start = batch_start(max(t, self._closed_until.get(camera, t)), self.seconds)
            self._open[camera] = Batch(start, start + self.seconds)
        batch = self._open[camera]
        batch.add(event)
        if self.store is not None:
            self.store.save_batch(camera, batch)  # a crossing is never lost to a crash
        return out

    def tick(self, now: float) -> list[Event]:
        """Events of the batches whose minute ended ``late`` s ago, and those to send again."""
        out, self._resend = self._resend, []
        for camera in sorted(self._open):
            if now - self.late >= self._open[camera].end:
                out.append(self._close(camera))
        return out

    def close(self) -> list[Event]:
        """Shutdown: with a state file the open batches are in it already (they go on after the
        restart); without one, emit them."""
        if self.store is not None:
            return []
        return [self._close(camera) for camera in sorted(self._open)]

    def delivered(self, event_id: str) -> None:
        """The bus handed ``crossings`` event ``event_id`` back: the sinks have it."""
        key = self._pending.pop(event_id, None)
        if key is not None and self.store is not None:
            self.store.delete_batch(*key)

    def _close(self, camera: str) -> Event:
        batch = self._open.pop(camera)
        self._closed_until[camera] = max(batch.end, self._closed_until.get(camera, 0.0))
        if self.store is not None:
            self.store.save_batch(camera, batch, closed=True)
        return self._closing(camera, batch)

    def _closing(self, camera: str, batch: Batch) -> Event:
        event = batch.event(self.device, camera)
        if self.store is not None:
            self._pending[event.id] = (camera, batch.start)
        return event
