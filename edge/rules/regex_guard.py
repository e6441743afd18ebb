"""Regular expressions in rules, bounded in time.

Python's ``re`` backtracks: ``^(a+)+$`` on thirty ``a`` and a ``!`` takes minutes, and a rule is
run on every event. Patterns are checked when the config is loaded and refused when they can
backtrack exponentially (a quantifier inside a repeated group, an alternation inside a repeated
group, a backreference) or polynomially with a high power (more than :data:`MAX_VARIABLE_REPEATS`
variable-length quantifiers); a match sees at most :data:`MAX_TEXT` characters of a value. Both
bounds together keep a failed match on adversarial text near 0.1 s, and ordinary ones within
microseconds.
"""

from __future__ import annotations

import re
from typing import Any

try:  # Python 3.11+: the parser is private but stable; sre_parse is its deprecated alias
    import re._parser as _sre  # type: ignore[import-not-found]
    from re import _constants as _c  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

MAX_PATTERN = 512  # characters: a rule's pattern is a plate prefix or a name, a few dozen
MAX_TEXT = 100  # characters of a value a pattern sees: names are at most 64, plates a dozen
MAX_VARIABLE_REPEATS = 3  # each variable quantifier multiplies the backtracking on a failed match

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, *((_c.POSSESSIVE_REPEAT,) if hasattr(_c, "POSSESSIVE_REPEAT") else ())}


def check_pattern(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern``; ValueError with a one-line reason when it is invalid or can take
    super-linear time on short text."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"regex is {len(pattern)} characters long (limit {MAX_PATTERN})")
    try:
        compiled = re.compile(pattern)
        parsed = _sre.parse(pattern)
    except (re.error, RecursionError) as err:
        raise ValueError(f"bad regex {pattern!r}: {err}") from None
    variable = _scan(parsed, pattern, inside_repeat=False)
    if variable > MAX_VARIABLE_REPEATS:
        raise ValueError(
            f"regex {pattern!r} has {variable} variable-length quantifiers (limit {MAX_VARIABLE_REPEATS}): "
            "each one multiplies the time a failed match can take"
        )
    return compiled


def _variable(op: Any, av: Any) -> bool:
    """A repeat that can match a varying number of times (``+``, ``*``, ``{2,5}``; not ``{3}`` or ``?``)."""
    lo, hi = av[0], av[1]
    return op in _REPEATS and hi != lo and hi > 1


def _scan(parsed: Any, pattern: str, inside_repeat: bool) -> int:
    """Count variable repeats; raise on the constructs that backtrack exponentially."""
    count = 0
    for op, av in parsed:
        if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            raise ValueError(f"regex {pattern!r} uses a backreference, which can take exponential time")
        if op in _REPEATS:
            variable = _variable(op, av)
            if inside_repeat and av[0] != av[1]:  # (a+)+, (a*)*, (a?){20}
                raise ValueError(
                    f"regex {pattern!r} nests a quantifier inside a repeated group, which can take "
                    "exponential time; repeat a character class instead (e.g. a+ not (a+)+)"
                )
            count += variable
            count += _scan(av[2], pattern, inside_repeat or av[1] > 1)
        elif op == _c.BRANCH:
            if inside_repeat:
                raise ValueError(
                    f"regex {pattern!r} repeats an alternation, which can take exponential time; "
                    "use a character class or list the values in a rule with op: in"
                )
            count += max((_scan(b, pattern, inside_repeat) for b in av[1]), default=0)
        elif op == _c.SUBPATTERN:
            count += _scan(av[-1], pattern, inside_repeat)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            count += _scan(av[1], pattern, inside_repeat)
        elif op == getattr(_c, "ATOMIC_GROUP", None):
            count += _scan(av, pattern, inside_repeat)
    return count


def search(compiled: re.Pattern[str], text: str) -> bool:
    """``compiled.search`` on the first :data:`MAX_TEXT` characters of ``text``."""
    return compiled.search(text[:MAX_TEXT]) is not None
