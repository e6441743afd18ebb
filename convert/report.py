"""The verification report: JSON beside the model, and a plain table on the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def table(r: dict[str, Any]) -> str:
    """Human summary of one report."""
    v = r["verify"]
    lines = [f"{r['source']['name']} ({r['source']['format']}) -> {r['name']} ({r['target']})"]
    lines.append(
        f"  calibration: {r['calibration']['samples']} samples from {', '.join(r['calibration']['from'])}; "
        f"evaluation: {v['samples']} samples from {', '.join(r['evaluation']['from'])}"
    )
    lines.append(f"  {'output':28} {'max |diff|':>12} {'cosine mean':>12} {'cosine min':>12}")
    for n, d in v["outputs"].items():
        lines.append(f"  {n[:28]:28} {d['max_abs']:12.4g} {d['cosine_mean']:12.5f} {d['cosine_min']:12.5f}")
    lines.append(f"  {v['metric']} against the reference ({r['reference']}):")
    for k, val in v["values"].items():
        extra = ""
        if "per_output" in v and v["per_output"].get(k):
            extra = "  (" + ", ".join(f"{a} {x * 100:.1f}%" for a, x in v["per_output"][k].items()) + ")"
        lines.append(f"    {k:40} {val * 100:7.2f}{extra}")
    limit = f" (--max-drop {r['max_drop']})" if r.get("max_drop") is not None else ""
    lines.append(f"  drop: {r['drop_points']:.2f} points{limit}")
    if "class_agnostic" in v:
        ca = ", ".join(f"{k} {x * 100:.2f}" for k, x in v["class_agnostic"].items())
        lines.append(f"  class-agnostic mAP@0.5 (boxes only): {ca}")
    m = r["machine"]
    lines.append(f"  median latency ms ({m['cpus']} cpus, load avg {m['loadavg_1m']}; compare as ratios):")
    for k, ms in r["latency_ms"].items():
        lines.append(f"    {k:40} {ms:8.2f}")
    for k, x in r.get("speedup", {}).items():
        lines.append(f"  speed-up {k}: {x:.2f}x")
    lines.append(f"  size: source {_mb(r['source']['bytes'])}, converted {_mb(r['bytes'])}")
    return "\n".join(lines)
