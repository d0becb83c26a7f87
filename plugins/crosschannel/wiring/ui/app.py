"""The reports view's FastAPI app, mounted on the api-server at /crosschannel (crosschannel.wiring.ui builds it on
the first request, so other Airflow components never import this module).

Login: Airflow does not protect a plugin's app; every route here depends on the api-server's own
`requires_access_dag("GET", DagAccessEntity.RUN)` (airflow/api_fastapi/core_api/security.py), the dependency the
public API's DAG-run endpoints use. It takes the user from the `Authorization: Bearer` JWT or, as in the UI's
iframe, the `_token` cookie (`get_user`); no token answers 401, a bad one 403, and the auth manager must let
the user read DAG runs (of the run's DAG on /runs/..., of every DAG elsewhere: the reports span the chain).

    GET /                                    the partitions that have reports
    GET /runs/{dag_id}/{run_id}              a DAG run's page (the UI's "Reports" tab): redirects to its partition
    GET /partitions/{day}/                   the partition's page; overview.json: the same as JSON
    GET /partitions/{day}/{kind}/{name}      one report file (crosschannel.wiring.ui.reports.locate)
"""

from __future__ import annotations

import mimetypes

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from crosschannel.core.partition import run_partition
from crosschannel.wiring.ui import BUNDLE_TAG, pages, reports

_TEXT = {"text/html", "application/json", "text/css", "application/javascript", "text/javascript", "text/plain"}


def run_day(partition_key: str | None, conf: dict | None, data_interval_start) -> str | None:
    """The day a stored run worked on, as crosschannel.core.partition.partition_day decides it in the run: its
    partition key, the `partition` of its conf, the start of its data interval. The UI only passes the run id."""
    value = run_partition(partition_key, conf)
    if value:
        return str(value)[:10]
    return data_interval_start.date().isoformat() if data_interval_start is not None else None


def _day(value: str):
    day = reports.parse_day(value)
    if day is None:
        raise HTTPException(404, f"{value!r} is not a partition (YYYY-MM-DD)")
    return day


def create_app() -> FastAPI:
    app = FastAPI(title="crosschannel reports", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))])

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return pages.index([day.isoformat() for day in reports.days()])

    @app.get("/runs/{dag_id}/{run_id:path}", name="run")
    def run(dag_id: str, run_id: str, request: Request, session: SessionDep) -> Response:
        from airflow.models.dag import DagTag
        from airflow.models.dagrun import DagRun
        from sqlalchemy import select

        found = session.execute(select(DagRun.partition_key, DagRun.conf, DagRun.data_interval_start)
                                .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
        if found is None:
            raise HTTPException(404, f"no run {run_id!r} of {dag_id!r}")
        if session.scalar(select(DagTag.name).where(DagTag.dag_id == dag_id, DagTag.name == BUNDLE_TAG)) is None:
            return HTMLResponse(pages.message(f"{dag_id} is not a DAG of the crosschannel bundle: no reports."), 404)
        day = run_day(found.partition_key, found.conf, found.data_interval_start)
        if reports.parse_day(day or "") is None:
            raise HTTPException(404, f"run {run_id!r} of {dag_id!r} names no partition day ({day!r})")
        # the mount's prefix (and the api-server's base path) is the scope's root_path
        return RedirectResponse(request.scope.get("root_path", "") + app.url_path_for("partition", day=day),
                                status_code=307)

    @app.get("/partitions/{day}/", response_class=HTMLResponse, name="partition")
    def partition(day: str) -> str:
        return pages.partition(reports.overview(_day(day)))

    @app.get("/partitions/{day}/overview.json")
    def overview(day: str) -> dict:
        return reports.overview(_day(day))

    @app.get("/partitions/{day}/{kind}/{name:path}")
    def report_file(day: str, kind: str, name: str) -> Response:
        path = reports.locate(_day(day), kind, name)
        if path is None or not path.is_file():
            raise HTTPException(404, f"no report {kind}/{name} for {day}")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
        return Response(path.read_bytes(), media_type=f"{media}; charset=utf-8" if media in _TEXT else media,
                        headers=headers)

    return app
