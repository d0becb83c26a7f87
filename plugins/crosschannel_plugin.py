"""The bundle's Airflow plugin: registers the deadline reference the DAGs' Deadline Alerts use
(crosschannel.wiring.deadlines.PartitionDayEnd). Airflow resolves a custom reference through its plugins in the
scheduler, the api-server and the dag-processor; this file must stay in the plugins folder beside crosschannel/."""

from airflow.plugins_manager import AirflowPlugin

from crosschannel.wiring.deadlines import PartitionDayEnd


class CrosschannelPlugin(AirflowPlugin):
    name = "crosschannel"
    deadline_references = [PartitionDayEnd]
