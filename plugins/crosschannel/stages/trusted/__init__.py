"""The trusted stage (dags/retail_trusted.py): the current state of every source table, the typed and stitched
Segment events, customer 360 and the customer features, each behind its gates. `tasks` has one function per
task id; the mapped SQL job tasks are crosschannel.wiring.steps.sql_jobs.

May import: crosschannel.core and the ingest stage.
"""
