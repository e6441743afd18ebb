"""Fuzz ``edge config check``: 1,200 mutated configs, zero tracebacks, zero hangs.

Mutations start from ``deploy/edge.example.yaml`` and from a minimal config carrying secrets:
wrong types, deleted keys, random bytes, huge numbers, ``.inf``/``.nan``, unicode, deep nesting,
alias bombs, self-referencing aliases, duplicate keys, huge strings, ``${VAR}`` references and
truncation. Every case is validated in-process (``load_config``, plus ``check_config(no_env=True)``
for every tenth) under a per-case timeout; a fixed sample also goes through the real
``python -m edge config check FILE``. The seed is fixed: a failure names its case index and kind,
and ``pytest -k fuzz`` reproduces it.
"""

from __future__ import annotations

import copy
import json
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

import pytest
import yaml

from edge.config import check_config, load_config
from edge.errors import ConfigError
from tests.conftest import ROOT

SEED = 7_2026
CASES_PER_BASE = 600
CLI_SAMPLE = 50
CASE_TIMEOUT = 5.0  # seconds: the slowest legitimate case (a 1.5 MB file) takes well under 1 s
SECRETS = ("hunter2", "s3cr3t-salt", "mqtt-pw-42")

MINIMAL = f"""\
cameras:
  gate:
    url: rtsp://admin:{SECRETS[0]}@cam.local/stream
    plates: {{publish: hash, hash_salt: {SECRETS[1]}, regions: [eu]}}
mqtt:
  host: broker.local
  password: {SECRETS[2]}
"""
EXAMPLE = (ROOT / "deploy" / "edge.example.yaml").read_text(encoding="utf-8")

ODD_VALUES: list[Any] = [
    [],
    {},
    "",
    "text",
    True,
    None,
    0,
    -1,
    3,
    0.5,
    [1, 2],
    {"a": 1},
    [[0, 0], [1, 0]],
    "1e309",
    "0x1F",
    "~",
    "null",
    "rtsp://",
    "ftp://x/y",
    "/dev/video0",
    "a\x00b",
]
HUGE_NUMBERS: list[Any] = [
    10**30,
    -(10**30),
    2**63,
    1e308,
    -1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    1e-320,
    86_401,
]
TEXT_NUMBERS = ["7" * 5000, "-" + "9" * 4301, ".inf", "-.Inf", ".NaN", "1e99999", "0b" + "1" * 5000, "0o777777777"]
ENV_REFS = ["${FUZZ_UNSET_VAR}", "${FUZZ_UNSET_VAR:-}", "${FUZZ_UNSET_VAR:-5}", "${", "${1BAD}", "$$${HOME}"]


def _unicode(rng: Random) -> str:
    ranges = [(0x20, 0x7E), (0xA0, 0x2FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x4E00, 0x4E80), (0x1F600, 0x1F64F)]
    out = []
    for _ in range(rng.randint(1, 40)):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    if rng.random() < 0.3:
        out.insert(rng.randrange(len(out) + 1), rng.choice(["\u202e", "\u200b", "\ufeff", "\t", "\x07", "\u2028"]))
    return "".join(out)


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in the tree, so a mutation can pick any value at any depth."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out)
    return out


TOKEN = "FUZZ_TOKEN_7f3a"  # replaced in the dumped text by something yaml.safe_dump cannot write


def _set_random(data: Any, rng: Random, value: Any) -> None:
    slots = _slots(data, [])
    container, key = rng.choice(slots)
    container[key] = value


def _dump(data: Any) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: generating 1,200 files stays fast
    return yaml.dump(data, Dumper=dumper, allow_unicode=True, sort_keys=False, width=1_000_000)


def _tree_mutation(data: Any, rng: Random) -> tuple[str, str]:
    kind = rng.choice(
        ["wrong_type", "delete_key", "huge_number", "unicode", "unknown_key", "env_ref", "swap", "huge_string"]
    )
    slots = _slots(data, [])
    if kind == "wrong_type":
        _set_random(data, rng, copy.deepcopy(rng.choice(ODD_VALUES)))
    elif kind == "delete_key":
        dict_slots = [(c, k) for c, k in slots if isinstance(c, dict)]
        container, key = rng.choice(dict_slots)
        del container[key]
    elif kind == "huge_number":
        _set_random(data, rng, rng.choice(HUGE_NUMBERS))
    elif kind == "unicode":
        if rng.random() < 0.5:
            _set_random(data, rng, _unicode(rng))
        else:  # as a key
            dicts = [c for c, _ in slots if isinstance(c, dict)] or [data]
            rng.choice(dicts)[_unicode(rng)] = 1
    elif kind == "unknown_key":
        dicts = [c for c, _ in slots if isinstance(c, dict)] or [data]
        rng.choice(dicts)[rng.choice(["bogus", "urls", "fps", "enabled ", "Cameras", 5, None, True])] = "x"
    elif kind == "env_ref":
        _set_random(data, rng, rng.choice(ENV_REFS))
    elif kind == "swap":  # a value moved to another place
        (c1, k1), (c2, k2) = rng.choice(slots), rng.choice(slots)
        if c1 is not c2 or k1 != k2:
            c1[k1], c2[k2] = copy.deepcopy(c2[k2]), copy.deepcopy(c1[k1])
    elif kind == "huge_string":
        _set_random(data, rng, rng.choice(["x", "é", "${A}"]) * rng.choice([1_000, 20_000, 300_000]))
    return kind, _dump(data)


def _billion_laughs(levels: int, fan: int) -> str:
    lines = ["l0: &l0 " + "[" + ", ".join(['"lol"'] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def _text_mutation(text: str, data: Any, rng: Random) -> tuple[str, str | bytes]:
    kind = rng.choice(
        [
            "random_bytes",
            "truncate",
            "alias_bomb",
            "self_alias",
            "deep_nesting",
            "duplicate_key",
            "text_number",
            "deep_regex",
            "line_shuffle",
            "indent",
            "huge_file",
            "tabs",
        ]
    )
    raw = text.encode("utf-8")
    if kind == "random_bytes":
        buf = bytearray(raw)
        for _ in range(rng.randint(1, 12)):
            pos = rng.randrange(len(buf))
            if rng.random() < 0.5:
                buf[pos] = rng.randrange(256)
            else:
                buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        return kind, bytes(buf)
    if kind == "truncate":
        return kind, raw[: rng.randrange(len(raw))]
    if kind == "alias_bomb":
        levels, fan = rng.choice([(9, 9), (6, 10), (20, 2), (4, 100)])
        bomb = _billion_laughs(levels, fan)
        if rng.random() < 0.5:  # used from inside the config as well
            bomb = bomb + text.replace("cameras:", f"x-bomb: *l{levels - 1}\ncameras:", 1)
        return kind, bomb
    if kind == "self_alias":
        return kind, rng.choice(["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [1, [2, *a]]\n"]) + text
    if kind == "deep_nesting":
        n = rng.choice([20, 33, 100, 1000, 5000, 20000])
        value = "[" * n + "]" * n if rng.random() < 0.5 else "{a: " * n + "1" + "}" * n
        _set_random(data, rng, TOKEN)
        return kind, _dump(data).replace(TOKEN, value, 1)
    if kind == "duplicate_key":
        lines = text.splitlines(keepends=True)
        keyed = [i for i, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith(("#", "-"))]
        i = rng.choice(keyed)
        lines.insert(i + 1, lines[i] if lines[i].rstrip().endswith(":") is False else lines[i] + "  {}\n")
        if rng.random() < 0.3:  # a second top-level cameras: block
            lines.append("cameras:\n  other: {url: /x.mp4}\n")
        return kind, "".join(lines)
    if kind == "text_number":
        _set_random(data, rng, TOKEN)
        return kind, _dump(data).replace(f"{TOKEN}", rng.choice(TEXT_NUMBERS), 1)
    if kind == "deep_regex":
        n = rng.choice([50, 200, 5000])
        regex = "(" * n + "a" + ")" * n if rng.random() < 0.7 else "[" * n
        cams = data.get("cameras") if isinstance(data, dict) else None
        if isinstance(cams, dict) and cams:
            cam = next(iter(cams.values()))
            if isinstance(cam, dict):
                cam["plates"] = {"regions": ["eu", regex]}
        return kind, _dump(data)
    if kind == "line_shuffle":
        lines = text.splitlines(keepends=True)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return kind, "".join(lines)
    if kind == "indent":
        lines = text.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        lines[i] = " " * rng.randint(1, 7) + lines[i] if rng.random() < 0.5 else lines[i].lstrip()
        return kind, "".join(lines)
    if kind == "huge_file":
        return kind, text + "# " + "z" * (2 * 1024 * 1024) + "\n"
    # tabs: YAML forbids them in indentation
    return kind, text.replace("  ", "\t", rng.randint(1, 3))


@dataclass
class Case:
    index: int
    base: str
    kind: str
    path: Path


def _generate(tmp: Path) -> list[Case]:
    rng = Random(SEED)
    cases: list[Case] = []
    for base_name, text in (("example", EXAMPLE), ("minimal", MINIMAL)):
        parsed = yaml.safe_load(text)
        for _ in range(CASES_PER_BASE):
            data = copy.deepcopy(parsed)
            roll = rng.random()
            if roll < 0.45:
                kind, content = _tree_mutation(data, rng)
            elif roll < 0.6:  # several at once
                kinds = []
                for _ in range(rng.randint(2, 4)):
                    k, _text = _tree_mutation(data, rng)
                    kinds.append(k)
                kind, content = "+".join(kinds), _dump(data)
            else:
                kind, content = _text_mutation(text, data, rng)
            path = tmp / f"case{len(cases):04d}.yaml"
            if isinstance(content, str):
                path.write_bytes(content.encode("utf-8", errors="surrogatepass"))
            else:
                path.write_bytes(content)
            cases.append(Case(len(cases), base_name, kind, path))
    return cases


class Hang(Exception):
    """A case ran past CASE_TIMEOUT."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def on_alarm(_sig: int, _frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _in_process(case: Case, fn: Callable[[Path], object]) -> str | None:
    """None when the config is valid, the error text when it is rejected; anything else fails."""
    try:
        with _deadline(CASE_TIMEOUT):
            fn(case.path)
    except ConfigError as err:
        return str(err)
    return None


def _assert_good_rejection(case: Case, message: str) -> None:
    where = f"case {case.index} ({case.base}: {case.kind})"
    first, *rest = message.split("\n")
    assert str(case.path) in first, f"{where}: the first line does not name the file: {first!r}"
    assert all(line.startswith("  ") for line in rest), f"{where}: unexpected line layout: {message[:500]!r}"
    assert "Traceback" not in message, where
    for secret in SECRETS:
        assert secret not in message, f"{where}: a secret was echoed: {message[:500]!r}"


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return _generate(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def outcomes(cases: list[Case]) -> dict[int, str | None]:
    """Every case validated in-process: index -> None (valid) or the error text."""
    results: dict[int, str | None] = {}
    failures: list[str] = []
    for case in cases:
        where = f"case {case.index} ({case.base}: {case.kind}, {case.path})"
        t0 = time.monotonic()
        try:
            results[case.index] = _in_process(case, load_config)
            if case.index % 10 == 0:
                _in_process(case, lambda p: check_config(p, no_env=True))
        except Hang as err:
            failures.append(f"{where}: hang: {err}")
        except Exception as err:  # noqa: BLE001 - the point: anything but ConfigError is a bug
            failures.append(f"{where}: {type(err).__name__}: {str(err)[:200]}")
        if time.monotonic() - t0 > CASE_TIMEOUT:
            failures.append(f"{where}: took {time.monotonic() - t0:.1f} s")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:30])
    return results


def test_fuzz_config_validation_in_process(cases: list[Case], outcomes: dict[int, str | None]) -> None:
    assert len(cases) >= 1000
    rejected = 0
    for case in cases:
        message = outcomes[case.index]
        if message is not None:
            rejected += 1
            _assert_good_rejection(case, message)
    # the mutations mostly break the file, and not all of them: both outcomes are exercised
    assert len(cases) * 0.5 < rejected < len(cases)
    kinds = {k for c in cases for k in c.kind.split("+")}
    assert {"alias_bomb", "self_alias", "deep_nesting", "duplicate_key", "random_bytes", "huge_number"} <= kinds


def _cli_sample(cases: list[Case]) -> list[Case]:
    """The first case of every kind, then a seeded random pick up to CLI_SAMPLE."""
    first: dict[str, Case] = {}
    for case in cases:
        first.setdefault(case.kind.split("+")[0], case)
    picked = {c.index: c for c in first.values()}
    rest = [c for c in cases if c.index not in picked]
    for c in Random(SEED + 1).sample(rest, max(0, CLI_SAMPLE - len(picked))):
        picked[c.index] = c
    return sorted(picked.values(), key=lambda c: c.index)


def _run_cli(case: Case, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # a blow-up fails this case, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    return subprocess.run(
        [sys.executable, "-m", "edge", "config", "check", str(case.path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        cwd=ROOT,
    )


def test_fuzz_config_check_cli_sample(cases: list[Case], outcomes: dict[int, str | None]) -> None:
    sample = _cli_sample(cases)
    assert len(sample) >= CLI_SAMPLE
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(_run_cli, sample))
    for case, proc in zip(sample, procs, strict=True):
        where = f"case {case.index} ({case.base}: {case.kind}, {case.path})"
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out and "unexpected error" not in out, f"{where}:\n{out[-2000:]}"
        if outcomes[case.index] is None:
            assert proc.returncode == 0, f"{where}: valid in-process but exit {proc.returncode}:\n{out[-2000:]}"
            assert proc.stdout.startswith(f"{case.path}: OK"), where
        else:
            assert proc.returncode == 2, f"{where}: exit {proc.returncode}:\n{out[-2000:]}"
            assert proc.stderr.startswith("edge: error: "), where
            _assert_good_rejection(case, proc.stderr.removeprefix("edge: error: ").rstrip("\n"))


# -- megabyte strings (issue 20: password masking was quadratic) -------------------------------

MB = 1_000_000
BOUND = 10.0  # seconds per case: linear code takes ~1 s here (mostly start-up); quadratic took minutes to hours
MARK = "S3cr"  # in every password below: it must never be printed


def _camera(name: str = "gate", url: str = "/x.mp4", unknown_key: str | None = None) -> str:
    """A config whose camera name, URL or an unknown camera key may be megabytes long (an explicit
    ``?`` key: YAML caps plain keys at 1024 characters) and whose ``detect.fps`` is wrong."""
    lines = ["cameras:", f"  ? {json.dumps(name)}", f"  : url: {json.dumps(url)}", "    detect: {fps: x}"]
    if unknown_key is not None:
        lines += [f"    ? {json.dumps(unknown_key)}", "    : 1"]
    return "\n".join(lines) + "\n"


MEGABYTE_CONFIGS = {
    "long-name": _camera("c" * MB),
    "name-full-of-at": _camera(f"rtsp://u:{MARK}@" + "@" * MB),
    "name-of-schemes": _camera("a://" * (MB // 4)),
    "name-of-colons": _camera("rtsp://" + ":@" * (MB // 2)),
    "url-full-of-at": _camera(url="rtsp://" + "@" * MB),
    "url-long-userinfo": _camera(url=f"rtsp://viewer:{MARK}" + "p@" * (MB // 2) + "cam:554/live"),
    "unknown-key": _camera(unknown_key="f" * MB),
    "unclosed-env-refs": _camera(url="${A:-" * 999 + "x" * MB),
}


@pytest.mark.parametrize("content", list(MEGABYTE_CONFIGS.values()), ids=list(MEGABYTE_CONFIGS))
def test_megabyte_strings_are_refused_in_linear_time(tmp_path: Path, content: str) -> None:
    """``edge config check`` on a ~1 MB config (the file cap is 2 MB) answers within BOUND with the
    usual short error, and no password. The long name took 18 min before the fix."""
    path = tmp_path / "edge.yaml"
    path.write_text(content, encoding="utf-8")
    t0 = time.monotonic()
    proc = _run_cli(Case(0, "megabyte", "megabyte", path), timeout=3 * BOUND)
    took = time.monotonic() - t0
    assert took < BOUND, f"{took:.1f} s"
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"edge: error: {path}: "), proc.stderr[:500]
    assert "Traceback" not in proc.stderr and MARK not in proc.stderr + proc.stdout
    assert len(proc.stderr) < 2000  # field paths are cut short, never megabytes


# Redaction as `edge run` uses it (register_url, redact_url) and as error messages get it
# (redact_text), in a child: quadratic code would hang the test process in C, past any signal.
_REDACT_ALL = """
import json, sys, time
from edge.redact import encode_credentials, redact_text, redact_url, register_url, split_userinfo
url = sys.stdin.read()
t0 = time.monotonic()
register_url(url)
out = {"url": redact_url(url), "text": redact_text("cannot open " + url + " : refused")}
out["user"] = split_userinfo(url).user
encode_credentials(url)
out["seconds"] = time.monotonic() - t0
print(json.dumps(out))
"""

MEGABYTE_URLS = {
    "all-at": ("rtsp://" + "@" * MB, None),
    "x-at": ("rtsp://" + "x@" * (MB // 2), None),
    "colon-at": ("rtsp://" + ":@" * (MB // 2), None),
    "schemes": ("a://" * (MB // 4), None),
    "password-of-at": (f"rtsp://viewer:{MARK}" + "p@" * (MB // 2) + "cam:554/live", "viewer"),
    "long-password": (f"rtsp://viewer:{MARK}" + "p" * MB + "@cam/live", "viewer"),
    "long-host-runs": (f"rtsp://u:{MARK}@" + ("h" * 1000 + "@") * (MB // 1001) + "cam/x", "u"),
}


@pytest.mark.parametrize(("url", "user"), list(MEGABYTE_URLS.values()), ids=list(MEGABYTE_URLS))
def test_megabyte_urls_are_redacted_in_linear_time(url: str, user: str | None) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _REDACT_ALL], input=url, capture_output=True, text=True, timeout=6 * BOUND, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["seconds"] < BOUND
    assert out["user"] == user  # the credentials are still found where there are some
    for text in (out["url"], out["text"]):
        assert MARK not in text
    if user:
        assert out["url"].startswith(f"rtsp://{user}:***@") and out["text"].startswith("cannot open rtsp://***@")
