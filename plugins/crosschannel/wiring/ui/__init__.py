"""The reports view in the Airflow UI: a FastAPI app the plugin (plugins/crosschannel_plugin.py) mounts on the
api-server at /crosschannel, and the UI entries that open it (`EXTERNAL_VIEWS`): "Crosschannel reports" in the
navigation (every partition) and a "Reports" tab on each DAG run's page (that run's partition).

The plugin module is imported by every Airflow component, so this package is cheap to import: `ReportsApp` builds
the FastAPI app (`app`: routes and the api-server's login dependency) on its first request, in the api-server
only. `reports` maps a request onto the partition's fixed report files; `pages` renders them.

May import: crosschannel.core; Airflow's api_fastapi and FastAPI only inside `app`, which only `ReportsApp` loads.
"""

from __future__ import annotations

import threading

from crosschannel.core.paths import REPORTS_VIEW_PREFIX as URL_PREFIX

BUNDLE_TAG = "crosschannel"  # the tag every DAG of the bundle carries (crosschannel.wiring.defaults.tags)

# The UI fills {DAG_ID} and {RUN_ID} in a dag_run view's href (Airflow 3.3 offers no partition field, so the app
# looks the run up). An href is a path on the api-server: with [api] base_url under a sub-path, prefix it.
EXTERNAL_VIEWS = [
    {"name": "Crosschannel reports", "href": f"{URL_PREFIX}/", "destination": "nav",
     "url_route": "crosschannel-reports"},
    {"name": "Reports", "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}", "destination": "dag_run",
     "url_route": "crosschannel-run-reports"},
]


class ReportsApp:
    """The reports view as an ASGI app, built on its first request (Airflow mounts it; only the api-server calls
    it). It has no lifespan of its own."""

    def __init__(self) -> None:
        self._app = None
        self._lock = threading.Lock()

    def _build(self):
        with self._lock:
            if self._app is None:
                from crosschannel.wiring.ui.app import create_app

                self._app = create_app()
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        app = self._app or self._build()
        await app(scope, receive, send)


FASTAPI_APPS = [{"app": ReportsApp(), "url_prefix": URL_PREFIX, "name": "crosschannel reports"}]
