"""The docs show what the code does: every JSON event example in the docs is a valid event of today's schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edge.events.payloads import PAYLOADS, unknown_keys
from edge.events.schema import SCHEMA_VERSION, Event

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_BLOCK = re.compile(r"```json\n(.*?)```", re.S)


def _event_examples() -> list[tuple[str, dict]]:
    found = []
    for doc in DOCS:
        for i, block in enumerate(_BLOCK.findall(doc.read_text(encoding="utf-8"))):
            try:
                docs = [json.loads(block)]
            except json.JSONDecodeError:  # JSON lines: one document a line
                docs = [json.loads(line) for line in block.splitlines() if line.strip()]
            for data in docs:
                if isinstance(data, dict) and "type" in data and "ts" in data and "camera" in data:
                    found.append((f"{doc.name}#{i}", data))
    return found


EXAMPLES = _event_examples()


def test_the_docs_show_event_examples() -> None:
    assert any(name.startswith("events.md") for name, _ in EXAMPLES)


@pytest.mark.parametrize("example", [e for _, e in EXAMPLES], ids=[n for n, _ in EXAMPLES])
def test_event_examples_are_valid_events_of_todays_version(example: dict) -> None:
    event = Event.model_validate(example)
    assert example["v"] == SCHEMA_VERSION
    # and their attrs are their type's typed payload, with no key the payload does not define
    event.attrs_as(PAYLOADS[event.type])
    assert not unknown_keys(event.type, event.attrs), example
