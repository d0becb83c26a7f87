"""The daily scoring stage (dags/propensity_scoring.py): the champion's batch transform plans over the day's
features, and the score gate that publishes deciles and reasons. `tasks` has one function per task id;
`create_model` and `score_model` are steps of crosschannel.wiring.steps.

May import: crosschannel.core and the earlier stages (ingest, trusted, models).
"""
