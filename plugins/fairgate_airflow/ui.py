"""The Fairness view: a FastAPI app the Airflow API server mounts at ``/fairgate``.

Airflow does not put a plugin's FastAPI app behind its login, so every route here depends on
:func:`signed_in_user`, which accepts exactly what Airflow's own API accepts (the UI's session
cookie or an ``Authorization: Bearer`` token, checked by the configured auth manager) and
answers 401 otherwise. Pages are rendered server-side from the artifact store.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from fairgate.policy.schema import MODEL_NAME

if TYPE_CHECKING:
    from fairgate.reporting.overview import Overview
    from fairgate.storage.base import ArtifactStore


def _login_url(request: Request) -> str:
    """The auth manager's own sign-in page, coming back here afterwards."""
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().get_url_login(next_url=str(request.url))
    except Exception:  # no auth manager initialised: plain link
        return "/auth/login"


async def signed_in_user(request: Request) -> Any:
    """The Airflow user behind the request's token, or a 401 (403 for an invalid token)."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


User = Annotated[Any, Depends(signed_in_user)]

app = FastAPI(
    title="Fairgate",
    description="Fairness view of the Fairgate lifecycle",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


MAX_BODY = 64 * 1024  # bytes of a request body (a contest is a few lines)
MAX_REASON = 2000  # characters of a contest's reason


@app.middleware("http")
async def _limits(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """State-changing requests: same origin (or a bearer token, which a browser never sends on its own),
    and a bounded body (413 before it is read)."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            return JSONResponse({"detail": f"A request body needs a Content-Length of at most {MAX_BODY} bytes."}, 413)
        origin = request.headers.get("origin")
        bearer = request.headers.get("authorization", "").lower().startswith("bearer ")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            return JSONResponse({"detail": f"Cross-origin request from {origin} refused."}, 403)
        if origin is None and not bearer and request.cookies:  # no credentials at all: the route's 401
            return JSONResponse({"detail": "A request signed in by cookie must come from this site (Origin)."}, 403)
    return await call_next(request)


@app.middleware("http")
async def _security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Defence in depth on every response: no script runs, nothing is sniffed, framed by Airflow's UI only."""
    from fairgate.pages import SECURITY_HEADERS

    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


@app.exception_handler(HTTPException)
async def _refuse(request: Request, exc: HTTPException) -> Response:
    if exc.status_code in (401, 403) and "text/html" in request.headers.get("accept", ""):
        from fairgate.pages import render_html

        return HTMLResponse(render_html("sign_in.html.j2", login_url=_login_url(request)), status_code=exc.status_code)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


def _store() -> ArtifactStore:
    from fairgate_airflow.settings import artifact_store

    return artifact_store()


def _name(user: Any) -> str:
    getter = getattr(user, "get_name", None)
    return str(getter() if getter else user) or "an unnamed admin (all-admins mode)"


def may_read(user: Any, dag_id: str | None) -> bool:
    """Whether ``user`` may read the runs of ``dag_id``, asked of the configured auth manager exactly as
    Airflow's own API asks it (with the DAG's team in multi-team mode). ``None``: every DAG."""
    return _may(user, dag_id, "GET")


def may_trigger(user: Any, dag_id: str) -> bool:
    """Whether ``user`` may start a run of ``dag_id`` (what Airflow's own trigger endpoint requires)."""
    return _may(user, dag_id, "POST")


def _may(user: Any, dag_id: str | None, method: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.configuration import conf

    team = None
    if dag_id and conf.getboolean("core", "multi_team", fallback=False):
        from airflow.models.dag import DagModel

        team = DagModel.get_team_name(dag_id)
    return bool(
        get_auth_manager().is_authorized_dag(
            method=method,  # type: ignore[arg-type]  # "GET" or "POST"
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_id, team_name=team),
            user=user,
        )
    )


def _lifecycle_dags() -> dict[str, str]:
    """Each configured model's lifecycle DAG id: reading a model's reports is reading that DAG's runs."""
    from fairgate.policy.catalog import entries

    return {e.name: e.dag_id("fairgate_lifecycle") for e in entries()}


def readable_models(user: Any, models: list[str]) -> list[str]:
    """The models whose reports ``user`` may see. A model the store holds but no policy of this
    deployment names (an older model) is shown only to users who may read every DAG."""
    dags = _lifecycle_dags()
    return [m for m in models if may_read(user, dags.get(m))]


def _thresholds() -> dict[str, list[Any]]:
    """Each configured model's gate thresholds, drawn on its audit trend (a policy that fails to load: none)."""
    from fairgate.errors import InputError
    from fairgate.policy.catalog import entries
    from fairgate.policy.loader import load_policy

    out: dict[str, list[Any]] = {}
    for model in entries():
        try:
            out[model.name] = list(load_policy(model.path).fairness.bounds)
        except InputError:
            continue
    return out


def _overview(user: Any) -> Overview:
    from fairgate.reporting.overview import models, overview

    store = _store()
    return overview(store, today=datetime.now(UTC).date(), only=readable_models(user, models(store)))


@app.get("/", response_class=HTMLResponse)
def fairness_view(user: User) -> str:
    from fairgate.reporting.report import overview_html

    return overview_html(_overview(user), user=_name(user), thresholds=_thresholds())


@app.get("/api/overview")
def fairness_overview(user: User) -> dict[str, Any]:
    return {"user": _name(user), **_overview(user)}


FORBIDDEN = "You may not read this model's reports (the auth manager refuses its DAG's runs)."


def _page(key: str, what: str) -> HTMLResponse:
    from fairgate.errors import InputError, NotFoundError

    try:
        return HTMLResponse(_store().get(key).decode())
    except NotFoundError:
        raise HTTPException(404, f"No {what} is stored yet.") from None
    except InputError:  # a key the store refuses (a path that climbs out of it): there is no such page
        raise HTTPException(404, f"No {what}.") from None


class ContestRequest(BaseModel):
    model: str = Field(max_length=64)
    row: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=MAX_REASON)
    date: str | None = Field(None, max_length=10)


@app.post("/api/contest")
def contest(body: ContestRequest, user: User) -> JSONResponse:
    """Open a contest of a scored decision and start its review (``fairgate_contest``) as the signed-in user."""
    from fairgate.monitoring import cases
    from fairgate.policy.catalog import entries
    from fairgate.policy.loader import load_policy

    entry = next((e for e in entries() if e.name == body.model), None)
    if entry is None or body.model not in readable_models(user, [body.model]):
        raise HTTPException(404, f"No model {body.model!r} you may read.")
    dag_id = entry.dag_id("fairgate_contest")
    if not may_trigger(user, dag_id):  # reading a model is not enough: opening a contest starts its review
        raise HTTPException(403, f"Opening a contest starts {dag_id}; you may read it but not trigger it.")
    try:
        day = date.fromisoformat(body.date) if body.date else None
    except ValueError as exc:
        detail = f"Field 'date' must be a day that exists, as YYYY-MM-DD; got {body.date!r} ({exc})."
        return JSONResponse({"detail": detail, "kind": "InputError"}, status_code=400)
    try:
        case = cases.open_contest(
            _store(),
            load_policy(entry.path),
            body.row,
            reason=body.reason,
            day=day,
            opened_by=f"fairness-view:{_name(user)}",
        )
    except ValueError as exc:  # InputError is a ValueError too: bad dates and refused contests alike
        return JSONResponse({"detail": str(exc), "kind": type(exc).__name__}, status_code=400)
    run_id = _trigger(dag_id, {"case_id": case["case_id"]}, user)
    return JSONResponse(
        {"case_id": case["case_id"], "seq": case["seq"], "dag_id": dag_id, "dag_run_id": run_id}, status_code=201
    )


def _trigger(dag_id: str, conf: dict[str, Any], user: Any) -> str:
    """Start a run of ``dag_id`` with ``conf``, as Airflow's own trigger endpoint does."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.REST_API, conf=conf, triggering_user_name=_name(user))
    return str(run.run_id) if run else ""


@app.get("/report/run/{dag_id}/{run_id}", response_class=HTMLResponse)
def run_report(dag_id: str, run_id: str, user: User) -> HTMLResponse:
    from fairgate.stages.lifecycle import RunInfo

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", dag_id) or set(dag_id) == {"."}:
        raise HTTPException(404, "No such DAG.")
    if not re.fullmatch(r"[A-Za-z0-9_.:+-]+", run_id) or set(run_id) == {"."}:
        raise HTTPException(404, "No such run.")
    if not may_read(user, dag_id):
        raise HTTPException(403, FORBIDDEN)
    return _page(f"{RunInfo(dag_id=dag_id, run_id=run_id).prefix}/report.html", f"report for run {run_id}")


@app.get("/report/audit/{model}/{day}", response_class=HTMLResponse)
def audit_report(model: str, day: date, user: User) -> HTMLResponse:
    from fairgate.monitoring.prediction_log import audit_prefix

    if not re.fullmatch(MODEL_NAME, model):
        raise HTTPException(404, "No such model.")
    if model not in readable_models(user, [model]):
        raise HTTPException(403, FORBIDDEN)
    return _page(f"{audit_prefix(model, day)}/report.html", f"audit report of {model} for {day}")
