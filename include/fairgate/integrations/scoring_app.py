"""MLflow's scoring app, behind an optional bearer token: what ``fairgate serve`` runs under uvicorn.

MLflow's scoring server answers anyone who reaches its port. In production the port belongs behind
a gateway; where it is not, ``FAIRGATE_SERVE_TOKEN`` makes every request but the health checks
(``/ping``, ``/health``, ``/version``) carry ``Authorization: Bearer <token>``, or be answered 401
without reaching the model (nothing is decided, nothing is logged).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import Request, Response

TOKEN_ENV = "FAIRGATE_SERVE_TOKEN"  # noqa: S105  # the variable's name, not a secret
OPEN_PATHS = frozenset({"/ping", "/health", "/version"})


async def _require_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """A request without the token is answered 401, before the model sees it."""
    from fastapi.responses import JSONResponse

    if request.url.path in OPEN_PATHS:
        return await call_next(request)
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {os.environ.get(TOKEN_ENV, '')}".encode()):
        return JSONResponse(
            {
                "error_code": "UNAUTHENTICATED",
                "message": "This scoring port needs 'Authorization: Bearer <token>'.",
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await call_next(request)


def create() -> Any:
    """MLflow's scoring app (which loads the model its environment names), with the token required when
    ``FAIRGATE_SERVE_TOKEN`` is set: the factory uvicorn calls (``--factory``)."""
    from mlflow.pyfunc.scoring_server.app import app

    if os.environ.get(TOKEN_ENV):
        app.middleware("http")(_require_token)
        logging.getLogger(__name__).warning(
            "%s is set: every request but %s needs its bearer token", TOKEN_ENV, sorted(OPEN_PATHS)
        )
    return app
