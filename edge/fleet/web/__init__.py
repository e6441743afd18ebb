"""The web console (Starlette app served by uvicorn inside ``edge fleet``)."""

from edge.fleet.web.app import create_app

__all__ = ["create_app"]
