"""The hardened YAML loader for config files, which are hostile input.

Duplicate keys, nesting deeper than :data:`MAX_DEPTH`, recursive aliases, alias expansion past
:data:`MAX_NODES`/:data:`MAX_CHARS`, integers too long for Python and files over
:data:`MAX_FILE_BYTES` are errors with a line number, never a hang, a crash or a silent pick.
``${VAR}`` / ``${VAR:-default}`` references are expanded after parsing (:class:`EnvExpander`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from edge.config.messages import path_part, shorten
from edge.errors import ConfigError

MAX_FILE_BYTES = 2 * 1024 * 1024  # a config with long plate lists is a few hundred kB
MAX_DEPTH = 32  # the schema nests 6 levels; polygons add 2
MAX_NODES = 200_000  # values after alias expansion (billion laughs stops here)
MAX_CHARS = 8 * 1024 * 1024  # characters of text after alias expansion


class LimitError(yaml.MarkedYAMLError):
    """A YAML document the config loader refuses: too big, too deep, recursive, duplicate keys."""


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: Node) -> None:
    """Refuse a document whose aliases refer to themselves or expand past the limits.

    PyYAML shares an aliased node, so a billion-laughs file loads cheaply, but every later walk
    over the data (``${VAR}`` expansion, validation) visits each use. Sizes are computed per
    distinct node (memoised, iteratively: the expanded depth may be far beyond the recursion
    limit), so the check itself is linear in the file size.
    """
    nodes: dict[int, int] = {}
    chars: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()  # entered, not finished: the ancestors of the current node
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        kids = _children(node)
        if finished:
            entered.discard(key)
            nodes[key] = 1 + sum(nodes[id(k)] for k in kids)
            own = len(node.value) if isinstance(node, ScalarNode) else 0
            chars[key] = own + sum(chars[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if nodes[key] > MAX_NODES or chars[key] > MAX_CHARS:
                raise LimitError(
                    problem=f"aliases expand this value to more than {MAX_NODES:,} values or {MAX_CHARS:,} "
                    "characters (an alias bomb?)",
                    problem_mark=node.start_mark,
                )
            if depth[key] > MAX_DEPTH:
                raise LimitError(
                    problem=f"aliases nest this value more than {MAX_DEPTH} levels deep", problem_mark=node.start_mark
                )
            continue
        if key in nodes:
            continue
        entered.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in entered:
                raise LimitError(problem="an alias refers to the value that contains it", problem_mark=kid.start_mark)
            if id(kid) not in nodes:
                stack.append((kid, False))


try:
    from yaml._yaml import CParser  # libyaml: scanning a large file in C is ~30x faster

    class _SafeBase(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml's event parser under PyYAML's Python composer (where the limits are checked)
        and safe constructor: ``CSafeLoader`` composes in C, out of reach of those checks."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

except ImportError:  # PyYAML built without libyaml
    _SafeBase = yaml.SafeLoader  # type: ignore[misc,assignment]


class ConfigLoader(_SafeBase):
    """A safe YAML loader for untrusted configs: duplicate keys, nesting deeper than
    :data:`MAX_DEPTH`, recursive aliases, alias expansion past :data:`MAX_NODES` and integers
    too long for Python are errors with a line number, never a hang, a crash or a silent pick."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:  # noqa: D102
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event: Any = self.peek_event()
                too_deep = f"nested too deep (more than {MAX_DEPTH} levels)"
                raise LimitError(problem=too_deep, problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> MappingNode:  # noqa: D102
        node: MappingNode = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key, _value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue  # "<<" merge keys may repeat and are overridden by design
            first = seen.setdefault((key.tag, key.value), key.start_mark.line + 1)
            if first != key.start_mark.line + 1:
                raise LimitError(
                    problem=f"duplicate key {shorten(key.value)!r} (first at line {first})",
                    problem_mark=key.start_mark,
                )
        return node

    def compose_document(self) -> Node | None:  # noqa: D102
        node: Node | None = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_yaml_int(self, node: ScalarNode) -> int:  # noqa: D102
        try:
            return super().construct_yaml_int(node)  # type: ignore[no-any-return]
        except ValueError:  # Python refuses int() of more than 4,300 digits
            raise LimitError(problem="integer too long", problem_mark=node.start_mark) from None


ConfigLoader.add_constructor("tag:yaml.org,2002:int", ConfigLoader.construct_yaml_int)  # type: ignore[type-var]


# ${NAME} or ${NAME:-default}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


MAX_ENV_REFS = 1_000  # ${VAR} references in one file; a real config has a handful


class EnvExpander:
    """``${VAR}`` -> ``env[VAR]`` in every string of the loaded data.

    The field path of a variable that is not set and has no default lands in ``unresolved``;
    without ``env`` (``--no-env``) the reference stays as written, otherwise it is a problem.
    """

    def __init__(self, env: Mapping[str, str] | None) -> None:
        self.env = dict(env) if env is not None else None  # a dict: os.environ lookups are slow
        self.problems: list[str] = []
        self.unresolved: set[str] = set()
        self.unset: set[str] = set()  # names of the variables behind ``unresolved``
        self.refs = 0

    def expand(self, value: Any, path: str = "") -> Any:
        """``value`` with every reference replaced; ConfigError past :data:`MAX_ENV_REFS`."""
        if isinstance(value, str):
            if "${" not in value:
                return value
            self.refs += value.count("${")
            if self.refs > MAX_ENV_REFS:
                raise ConfigError(f"more than {MAX_ENV_REFS} ${{VAR}} references")
            # Every reference ends with '}': past the last one nothing can match, so a
            # "${x:-" without a closing brace is not re-scanned to the end of a megabyte string
            # from each of up to MAX_ENV_REFS starts (quadratic).
            end = value.rfind("}") + 1
            return _ENV.sub(lambda m: self._one(m, path), value[:end]) + value[end:]
        if isinstance(value, dict):
            return {k: self.expand(v, f"{path}.{path_part(k)}" if path else path_part(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _one(self, m: re.Match[str], path: str) -> str:
        name, default = m.group(1), m.group(2)
        if self.env is not None and name in self.env:
            return self.env[name]
        if default is not None:
            return default
        self.unset.add(name)
        if self.env is None:
            self.unresolved.add(path)
            return m.group(0)
        if path not in self.unresolved:  # once per field, however often the field repeats it
            self.problems.append(
                f"{path or '<root>'}: environment variable ${{{name}}} is not set "
                f"(export {name}=... or write ${{{name}:-default}} in the file)"
            )
        self.unresolved.add(path)  # its validation errors would only repeat this one
        return ""


def load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`ConfigLoader` (raises ``yaml.YAMLError``)."""
    loader = ConfigLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_config_file(p: Path) -> Any:
    """The YAML data of config file ``p``; ConfigError (file, line, problem) when it cannot be used."""
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{p}: {size:,} bytes is too large for a config file (limit {MAX_FILE_BYTES:,})")
        return load_yaml(p.read_text(encoding="utf-8"))
    except LimitError as err:
        mark = err.problem_mark
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark else ""
        raise ConfigError(f"{p}:{where} {err.problem}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        if "nesting depth" in problem:  # PyYAML 6.0.4's libyaml caps nesting, scanning ahead of our check
            raise ConfigError(f"{p}:{where}: nested too deep (more than the YAML parser allows)") from None
        raise ConfigError(f"{p}:{where} is not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {p}: {err}") from None
