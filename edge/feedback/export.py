"""``edge feedback export DIR``: corrections as a labelled folder, ready for training.

``DIR/<field>/<value>/<event id>.jpg`` for each correction that has a crop, and
``DIR/labels.jsonl`` with one line per correction:
``{"event", "camera", "field", "old", "new", "ts", "command", "note", "image"}`` (``image`` is the
path relative to DIR, or null without a crop). A later correction of the same event and field wins.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from edge.events.schema import utc_iso
from edge.feedback.store import FeedbackRow, FeedbackStore

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def folder_name(value: str) -> str:
    """A class value as a safe folder name (``"light blue"`` -> ``light_blue``)."""
    name = _UNSAFE.sub("_", value.strip()).strip("._") or "_"
    return name[:64]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    labels: int
    images: int


def export(store: FeedbackStore, out_dir: Path) -> ExportResult:
    """Write the labelled folder; returns how many labels and images it holds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    latest: dict[tuple[str, str], FeedbackRow] = {}
    for row in store.feedback():
        latest.pop((row.event, row.field), None)  # re-insert: keeps the order of the last correction
        latest[(row.event, row.field)] = row
    images = 0
    with (out_dir / "labels.jsonl").open("w", encoding="utf-8") as f:
        for row in latest.values():
            image = None
            if row.jpeg:
                rel = Path(row.field) / folder_name(row.new) / f"{row.event}.jpg"
                (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (out_dir / rel).write_bytes(row.jpeg)
                image, images = rel.as_posix(), images + 1
            line = {
                "event": row.event,
                "camera": row.camera,
                "field": row.field,
                "old": row.old,
                "new": row.new,
                "ts": utc_iso(row.ts),
                "command": row.command,
                "note": row.note,
                "image": image,
            }
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return ExportResult(len(latest), images)
