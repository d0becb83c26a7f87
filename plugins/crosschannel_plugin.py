"""The bundle's Airflow plugin: registers the deadline reference the DAGs' Deadline Alerts use
(crosschannel.wiring.deadlines.PartitionPromise), the weekly training's timetable
(crosschannel.wiring.timetables.DayBeforePartitionTimetable) and the reports view (crosschannel.wiring.ui): a
FastAPI app on the api-server at /crosschannel, behind Airflow's login, with "Crosschannel reports" in the
navigation and a "Reports" tab on every DAG run. Airflow resolves a custom reference or timetable through its
plugins in the scheduler, the api-server and the dag-processor; this file must stay in the plugins folder beside
crosschannel/. Every component imports it: the modules are cheap to import (the reports app is built on its first
request)."""

from airflow.plugins_manager import AirflowPlugin

from crosschannel.wiring.deadlines import PartitionDayEnd, PartitionPromise
from crosschannel.wiring.timetables import DayBeforePartitionTimetable
from crosschannel.wiring.ui import EXTERNAL_VIEWS, FASTAPI_APPS


class CrosschannelPlugin(AirflowPlugin):
    name = "crosschannel"
    deadline_references = [PartitionPromise, PartitionDayEnd]
    timetables = [DayBeforePartitionTimetable]
    fastapi_apps = FASTAPI_APPS
    external_views = EXTERNAL_VIEWS
