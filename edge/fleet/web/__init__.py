"""The web console (Starlette app served by uvicorn inside ``edge fleet``).

``create_app`` is imported on first use, so ``edge fleet hash-password`` (``web.auth``) needs
neither Starlette nor SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from edge.fleet.web.app import create_app

        return create_app
    raise AttributeError(name)
