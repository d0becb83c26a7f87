"""The bundle's Airflow plugin: registers the deadline reference the DAGs' Deadline Alerts use
(crosschannel.wiring.deadlines.PartitionDayEnd) and the reports view (crosschannel.wiring.ui): a FastAPI app on the
api-server at /crosschannel, behind Airflow's login, with "Crosschannel reports" in the navigation and a "Reports"
tab on every DAG run. Airflow resolves a custom reference through its plugins in the scheduler, the api-server and
the dag-processor; this file must stay in the plugins folder beside crosschannel/. Every component imports it:
both modules are cheap to import (the reports app is built on its first request)."""

from airflow.plugins_manager import AirflowPlugin

from crosschannel.wiring.deadlines import PartitionDayEnd
from crosschannel.wiring.ui import EXTERNAL_VIEWS, FASTAPI_APPS


class CrosschannelPlugin(AirflowPlugin):
    name = "crosschannel"
    deadline_references = [PartitionDayEnd]
    fastapi_apps = FASTAPI_APPS
    external_views = EXTERNAL_VIEWS
