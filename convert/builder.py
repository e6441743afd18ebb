"""The model builder the registry runs for models built on first pull (manifest ``build:``).

``edge.registry`` never imports the toolchain: the ``edge`` command installs :class:`ConvertBuilder`
(``edge.registry.build.set_builder``) at start-up. NNCF and the conversion code are imported only
when a model is actually built.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edge.errors import ModelError
from edge.registry.build import INSTALL, Builder, set_builder


class ConvertBuilder:
    """Builds with ``edge convert ARGS --out OUT`` in this process."""

    def missing(self) -> str | None:
        """``pip install ...`` when NNCF (the INT8 quantizer of the build recipes) is not installed."""
        return None if importlib.util.find_spec("nncf") is not None else INSTALL

    def __call__(self, args: list[str], out: Path, *, quiet: bool) -> None:
        """Run the conversion; a bad recipe or input is a ModelError (one line)."""
        from convert.cli import build_parser, convert
        from convert.errors import ConvertError

        try:
            convert(build_parser().parse_args([*args, "--out", str(out), *(["--quiet"] if quiet else [])]))
        except ConvertError as err:
            raise ModelError(str(err)) from None


def install() -> Builder | None:
    """Make the registry build with ``edge convert``; returns the builder installed before."""
    return set_builder(ConvertBuilder())
